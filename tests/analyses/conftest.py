"""Cheap methods with known behaviour, passed to the analyses as method factories.

``TaskMeanMethod`` learns each task's mean answer and (optionally) how much women rate above men, then
answers ``round(task mean + profile shift + spread * N(0, 1))`` clipped to the scale. With ``spread > 0``
a single virtual person is noisy and a larger crowd averages the noise away; with ``use_profile`` the
answers depend on the virtual person's gender (as in the synthetic crowd, where women rate one point
higher). Tasks it never saw get the global mean (or no answer, with ``unseen="nan"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.synthetic import make_synthetic_crowd


class TaskMeanMethod:
    def __init__(self, spread: float = 0.8, use_profile: bool = True, unseen: str = "global",
                 random_state: int = 0) -> None:
        self.spread = spread
        self.use_profile = use_profile
        self.unseen = unseen
        self.random_state = random_state

    def fit(self, train):
        merged = train.merged()
        y = merged["label"].astype(float)
        self.scale_ = train.label.scale
        self.global_ = float(y.mean())
        shift = 0.0
        if self.use_profile and "gender" in merged:
            resid = y - y.groupby(merged["task"]).transform("mean")
            by = resid.groupby(merged["gender"]).mean()
            shift = float(by.get("Woman", 0.0) - by.get("Man", 0.0))
        self.woman_shift_ = shift
        # the task means are those of a half-women population
        mean = y.groupby(merged["task"]).mean()
        women = merged["gender"].eq("Woman").groupby(merged["task"]).mean() if "gender" in merged else 0.5
        self.task_mean_ = mean - (women - 0.5) * shift
        return self

    def sample(self, tasks, workers, *, pairs, random_state=None):
        gen = np.random.default_rng(random_state)
        means = self.task_mean_.reindex(pairs["task"].to_numpy()).to_numpy()
        if self.unseen == "global":
            means = np.where(np.isnan(means), self.global_, means)
        gender = workers.set_index("worker")["gender"].reindex(pairs["worker"].to_numpy()).to_numpy()
        shift = np.where(gender == "Woman", 0.5, -0.5) * self.woman_shift_ if self.use_profile else 0.0
        raw = means + shift + self.spread * gen.normal(size=len(pairs))
        lo, hi = self.scale_
        labels = np.clip(np.round(raw), lo, hi)
        return pd.DataFrame({"task": pairs["task"].to_numpy(), "worker": pairs["worker"].to_numpy(),
                             "label": labels})


class WordMeanMethod:
    """A tiny text model: each word's mean answer over the training tasks containing it; a task's answer
    is the mean over its known words (the global mean when none is known), rounded, plus noise."""

    def __init__(self, spread: float = 0.5) -> None:
        self.spread = spread

    def fit(self, train):
        task_mean = train.responses.groupby("task")["label"].mean()
        words = train.tasks.set_index("task")["text"].reindex(task_mean.index).str.split()
        pairs = [(w, m) for ws, m in zip(words, task_mean, strict=True) for w in ws]
        self.word_ = pd.DataFrame(pairs, columns=["w", "m"]).groupby("w")["m"].mean()
        self.global_ = float(task_mean.mean())
        self.scale_ = train.label.scale
        return self

    def predict(self, text: str) -> float:
        known = [self.word_[w] for w in text.split() if w in self.word_.index]
        return float(np.mean(known)) if known else self.global_

    def sample(self, tasks, workers, *, pairs, random_state=None):
        gen = np.random.default_rng(random_state)
        center = {t: self.predict(x) for t, x in zip(tasks["task"], tasks["text"], strict=True)}
        raw = pairs["task"].map(center).to_numpy() + self.spread * gen.normal(size=len(pairs))
        return pairs.assign(label=np.clip(np.round(raw), *self.scale_))


def task_mean_factory(**kwargs):
    def factory(train, random_state):
        return TaskMeanMethod(random_state=random_state, **kwargs).fit(train)

    return factory


class ConstantMethod:
    """Everyone always answers ``value`` (a method that knows nothing)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def sample(self, tasks, workers, *, pairs, random_state=None):
        return pairs.assign(label=float(self.value))


@pytest.fixture(scope="session")
def crowd():
    """100 people, 80 tasks, every person rates about half of them; women rate one point higher."""
    return make_synthetic_crowd(n_tasks=80, n_workers=100, participation=0.5, noise=0.3, diversity=0.3,
                                random_state=3)


@pytest.fixture
def methods():
    """The cheap method classes and factory builder, for tests to compose."""

    class Kit:
        TaskMean = TaskMeanMethod
        Constant = ConstantMethod
        WordMean = WordMeanMethod
        factory = staticmethod(task_mean_factory)

    return Kit
