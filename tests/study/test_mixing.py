"""Mixing in real answers: the task-memory shift, by hand, on decisions with known numbers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from crowdllm.data import LabelSpec
from crowdllm.errors import ConfigError, CrowdDataError
from crowdllm.study.sample import mix_real, read_real, summarize


def _crowd(label: LabelSpec, kappa: float) -> SimpleNamespace:
    from crowdllm.crowd.kinds import crowd_kind

    return SimpleNamespace(label_=label, kappa_=kappa, kind_=crowd_kind(label))


def test_ratings_move_by_the_shrunken_mean_residual():
    crowd = _crowd(LabelSpec("ordinal", scale=(1, 5)), kappa=1.0)
    dec = pd.DataFrame({"task": ["a", "a", "b", "b"], "worker": ["x", "y", "x", "y"],
                        "mu": [1.5, 2.5, 3.0, 3.0], "mu_mean": [1.5, 2.5, 3.0, 3.0]})
    real = pd.DataFrame({"task": ["a", "a"], "label": [5.0, 5.0]})
    mu = mix_real(crowd, dec, real)
    # task a: crowd mean 2, two answers of 5: (10 - 2 * 2) / (2 + 1) = 2 added to every person on a
    np.testing.assert_allclose(mu, [3.5, 4.5, 3.0, 3.0])
    # more shrinkage, less movement: kappa 4 -> 6 / 6 = 1
    np.testing.assert_allclose(mix_real(_crowd(crowd.label_, 4.0), dec, real)[:2], [2.5, 3.5])


def test_category_shares_move_like_a_dirichlet_update():
    crowd = _crowd(LabelSpec("categorical", categories=("-1", "1")), kappa=2.0)
    q = np.array([[0.8, 0.2], [0.5, 0.5]])
    dec = pd.DataFrame({"task": ["a", "b"], "worker": ["x", "x"], "mu_-1": np.log(q[:, 0]), "mu_1": np.log(q[:, 1])})
    real = pd.DataFrame({"task": ["a", "a", "a"], "label": ["1", "1", "-1"]})
    logits = mix_real(crowd, dec, real)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # task a: q = (0.8, 0.2), counts (1, 2), n = 3: q + (counts - n q) / (n + kappa) = (0.52, 0.48)
    np.testing.assert_allclose(p[0], [0.52, 0.48], atol=1e-9)
    np.testing.assert_allclose(p[1], [0.5, 0.5])


def test_a_crowd_without_task_memory_cannot_mix():
    with pytest.raises(ConfigError, match="no task memory"):
        mix_real(_crowd(LabelSpec("ordinal", scale=(1, 5)), float("inf")),
                 pd.DataFrame({"task": ["a"], "worker": ["x"], "mu": [1.0], "mu_mean": [1.0]}),
                 pd.DataFrame({"task": ["a"], "label": [2.0]}))


def test_real_answers_are_checked_against_the_tasks_and_the_label():
    label = LabelSpec("categorical", categories=("-1", "1"))
    ok = read_real(pd.DataFrame({"task": [1, 2], "label": [1.0, "-1"]}), label, {"1", "2"})
    assert list(ok["task"]) == ["1", "2"] and list(ok["label"]) == ["1", "-1"]
    with pytest.raises(CrowdDataError, match="'3' is not among the tasks sampled"):
        read_real(pd.DataFrame({"task": ["1", "3"], "label": ["1", "1"]}, index=[2, 3]), label, {"1"})
    with pytest.raises(CrowdDataError, match="'0' is not one of the crowd's categories"):
        read_real(pd.DataFrame({"task": ["1"], "label": [0]}), label, {"1"})


def test_summary_rows_hold_mean_shares_decision_and_interval():
    answers = pd.DataFrame({"task": ["a"] * 4 + ["b"] * 2, "worker": list("wxyzwx"),
                            "label": [1.0, 2.0, 2.0, 5.0, 4.0, 4.0]})
    old_card = {"level": 0.9, "halfwidth": 1.5, "coverage": 0.9, "n_check": 4, "people_per_task": 5.0}
    table = summarize(answers, LabelSpec("ordinal", scale=(1, 5)), interval=old_card).set_index("task")
    assert table.loc["a", "mean"] == 2.5 and table.loc["a", "share_2"] == 0.5 and table.loc["a", "share_3"] == 0
    assert table.loc["a", "decision"] == 2.5  # the mean aggregator
    assert (table.loc["a", "mean_low"], table.loc["a", "mean_high"]) == (1.0, 4.0)
    assert table.loc["b", "mean_high"] == 5.0  # clipped to the scale
