"""Data efficiency: more virtual people average the noise away; more training people help."""

from __future__ import annotations

import pytest

from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses.data_efficiency import data_efficiency, summarize


def _mae(res, method, fraction, n):
    sel = res[(res["method"] == method) & (res["fraction"] == fraction) & (res["n_virtual"] == n)
              & (res["metric"] == "mae")]
    assert len(sel) == 1
    return float(sel["value"].iloc[0])


def test_error_falls_with_crowd_size_and_with_training_people(crowd, methods):
    res = data_efficiency(crowd.dataset, {"task-mean": methods.factory(spread=1.0),
                                          "no-profile": methods.factory(spread=1.0, use_profile=False)},
                          fractions=[0.1, 1.0], sizes=[1, 5, 40], seeds=[0])
    # 2 methods x 2 fractions x 3 sizes x 4 metrics (mae, rmse, wd, coverage)
    assert len(res) == 2 * 2 * 3 * 4
    assert set(res["metric"]) == {"mae", "rmse", "wd", "coverage"}
    for frac in (0.1, 1.0):
        # one noisy virtual person is much worse than the mean of 40
        assert _mae(res, "task-mean", frac, 40) < 0.8 * _mae(res, "task-mean", frac, 1)
    # 8 training people (~4 answers per task) estimate the task means worse than 80 people
    assert _mae(res, "task-mean", 1.0, 40) < _mae(res, "task-mean", 0.1, 40)
    workers = res.groupby("fraction")["n_train_workers"].first()
    assert workers[0.1] == 8 and workers[1.0] == 80
    head = summarize(res)
    assert set(head["fraction"]) == {0.1, 1.0} and (head["n_virtual"] == 40).all()


def test_fractions_outside_zero_one_are_refused(crowd, methods):
    with pytest.raises(ConfigError, match="fraction"):
        data_efficiency(crowd.dataset, {"m": methods.factory()}, fractions=[25])
