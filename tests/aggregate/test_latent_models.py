"""Dawid-Skene and GLAD on crowds with a known truth, where majority vote is misled by spammers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.aggregate import GLAD, DawidSkene, MajorityVote


def always_one_spammers() -> tuple[pd.DataFrame, pd.Series]:
    """20 binary tasks (t00-t09 truly 0, t10-t19 truly 1). Two careful workers always answer the truth;
    three spammers always answer 1. On every true-0 task majority vote sees three 1s against two 0s."""
    truth = pd.Series([0.0] * 10 + [1.0] * 10, index=[f"t{i:02d}" for i in range(20)])
    rows = []
    for task, y in truth.items():
        rows += [(task, "good1", y), (task, "good2", y)]
        rows += [(task, s, 1.0) for s in ("spam1", "spam2", "spam3")]
    return pd.DataFrame(rows, columns=["task", "worker", "label"]), truth


def coin_spammers(labels: list) -> tuple[pd.DataFrame, pd.Series]:
    """16 tasks, true labels cycling through ``labels``. Two careful workers always answer the truth.
    Three spammers are each right on exactly half the tasks, in a pattern that covers every
    combination: on tasks 0 and 8 all three are wrong at once (and agree on the same wrong label),
    so majority vote loses exactly those 2 tasks."""
    n = 16
    truth = pd.Series([labels[i % len(labels)] for i in range(n)], index=[f"t{i:02d}" for i in range(n)])
    rows = []
    for i, (task, y) in enumerate(truth.items()):
        wrong = labels[(labels.index(y) + 1) % len(labels)]
        rows += [(task, "good1", y), (task, "good2", y)]
        for j in range(3):
            right = (i % 8) >> j & 1
            rows.append((task, f"spam{j}", y if right else wrong))
    return pd.DataFrame(rows, columns=["task", "worker", "label"]), truth


def test_dawid_skene_ignores_a_spammer_who_always_answers_one() -> None:
    df, truth = always_one_spammers()
    mv = MajorityVote().fit_predict(df)
    assert (mv == truth).sum() == 10  # MV gets every true-0 task wrong

    ds = DawidSkene().fit(df)
    pd.testing.assert_series_equal(ds.labels_, truth, check_names=False, check_index_type=False)
    w = list(ds.workers_)
    spam, good = w.index("spam1"), w.index("good1")
    # the spammer answers 1 whatever the truth: both rows of its confusion matrix put ~all mass on 1
    assert ds.errors_[spam, 0, 1] > 0.99 and ds.errors_[spam, 1, 1] > 0.99
    # the careful worker's matrix is ~ the identity
    assert ds.errors_[good, 0, 0] > 0.99 and ds.errors_[good, 1, 1] > 0.99
    assert ds.priors_.to_numpy() == pytest.approx([0.5, 0.5], abs=1e-3)


@pytest.mark.parametrize("labels", [[0.0, 1.0], ["cat", "dog", "fox"]])
def test_glad_and_dawid_skene_recover_the_truth_where_majority_vote_fails(labels: list) -> None:
    df, truth = coin_spammers(labels)
    mv = MajorityVote().fit_predict(df)
    assert list(mv.index[mv != truth]) == ["t00", "t08"]

    for model in (GLAD(), DawidSkene()):
        out = model.fit_predict(df)
        assert (out == truth).all(), type(model).__name__


def test_glad_learns_who_is_able() -> None:
    df, _ = coin_spammers([0.0, 1.0])
    glad = GLAD().fit(df)
    alphas = glad.alphas_
    assert min(alphas["good1"], alphas["good2"]) > max(alphas[["spam0", "spam1", "spam2"]]) + 1.0
    # a coin-flipping worker carries no information: ability ~ 0 (the prior pulls it to 1 only a little)
    assert np.all(np.abs(alphas[["spam0", "spam1", "spam2"]]) < 0.6)
    assert (glad.betas_ > 0).all()
    assert glad.probas_.sum(axis=1).to_numpy() == pytest.approx(np.ones(16))


def test_glad_learned_class_prior_option() -> None:
    df, truth = always_one_spammers()
    out = GLAD(class_prior="learned").fit(df)
    assert out.priors_.sum() == pytest.approx(1.0)
    with pytest.raises(Exception, match="class_prior"):
        GLAD(class_prior="flat").fit(df)


def test_unanimous_crowd_is_returned_as_is() -> None:
    df = pd.DataFrame({"task": ["a", "a", "b"], "worker": ["x", "y", "x"], "label": [3.0, 3.0, 3.0]})
    for model in (GLAD(), DawidSkene()):
        assert model.fit_predict(df).to_dict() == {"a": 3.0, "b": 3.0}
