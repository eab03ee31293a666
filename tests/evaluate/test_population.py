"""The population protocol and the sampling oracle: hand-checked scores and known floors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.dataset import LabelSpec
from crowdllm.errors import ConfigError
from crowdllm.evaluate.baselines import GlobalDistribution
from crowdllm.evaluate.metrics import (
    evaluate_distributions,
    evaluate_population,
    evaluate_predictions,
    evaluate_votes,
    replicate_pairs,
)
from crowdllm.evaluate.noise import SAMPLING_ORACLE, noise_ceiling, sampling_oracle

ORDINAL = LabelSpec("ordinal", scale=(1, 5))


def scores(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(r.aggregator, r.metric): r.value for r in frame.itertuples()}


def uniform_crowd(n_tasks: int = 200, per_level: int = 4) -> pd.DataFrame:
    """Every task's population: each level 1..5 given by ``per_level`` workers."""
    rows = [(f"t{t:03d}", f"w{level}{k}", float(level))
            for t in range(n_tasks) for level in range(1, 6) for k in range(per_level)]
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


def test_expected_distribution_scores_by_hand() -> None:
    gold = pd.DataFrame({"task": ["a", "a", "a"], "worker": ["x", "y", "z"], "label": [1.0, 1.0, 2.0]})
    probs = pd.DataFrame([[0.5, 0.5, 0.0, 0.0, 0.0]], index=["a"], columns=ORDINAL.levels)
    got = scores(evaluate_distributions(probs, gold, ORDINAL, ["mean", "mv"]))
    assert got[("mean", "mae")] == pytest.approx(1.5 - 4 / 3)
    # W1 from the CDFs: |0.5 - 2/3| between levels 1 and 2, nothing after
    assert got[("-", "avg_wd")] == pytest.approx(1 / 6)
    assert got[("-", "cs_dist")] == pytest.approx((0.5 * 2 + 0.5 * 1) / (math.sqrt(0.5) * math.sqrt(5)))
    assert got[("mv", "mae")] == pytest.approx(0.0)  # most likely level 1 (first of the tie), gold MV 1
    assert got[("-", "coverage")] == 1.0


def test_a_large_virtual_crowd_approaches_the_expected_distribution(synthetic) -> None:
    ds = synthetic.dataset
    method = GlobalDistribution().fit(ds)
    gold = ds.responses
    pairs, workers = replicate_pairs(gold[["task", "worker"]], ds.workers, per_answer=200, label=ds.label)
    assert len(pairs) == 200 * len(gold) and set(pairs["worker"]) == set(gold["worker"].astype(str))
    pred = method.sample(ds.tasks, workers, pairs=pairs, random_state=0)
    crowd = scores(evaluate_population(pred, gold, ds.label, ["mean"], per_answer=200))
    probs = pd.DataFrame(np.tile(method.global_, (ds.n_tasks, 1)), index=ds.tasks["task"], columns=ds.label.levels)
    exact = scores(evaluate_distributions(probs, gold, ds.label, ["mean"]))
    # ~15 answers per task x 200: the sampled mean is off by ~1.2/sqrt(3000) = 0.02 per task
    assert crowd[("mean", "mae")] == pytest.approx(exact[("mean", "mae")], abs=0.02)
    assert crowd[("-", "avg_wd")] == pytest.approx(exact[("-", "avg_wd")], abs=0.03)
    # the matched protocol's one answer per real answer scores worse than the population it samples
    matched = scores(evaluate_predictions(method.sample(ds.tasks, ds.workers, pairs=gold, random_state=0), gold,
                                          ds.label, ["mean"]))
    assert matched[("-", "avg_wd")] > exact[("-", "avg_wd")] + 0.01  # measured gap 0.034 (~20 answers a task)


def test_sampling_oracle_floor_of_the_matched_protocol() -> None:
    full = uniform_crowd()
    gold = full.groupby("task").head(5)
    var = np.var([1, 2, 3, 4, 5])  # the population variance (draws with replacement)
    oracle = scores(sampling_oracle(gold, ORDINAL, full=full, aggregators=["mean"], n_sim=5, random_state=0))
    # mean of 5 draws vs an independent mean of 5 draws: E|diff| ~ sqrt(2/pi) sqrt(2 var / 5) = 0.71;
    # 1000 task rounds -> standard error ~0.02, the normal approximation for 5 draws adds a little
    assert oracle[("mean", "mae")] == pytest.approx(math.sqrt(2 / math.pi) * math.sqrt(2 * var / 5), abs=0.05)
    big = scores(sampling_oracle(gold, ORDINAL, full=full, aggregators=["mean"], per_answer=50, n_sim=3,
                                 random_state=0))
    ceiling = scores(noise_ceiling(gold, ORDINAL, full=full, aggregators=["mean"], n_sim=2, n_splits=1)
                     .query("method == 'noise-ceiling'").drop(columns="method"))
    # 50 answers per gold answer: the oracle's own noise almost vanishes, leaving the noise ceiling
    assert big[("mean", "mae")] == pytest.approx(ceiling[("mean", "mae")], abs=0.05)
    assert oracle[("mean", "mae")] > big[("mean", "mae")] + 0.15


def test_noise_ceiling_adds_the_sampling_oracle_only_when_asked() -> None:
    full = uniform_crowd(n_tasks=20)
    gold = full.groupby("task").head(5)
    plain = noise_ceiling(gold, ORDINAL, full=full, aggregators=["mean"], n_sim=1, n_splits=1)
    both = noise_ceiling(gold, ORDINAL, full=full, aggregators=["mean"], n_sim=1, n_splits=1,
                         with_sampling_oracle=True)
    assert SAMPLING_ORACLE not in set(plain["method"])
    assert set(both["method"]) == {"noise-ceiling", SAMPLING_ORACLE, "split-half"}


def test_votes_population_divides_counts_and_checks_the_crowd_size() -> None:
    topk = LabelSpec("topk", k=1)
    gold = pd.DataFrame({"task": ["i0", "i1", "i0", "i1"], "worker": ["a", "a", "b", "b"], "label": [1, 0, 1, 0]})
    pairs, _ = replicate_pairs(gold[["task", "worker"]], per_answer=3, label=topk)
    assert set(pairs["worker"]) == {"a#0", "a#1", "a#2", "b#0", "b#1", "b#2"}
    # 6 virtual voters: 3 choose i0, 3 choose i1 -> per real voter 1.5 and 1.5 against gold 2 and 0
    pred = pairs.assign(label=[1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1])
    got = scores(evaluate_population(pred, gold, topk, per_answer=3))
    assert got[("count", "mae")] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="x 3 per real voter"):
        evaluate_votes(pred.head(10), gold, per_answer=3)
    oracle = scores(sampling_oracle(gold, topk, full=gold, n_sim=3, random_state=0))
    assert oracle[("count", "mae")] == 0.0  # everyone votes i0: any redraw agrees


def test_bad_settings_are_refused() -> None:
    gold = uniform_crowd(n_tasks=2)
    with pytest.raises(ConfigError, match="per_answer"):
        replicate_pairs(gold, per_answer=0)
    probs = pd.DataFrame([[1.0, 0, 0]], index=["t000"])
    with pytest.raises(ConfigError, match="3 columns but the scale has 5"):
        evaluate_distributions(probs, gold, ORDINAL)
    with pytest.raises(ConfigError, match="ds has no meaning"):
        evaluate_distributions(probs, gold, ORDINAL, ["ds"])


def test_the_runner_scores_both_protocols_with_their_floors(synthetic) -> None:
    from crowdllm.evaluate.runner import run_experiment, summarize
    from crowdllm.evaluate.table import to_markdown

    out = run_experiment(synthetic.dataset, methods=["global", "text-ridge"], split="task", seeds=[0],
                         aggregators=["mean"], options={"embedder": "hashing"}, progress=False, per_answer=20)
    mae = out[(out["metric"] == "mae")].set_index(["protocol", "method"])["value"]
    assert set(out["protocol"]) == {"matched", "population"}
    assert ("matched", "sampling-oracle") in mae.index and ("population", "sampling-oracle") not in mae.index
    assert ("population", "noise-ceiling") in mae.index
    for method in ("global", "text-ridge"):  # the population protocol has no sampling noise of its own
        assert mae[("population", method)] < mae[("matched", method)]
    assert mae[("matched", "sampling-oracle")] > mae[("population", "noise-ceiling")]
    assert "protocol" in summarize(out).columns
    assert "split by task, population protocol" in to_markdown(out)


def test_the_cli_flag_turns_the_population_protocol_on(tmp_path, capsys) -> None:
    from crowdllm.cli import main
    from crowdllm.data.synthetic import make_synthetic_crowd

    path = tmp_path / "crowd.csv"
    make_synthetic_crowd(n_tasks=20, n_workers=12, random_state=0).dataset.merged().to_csv(path, index=False)
    code = main(["evaluate", "-d", str(path), "--methods", "global", "--seeds", "1", "--aggregators", "mean",
                 "--virtual-per-answer", "5", "--no-progress", "--out", str(tmp_path / "o")])
    assert code == 0
    assert "population protocol" in (tmp_path / "o" / "results.md").read_text()
    capsys.readouterr()
    assert main(["evaluate", "-d", str(path), "--virtual-per-answer", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--virtual-per-answer" in err and "Traceback" not in err
