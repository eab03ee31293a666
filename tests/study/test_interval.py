"""The interval for a real crowd's mean in a study: sized in `crowd fit`'s validation with SplitConformal,
applied per task in the summaries (`crowd sample --summary`, `crowd ask`), by the task's spread and the
real crowd's size; old cards with one half-width keep working."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.dataset import LabelSpec
from crowdllm.data.splits import split_dataset
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.errors import ConfigError
from crowdllm.evaluate.theory import SplitConformal
from crowdllm.study.card import interval_text
from crowdllm.study.fit import validate
from crowdllm.study.sample import summarize

SCALE = LabelSpec("ordinal", scale=(1, 5))
# a card written by this crowdllm: SplitConformal's tau and q
CARD = {"level": 0.9, "tau": 0.2, "q": 1.5, "coverage": 0.88, "n_check": 20, "calibration_tasks": 40,
        "people_per_task": 4.0, "var_median": 0.8, "virtual_people": 200, "halfwidth": 0.0}
# a card written before the interval by crowd size: one half-width for every task
OLD_CARD = {"level": 0.9, "halfwidth": 1.5, "coverage": 0.9, "n_check": 4, "people_per_task": 5.0}


def answers() -> pd.DataFrame:
    """Task a: answers 1, 2, 2, 5 (variance 3); task b: 3, 3, 3, 3 (variance 0)."""
    return pd.DataFrame({"task": ["a"] * 4 + ["b"] * 4, "worker": list("wxyz") * 2,
                         "label": [1.0, 2.0, 2.0, 5.0, 3.0, 3.0, 3.0, 3.0]})


def test_half_width_is_split_conformal_by_the_tasks_spread_and_the_real_crowds_size():
    table = summarize(answers(), SCALE, interval=CARD).set_index("task")
    # q sqrt(tau^2 + var / n) at the card's 4 people per task, by hand
    assert table.loc["a", "half_width"] == pytest.approx(1.5 * np.sqrt(0.04 + 3 / 4))
    assert table.loc["b", "half_width"] == pytest.approx(1.5 * 0.2)  # no spread: the model's error alone
    assert (table.loc["b", "mean_low"], table.loc["b", "mean_high"]) == pytest.approx((2.7, 3.3))
    assert list(table["interval_real_crowd"]) == [4.0, 4.0] and list(table["interval_coverage"]) == [0.88, 0.88]
    # the same numbers as SplitConformal.predict (one formula)
    conf = SplitConformal.from_fitted(0.2, 1.5, alpha=0.1)
    pred = pd.DataFrame({"mean": [2.5, 3.0], "var": [3.0, 0.0]}, index=["a", "b"])
    assert list(conf.predict(pred, 4)["half_width"]) == pytest.approx(list(table["half_width"]))
    # a larger real crowd has less sampling noise of its own: narrower
    big = summarize(answers(), SCALE, interval=CARD, real_crowd=16).set_index("task")
    assert big.loc["a", "half_width"] == pytest.approx(1.5 * np.sqrt(0.04 + 3 / 16))
    assert big.loc["a", "half_width"] < table.loc["a", "half_width"]
    assert big.loc["b", "half_width"] == pytest.approx(table.loc["b", "half_width"])
    with pytest.raises(ConfigError, match="at least 1 person"):
        summarize(answers(), SCALE, interval=CARD, real_crowd=0)


def test_an_old_card_keeps_its_one_half_width():
    table = summarize(answers(), SCALE, interval=OLD_CARD).set_index("task")
    assert list(table["half_width"]) == [1.5, 1.5]
    assert (table.loc["a", "mean_low"], table.loc["a", "mean_high"]) == (1.0, 4.0)
    assert list(table["interval_real_crowd"]) == [5.0, 5.0]
    with pytest.raises(ConfigError, match="older crowd card"):  # it cannot be sized for another crowd
        summarize(answers(), SCALE, interval=OLD_CARD, real_crowd=10)
    assert "crowd mean ± 1.500" in interval_text(OLD_CARD)


def test_too_few_calibration_tasks_span_the_scale_and_the_card_says_so():
    table = summarize(answers(), SCALE, interval={**CARD, "q": float("inf")})
    assert list(table["mean_low"]) == [1.0, 1.0] and list(table["mean_high"]) == [5.0, 5.0]
    assert "too few held-out tasks (40)" in interval_text({**CARD, "q": float("inf")})
    text = interval_text({**CARD, "halfwidth": 0.61})
    assert "typically ± 0.610 (n = 4" in text and "smaller real crowd" in text


# --------------------------------------------------------------- coverage where the truth is known
TAU = 0.3  # the stand-in crowd's error on each task's mean


class OffByTauCrowd:
    """A stand-in crowd for a synthetic study: each task's answers are its known population mean plus an
    error N(0, TAU^2) fixed per task, plus the generator's own spread per answer, rounded to 1-5."""

    def __init__(self, syn, seed: int) -> None:
        rng = np.random.default_rng(seed + 100)
        self.mean = syn.truth + rng.normal(0, TAU, len(syn.truth))
        self.sd = np.sqrt(0.5 ** 2 + 0.5 ** 2 + 0.5 ** 2)  # noise, diversity, the 50/50 woman_shift of 1

    def fit(self, ds, reference=None):
        self.label_ = ds.label
        return self

    def sample(self, tasks, profiles=None, *, pairs=None, n_people=None, reference=None, random_state=None,
               include_profile=True):
        rng = np.random.default_rng(random_state)
        if pairs is not None:
            ids, workers = pairs["task"].astype(str).to_numpy(), pairs["worker"].astype(str).to_numpy()
        else:
            n = n_people if n_people is not None else len(profiles)
            ids = np.repeat(tasks["task"].astype(str).to_numpy(), n)
            workers = np.tile([f"v{i}" for i in range(n)], len(tasks))
        mu = self.mean.reindex(ids).to_numpy()
        label = np.clip(np.round(mu + self.sd * rng.normal(size=len(ids))), 1, 5)
        return pd.DataFrame({"task": ids, "worker": workers, "label": label})


def coverage_by_size(seed: int) -> dict[str, float]:
    """Size the interval in validate() on 400 synthetic tasks, then cover 400 new tasks' real means at
    crowds of 3 and of 10 people (and the 10-people interval on 3-people crowds, the wrong size)."""
    syn = make_synthetic_crowd(n_tasks=800, n_workers=10, participation=1.0, random_state=seed)
    parts = split_dataset(syn.dataset, by="task", test_size=0.5, random_state=seed)
    crowd = OffByTauCrowd(syn, seed)
    iv = validate(parts.train, None, lambda: crowd, seed=seed)["interval"]
    new = parts.test.tasks
    virtual = crowd.fit(parts.train).sample(new, n_people=200, random_state=seed + 7)
    real = parts.test.responses.astype({"task": str})
    shuffled = real.sample(frac=1.0, random_state=seed + 8)
    out = {"tau": iv["tau"]}
    for k in (3, 10):
        crowd_k = shuffled.groupby("task").head(k)
        truth = crowd_k.groupby("task")["label"].mean()
        for sized in {k, 10}:
            s = summarize(virtual, SCALE, interval=iv, real_crowd=sized).set_index("task")
            y = truth.reindex(s.index)
            out[f"{k}@{sized}"] = float(((y >= s["mean_low"]) & (y <= s["mean_high"])).mean())
    return out


def test_coverage_is_nominal_at_every_real_crowd_size():
    runs = pd.DataFrame([coverage_by_size(seed) for seed in range(3)])
    # Measured over seeds 0-19 (tests/study/test_interval.py coverage_by_size): coverage 0.892 (sd 0.033 per
    # seed) for crowds of 3, 0.894 (sd 0.042) for crowds of 10; the mean of 3 seeds has sd <= 0.025, and
    # 0.06 is 2.5 of those.
    assert runs["3@3"].mean() == pytest.approx(0.9, abs=0.06)
    assert runs["10@10"].mean() == pytest.approx(0.9, abs=0.06)
    # sized for 10 people, the interval misses 3-people crowds' means (0.709, sd 0.064, over the same seeds;
    # the gain of sizing it right was 0.09-0.27 in every seed)
    assert runs["3@10"].mean() < 0.8
    assert (runs["3@3"] - runs["3@10"] > 0.05).all()
