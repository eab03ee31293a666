"""The linear baselines: a ridge from the text (and the LLM reference) to the answer histogram."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.splits import split_dataset
from crowdllm.errors import ConfigError
from crowdllm.evaluate.baselines import GlobalDistribution, LinearText
from crowdllm.evaluate.metrics import evaluate_distributions
from crowdllm.evaluate.runner import run_experiment


def wd_of(probs: pd.DataFrame, gold: pd.DataFrame, label) -> float:
    got = evaluate_distributions(probs, gold, label, ["mean"])
    return float(got.loc[got["metric"] == "avg_wd", "value"].iloc[0])


@pytest.fixture
def parts(synthetic):
    return split_dataset(synthetic.dataset, by="task", test_size=0.3, random_state=0)


def test_text_ridge_reads_the_words_that_carry_the_rating(parts) -> None:
    model = LinearText(embedder="hashing").fit(parts.train)
    probs = model.predict_proba(parts.test.tasks)
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs.to_numpy() > 0).all()
    assert model.alpha_ in model.alphas and model.scaling_ in model.validation_loss_
    assert all(len(losses) == len(model.alphas) for losses in model.validation_loss_.values())
    flat = GlobalDistribution().fit(parts.train)
    glob = pd.DataFrame(np.tile(flat.global_, (len(probs), 1)), index=probs.index, columns=probs.columns)
    gold, label = parts.test.responses, parts.test.label
    # the synthetic texts hold words chosen by the task's true score; measured 0.53 vs 0.78
    assert wd_of(probs, gold, label) < wd_of(glob, gold, label) - 0.2


def test_an_informative_reference_helps_and_a_missing_one_is_flagged(synthetic, parts) -> None:
    truth = synthetic.dataset.responses.groupby("task")["label"].mean()  # an oracle "LLM": the real mean
    reference = pd.DataFrame({"y_ref": truth})
    text = LinearText(embedder="hashing").fit(parts.train)
    both = LinearText(embedder="hashing", reference=reference).fit(parts.train)
    gold, label = parts.test.responses, parts.test.label
    tasks = parts.test.tasks
    # measured 0.21 with the oracle reference vs 0.53 without
    assert wd_of(both.predict_proba(tasks), gold, label) < wd_of(text.predict_proba(tasks), gold, label) - 0.15
    # a task without a reference gets the training mean and the missing flag, never NaN
    partial = LinearText(embedder="hashing", reference=lambda t: reference.drop(index=t["task"].iloc[:1]))
    probs = partial.fit(parts.train).predict_proba(tasks)
    assert probs.notna().all().all() and np.allclose(probs.sum(axis=1), 1.0)


def test_the_runner_knows_both_linear_methods(synthetic) -> None:
    truth = synthetic.dataset.responses.groupby("task")["label"].mean()
    out = run_experiment(synthetic.dataset, methods=["text-ridge", "text+reference"], split="task", seeds=[0],
                         aggregators=["mean"], options={"embedder": "hashing",
                                                        "reference": pd.DataFrame({"y_ref": truth})},
                         progress=False, noise=False)
    wd = out[out["metric"] == "avg_wd"].set_index("method")["value"]
    assert set(wd.index) == {"text-ridge", "text+reference"} and wd.notna().all()


def test_bad_settings_are_refused(parts) -> None:
    with pytest.raises(ConfigError, match="alphas"):
        LinearText(embedder="hashing", alphas=(-1.0,)).fit(parts.train)
    with pytest.raises(ConfigError, match="fitted"):
        LinearText(embedder="hashing").predict_proba(parts.test.tasks)
    with pytest.raises(ConfigError, match="y_ref column or p_"):
        LinearText(embedder="hashing", reference=pd.DataFrame({"x": [1.0]}, index=["t0000"])).fit(parts.train)


def test_text_reference_reads_hidden_states_as_their_principal_components() -> None:
    """A hidden state with one informative direction among 40 noise dimensions: the linear baseline reduces
    it to its principal components over the training tasks and still finds the signal."""
    import numpy as np
    import pandas as pd

    from crowdllm.data.splits import split_dataset
    from crowdllm.data.synthetic import make_synthetic_crowd
    from crowdllm.evaluate.baselines import LinearText

    syn = make_synthetic_crowd(n_tasks=200, n_workers=30, random_state=0)
    rng = np.random.default_rng(0)
    h = rng.normal(size=(200, 40))
    h[:, 5] = 3 * syn.scores.to_numpy()  # the strongest direction of the states carries the task's score
    ref = pd.DataFrame(h, index=syn.truth.index.astype(str), columns=[f"h_{i}" for i in range(40)])
    ref.insert(0, "y_ref", 3.0)
    parts = split_dataset(syn.dataset, by="task", test_size=0.3, random_state=0)
    fitted = LinearText(embedder="hashing", reference=ref, hidden_components=4).fit(parts.train)
    assert fitted.hidden_basis_.shape == (1 + 4, 40) and abs(fitted.hidden_basis_[1, 5]) > 0.9
    levels = np.asarray(syn.dataset.label.levels, dtype=float)
    means = fitted.predict_proba(parts.test.tasks).to_numpy() @ levels
    truth = syn.truth.rename(str).reindex(parts.test.tasks["task"].astype(str)).to_numpy()
    # measured over seeds 0-2: correlation 0.988-0.994 with the tasks' true means; 0.825-0.894 from the text
    # alone (the same baseline given y_ref only)
    assert np.corrcoef(means, truth)[0, 1] > 0.95
