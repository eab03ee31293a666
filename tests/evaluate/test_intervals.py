"""Split-conformal intervals for a task's real-crowd mean: coverage where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.splits import split_dataset
from crowdllm.errors import ConfigError
from crowdllm.evaluate.theory import SplitConformal, conformal_intervals


def simulated(n_tasks: int, tau: float, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tasks with a true mean mu_t, a model off by N(0, tau^2), and 3-12 real answers of sd 1."""
    ids = [f"t{i:05d}" for i in range(n_tasks)]
    mu = rng.uniform(1, 4, n_tasks)
    pred = pd.DataFrame({"mean": mu + rng.normal(0, tau, n_tasks), "var": np.ones(n_tasks)}, index=ids)
    sizes = rng.integers(3, 13, n_tasks)
    t = np.repeat(np.arange(n_tasks), sizes)
    gold = pd.DataFrame({"task": np.asarray(ids)[t], "worker": [f"w{j}" for j in range(len(t))],
                         "label": mu[t] + rng.normal(0, 1, len(t))})
    return pred, gold


def test_coverage_is_nominal_on_exchangeable_tasks() -> None:
    rng = np.random.default_rng(0)
    cal_pred, cal_gold = simulated(2000, 0.3, rng)
    conf = SplitConformal(alpha=0.1).fit(cal_pred, cal_gold)
    assert conf.tau_ == pytest.approx(0.3, abs=0.05)  # the model's error on the mean is recovered
    test_pred, test_gold = simulated(4000, 0.3, rng)
    stats = test_gold.groupby("task")["label"].agg(["mean", "count"])
    iv = conf.predict(test_pred, stats["count"])
    covered = ((stats["mean"] >= iv["lower"]) & (stats["mean"] <= iv["upper"])).mean()
    # binomial sd over 4000 tasks 0.005, the calibration quantile adds about as much
    assert covered == pytest.approx(0.9, abs=0.02)
    # a smaller real crowd is noisier, so its interval is wider
    assert iv.loc[stats["count"] == 3, "half_width"].min() > iv.loc[stats["count"] == 12, "half_width"].max()


def test_too_few_calibration_tasks_give_an_infinite_interval() -> None:
    pred, gold = simulated(10, 0.3, np.random.default_rng(1))
    conf = SplitConformal(alpha=0.05).fit(pred, gold)  # 10 tasks cannot promise 95 %
    assert np.isinf(conf.predict(pred, 5)["half_width"]).all()
    with pytest.raises(ConfigError, match="alpha"):
        SplitConformal(alpha=1.5).fit(pred, gold)
    with pytest.raises(ConfigError, match="share no task"):
        SplitConformal().fit(pred.rename(index=lambda t: "x" + t), gold)


def test_a_saved_tau_and_q_give_the_same_intervals() -> None:
    rng = np.random.default_rng(2)
    pred, gold = simulated(200, 0.3, rng)
    conf = SplitConformal(alpha=0.1).fit(pred, gold)
    again = SplitConformal.from_fitted(conf.tau_, conf.q_, alpha=0.1)
    sizes = gold.groupby("task").size()
    pd.testing.assert_frame_equal(again.predict(pred, sizes), conf.predict(pred, sizes))
    assert again.half_width(4.0, 16) == pytest.approx(conf.q_ * np.sqrt(conf.tau_ ** 2 + 0.25))
    for tau, q in ((float("nan"), 1.0), (-0.1, 1.0), (0.2, float("nan")), (0.2, -1.0)):
        with pytest.raises(ConfigError):
            SplitConformal.from_fitted(tau, q)
    with pytest.raises(ConfigError, match="not fitted"):
        SplitConformal().half_width(1.0, 5)


class TaskMeanCrowd:
    """A stand-in crowd that answers each task with its real mean + N(0, 1) noise (an oracle)."""

    def __init__(self, truth: pd.Series) -> None:
        self.truth = truth

    def sample(self, tasks, profiles=None, reference=None, random_state=None, include_profile=True):
        rng = np.random.default_rng(random_state)
        ids = np.repeat(tasks["task"].astype(str).to_numpy(), len(profiles))
        return pd.DataFrame({"task": ids, "worker": "v", "label": self.truth.reindex(ids).to_numpy()
                             + rng.normal(0, 1, len(ids))})


def test_conformal_intervals_calibrate_on_training_tasks(synthetic) -> None:
    ds = synthetic.dataset
    truth = ds.responses.astype({"task": str}).groupby("task")["label"].mean()
    parts = split_dataset(ds, by="task", test_size=0.5, random_state=0)
    refits: list[int] = []

    def refit(train):
        refits.append(train.n_tasks)
        return TaskMeanCrowd(truth)

    report = conformal_intervals(TaskMeanCrowd(truth), refit, parts.train, parts.test, split="task", alpha=0.2,
                                 n_virtual=50, valid_size=0.5)
    assert refits == [15]  # one refit, on the half of the 30 training tasks not used for calibration
    assert report.summary["calibration_tasks"] == 15 and report.summary["tasks"] == 30
    frame = report.per_task
    assert ((frame["lower"] < frame["virtual_mean"]) & (frame["virtual_mean"] < frame["upper"])).all()
    assert frame["covered"].mean() >= 0.6  # 30 tasks at nominal 80 %: binomial sd 0.07
    assert "Split-conformal" in report.render()
