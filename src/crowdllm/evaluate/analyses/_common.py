"""Plumbing shared by the analyses: method factories, virtual populations, error curves.

A *method factory* is any callable ``factory(train: CrowdDataset, random_state: int) -> fitted`` whose
result can answer tasks for virtual people. Two sampling interfaces are understood:

- the baselines' ``fitted.sample(tasks, workers, pairs=, random_state=)``;
- the digital crowd's ``fitted.sample(tasks, profiles=, pairs=, random_state=)``.

Either way the analyses ask a *nested* question: a virtual population of ``P`` people is drawn once
and every person answers every evaluated task, so "the first ``N`` people" is a crowd of size ``N``
for each ``N <= P``. Growing ``N`` adds people to the same crowd, which makes the curves smooth and
lets one sampling call serve every crowd size.

Error curves are computed from the ``tasks x people`` label matrix in one vectorised pass:

- ``abs_err[t, N]`` = ``|mean of the first N virtual labels - mean of the gold labels|`` of task ``t``
  (for top-k votes the means are vote shares and the error is rescaled to vote counts of the gold
  electorate, so it reads like the paper's Table 5);
- ``wd[t, N]`` = the Wasserstein-1 distance between the first ``N`` virtual labels and the gold labels
  of task ``t`` (exact, through the label CDFs on the label's levels).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import rng
from crowdllm.crowd.kinds import kind_of
from crowdllm.data.dataset import CrowdDataset
from crowdllm.errors import ConfigError, CrowdLLMError
from crowdllm.evaluate.progress import steps

#: What the analyses take per method: ``(train, seed) -> fitted model`` with ``sample(...)``. Registered
#: methods (the runner's one :data:`~crowdllm.evaluate.runner.MethodFactory` contract) become trainers
#: through :func:`registered_methods`; tests and notebooks may pass any such callable.
Trainer = Callable[[CrowdDataset, int], Any]

# ---------------------------------------------------------------------------------------- settings


def check_fractions(fractions: Sequence[float], setting: str = "fractions") -> list[float]:
    out = [float(f) for f in fractions]
    if not out:
        raise ConfigError(f"{setting}: give at least one value")
    for f in out:
        if not 0.0 < f <= 1.0:
            raise ConfigError(f"{setting}: {f} is not a fraction in (0, 1] (write 0.25 for 25%)")
    return sorted(set(out))


def check_sizes(sizes: Sequence[int], setting: str) -> list[int]:
    out = sorted({int(n) for n in sizes})
    if not out:
        raise ConfigError(f"{setting}: give at least one value")
    if out[0] < 1:
        raise ConfigError(f"{setting}: sizes must be >= 1 (got {out[0]})")
    return out


def check_methods(methods: Mapping[str, Trainer]) -> dict[str, Trainer]:
    if not methods:
        raise ConfigError("give at least one method")
    for name, factory in methods.items():
        if not callable(factory):
            raise ConfigError(f"method '{name}' is not a factory (a callable (train, random_state) -> model)")
    return dict(methods)


def check_numeric(dataset: CrowdDataset, analysis: str) -> None:
    if not dataset.label.is_numeric:
        raise ConfigError(
            f"the {analysis} analysis needs numeric labels (ordinal, continuous or top-k votes); "
            f"'{dataset.name}' has {dataset.label.kind} labels"
        )


# ---------------------------------------------------------------------------------------- splits


def split_train_test(dataset: CrowdDataset, by: str, test_size: float, seed: int) -> tuple[CrowdDataset, CrowdDataset]:
    """Train and test parts through :func:`crowdllm.data.split_dataset` (the project's one splitter)."""
    from crowdllm.data import split_dataset

    split = split_dataset(dataset, by=by, test_size=test_size, random_state=seed)
    return split.train, split.test


def worker_order(train: CrowdDataset, seed: int) -> np.ndarray:
    """A seeded order of the training people; the first ``n`` of it is the ``n``-person subsample, so
    smaller subsamples are nested in larger ones."""
    workers = np.array(sorted(train.responses["worker"].unique()))
    return rng(seed).permutation(workers)


def subsample_workers(train: CrowdDataset, fraction: float, seed: int) -> CrowdDataset:
    """Keep a seeded ``fraction`` of the training people (at least one), with all their responses.

    Subsamples with the same seed are nested: the 10% people are among the 25% people."""
    order = worker_order(train, seed)
    n = max(1, int(round(fraction * len(order))))
    return train.subset(workers=order[:n], keep_all_tasks=True)


# ---------------------------------------------------------------------------------------- people


def draw_people(pool: pd.DataFrame, n: int, *, fixed: bool = False, seed: int = 0,
                prefix: str = "v") -> pd.DataFrame:
    """``n`` virtual people with profiles drawn (with replacement, seeded) from ``pool``.

    ``fixed``: everyone gets the single most common profile of the pool (ties: the first one seen),
    the paper's "fixed profile" crowd whose people differ only through the model's own randomness."""
    attrs = [c for c in pool.columns if c != "worker"]
    if len(pool) == 0:
        raise ConfigError("there are no people to draw virtual profiles from")
    if fixed:
        if attrs:
            keyed = pool[attrs].apply(lambda row: "|".join(map(str, row)), axis=1)  # NaN-safe
            mode = keyed.value_counts(sort=True).index[0]
            row = pool.loc[keyed.eq(mode).to_numpy()].iloc[[0]]
        else:
            row = pool.iloc[[0]]
        picked = pd.concat([row] * n, ignore_index=True)
    else:
        idx = rng(seed).integers(0, len(pool), size=n)
        picked = pool.iloc[idx].reset_index(drop=True)
    out = picked[attrs].copy() if attrs else pd.DataFrame(index=range(n))
    out.insert(0, "worker", [f"{prefix}{i:05d}" for i in range(n)])
    return out.reset_index(drop=True)


def profile_pool(train: CrowdDataset, test: CrowdDataset, which: str) -> pd.DataFrame:
    """The profiles virtual people are drawn from: the held-out people (``test``, the population the
    gold answers come from), the training people (``train``) or both (``all``)."""
    if which == "test":
        ids = test.responses["worker"].unique()
        frame = test.workers
    elif which == "train":
        ids = train.responses["worker"].unique()
        frame = train.workers
    elif which == "all":
        frame = pd.concat([train.workers, test.workers]).drop_duplicates("worker")
        ids = frame["worker"].to_numpy()
    else:
        raise ConfigError(f"profile pool '{which}' is not one of test, train, all")
    return frame[frame["worker"].isin(set(ids))].reset_index(drop=True)


def virtual_people(train: CrowdDataset, test: CrowdDataset, pool: str, n: int, *, seed: int) -> pd.DataFrame:
    """``n`` virtual people (:func:`draw_people`, seeded) with profiles from the ``pool`` people of one
    split (:func:`profile_pool`: ``test``, ``train`` or ``all``)."""
    return draw_people(profile_pool(train, test, pool), n, seed=seed)


# ---------------------------------------------------------------------------------------- sampling


def sample_responses(fitted: Any, tasks: pd.DataFrame, people: pd.DataFrame, *,
                     random_state: int) -> pd.DataFrame:
    """Every person in ``people`` answers every task in ``tasks``; returns ``task, worker, label``."""
    sample = getattr(fitted, "sample", None)
    if sample is None:
        raise ConfigError(f"the method's model ({type(fitted).__name__}) has no sample(...) method")
    pairs = pd.DataFrame({
        "task": np.repeat(tasks["task"].astype(str).to_numpy(), len(people)),
        "worker": np.tile(people["worker"].to_numpy(), len(tasks)),
    })
    params = inspect.signature(sample).parameters
    if "profiles" in params:
        out = sample(tasks, profiles=people, pairs=pairs, random_state=random_state)
    else:
        out = sample(tasks, people, pairs=pairs, random_state=random_state)
    if not isinstance(out, pd.DataFrame) or not {"task", "worker", "label"} <= set(out.columns):
        raise CrowdLLMError(f"{type(fitted).__name__}.sample must return a frame with task, worker, label")
    return out[["task", "worker", "label"]].assign(task=lambda f: f["task"].astype(str),
                                                    worker=lambda f: f["worker"].astype(str))


def label_matrix(dataset: CrowdDataset, responses: pd.DataFrame, tasks: Sequence[str],
                 people: Sequence[str]) -> np.ndarray:
    """The ``tasks x people`` matrix of numeric labels (codes for categorical labels).

    A pair the method did not answer, or answered with a missing label (a method that cannot
    predict a task), is NaN."""
    labels = responses["label"]
    codes = np.full(len(responses), np.nan)
    ok = labels.notna().to_numpy()
    if ok.any():
        codes[ok] = dataset.label_codes(labels[ok])
    frame = pd.DataFrame({"task": responses["task"].to_numpy(), "worker": responses["worker"].to_numpy(),
                          "y": codes})
    frame = frame.drop_duplicates(["task", "worker"], keep="first")
    wide = frame.pivot(index="task", columns="worker", values="y")
    wide = wide.reindex(index=list(tasks), columns=list(people))
    return wide.to_numpy(dtype=float)


# ---------------------------------------------------------------------------------------- curves


@dataclass
class Curves:
    """Per-task error of the nested virtual crowds of each size in ``sizes``.

    ``abs_err`` and ``wd`` have shape ``(n_tasks, len(sizes))`` over the *scored* tasks (``tasks``:
    those the method answered for every virtual person); ``coverage`` is their share of the tasks
    with gold answers. ``gold_mean`` / ``virtual_mean`` hold the per-task aggregates."""

    tasks: list[str]
    sizes: list[int]
    abs_err: np.ndarray
    wd: np.ndarray
    gold_mean: np.ndarray
    virtual_mean: np.ndarray
    gold_n: np.ndarray
    unit: float = 1.0  # multiply shares by this to get counts (top-k votes), else 1
    coverage: float = 1.0

    def summary(self) -> pd.DataFrame:
        """MAE, RMSE, Avg WD and coverage for each crowd size (long form: n_virtual, metric, value)."""
        rows = []
        empty = len(self.tasks) == 0
        for j, n in enumerate(self.sizes):
            e = self.abs_err[:, j]
            rows.append((n, "mae", np.nan if empty else float(np.mean(e))))
            rows.append((n, "rmse", np.nan if empty else float(np.sqrt(np.mean(e ** 2)))))
            rows.append((n, "wd", np.nan if empty else float(np.mean(self.wd[:, j]))))
            rows.append((n, "coverage", self.coverage))
        return pd.DataFrame(rows, columns=["n_virtual", "metric", "value"])


def gold_by_task(test: CrowdDataset, tasks: Sequence[str]) -> list[np.ndarray]:
    codes = test.label_codes()
    frame = pd.DataFrame({"task": test.responses["task"].to_numpy(), "y": codes})
    groups = {t: g.to_numpy(dtype=float) for t, g in frame.groupby("task")["y"]}
    return [groups.get(t, np.empty(0)) for t in tasks]


def error_curves(dataset: CrowdDataset, matrix: np.ndarray, gold: Sequence[np.ndarray], tasks: Sequence[str],
                 sizes: Sequence[int]) -> Curves:
    """Error of the first-``N`` virtual crowd against the gold answers, for every ``N`` in ``sizes``.

    ``matrix`` is ``tasks x people`` (people in the order they join the crowd). Tasks with a missing
    virtual answer (NaN) are left out and counted in ``coverage``; every task needs a gold answer.

    Top-k votes: the per-item mean of the 0/1 labels is a vote share; shares times the number of gold
    voters are vote counts, so ``abs_err`` is the per-item count error against the real electorate and
    ``wd`` (the same for every item) is the 1-Wasserstein distance between the two *sets* of per-item
    counts, as in :func:`crowdllm.evaluate.metrics.evaluate_votes`."""
    sizes = [int(n) for n in sizes]
    if sizes and sizes[-1] > matrix.shape[1]:
        raise ConfigError(f"crowd size {sizes[-1]} is larger than the {matrix.shape[1]} virtual people sampled")
    gold_n_all = np.array([len(g) for g in gold])
    if (gold_n_all == 0).any():
        raise ConfigError("every evaluated task needs at least one gold answer")
    scored = ~np.isnan(matrix).any(axis=1)
    coverage = float(scored.mean()) if len(scored) else 0.0
    matrix = matrix[scored]
    gold = [g for g, keep in zip(gold, scored, strict=True) if keep]
    tasks = [t for t, keep in zip(tasks, scored, strict=True) if keep]
    n_tasks = matrix.shape[0]
    gold_n = np.array([len(g) for g in gold], dtype=int)
    gold_mean = np.array([g.mean() for g in gold])
    counts = np.arange(1, matrix.shape[1] + 1, dtype=float)
    cummean = np.cumsum(matrix, axis=1) / counts
    idx = np.array(sizes) - 1
    virtual_mean = cummean[:, idx]
    kind = kind_of(dataset.label)
    votes = kind is not None and kind.votes
    unit = float(np.max(gold_n_all)) if votes else 1.0
    abs_err = np.abs(virtual_mean - gold_mean[:, None]) * unit

    wd = np.empty((n_tasks, len(sizes)))
    if n_tasks == 0:
        pass
    elif votes:
        from scipy.stats import wasserstein_distance

        for j in range(len(sizes)):
            wd[:, j] = wasserstein_distance(virtual_mean[:, j] * unit, gold_mean * unit)
    elif kind is not None and kind.choice_names(dataset.label):  # a finite set of levels (ordinal, categorical)
        levels = dataset.label.levels
        onehot = (matrix[:, :, None] == levels[None, None, :]).astype(float)
        if not np.allclose(onehot.sum(axis=2), 1.0):
            bad = np.argwhere(~np.isclose(onehot.sum(axis=2), 1.0))[0]
            raise CrowdLLMError(f"virtual label {matrix[bad[0], bad[1]]} for task '{tasks[bad[0]]}' is not one "
                                f"of the label levels {levels.tolist()}")
        # CDF of the first-N labels on the levels: (tasks, sizes, levels)
        cdf_p = np.cumsum(np.cumsum(onehot, axis=1)[:, idx, :], axis=2) / np.array(sizes, float)[None, :, None]
        gold_hist = np.stack([(g[:, None] == levels[None, :]).sum(axis=0) / len(g) for g in gold])
        cdf_q = np.cumsum(gold_hist, axis=1)
        wd = (np.abs(cdf_p[:, :, :-1] - cdf_q[:, None, :-1]) * np.diff(levels)[None, None, :]).sum(axis=2)
    else:
        from scipy.stats import wasserstein_distance

        for t in range(n_tasks):
            for j, n in enumerate(sizes):
                wd[t, j] = wasserstein_distance(matrix[t, :n], gold[t])
    return Curves(tasks=list(tasks), sizes=sizes, abs_err=abs_err, wd=wd, gold_mean=gold_mean * unit,
                  virtual_mean=virtual_mean * unit, gold_n=gold_n, unit=unit, coverage=coverage)


def evaluate_method(dataset: CrowdDataset, fitted: Any, test: CrowdDataset, people: pd.DataFrame,
                    sizes: Sequence[int], *, seed: int, tasks: Sequence[str] | None = None,
                    keep_responses: bool = False) -> tuple[Curves, pd.DataFrame | None]:
    """Sample ``people`` on the test tasks that have gold answers and compute the error curves."""
    gold_tasks = sorted(test.responses["task"].unique())
    if tasks is not None:
        wanted = set(map(str, tasks))
        gold_tasks = [t for t in gold_tasks if t in wanted]
    if not gold_tasks:
        raise ConfigError("the test part has no tasks with held-out answers")
    task_tab = dataset.tasks.set_index("task").loc[gold_tasks].reset_index()
    responses = sample_responses(fitted, task_tab, people, random_state=seed)
    matrix = label_matrix(dataset, responses, gold_tasks, people["worker"].tolist())
    curves = error_curves(dataset, matrix, gold_by_task(test, gold_tasks), gold_tasks, sizes)
    return curves, (responses if keep_responses else None)


def tidy(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame[list(columns)] if len(frame) else pd.DataFrame(columns=list(columns))


@contextlib.contextmanager
def method_steps(total: int, label: str, rows: list[dict[str, Any]], columns: Sequence[str], *,
                 progress: bool, on_step: Callable[[pd.DataFrame], None] | None) -> Iterator[Callable[[], None]]:
    """Yield ``done()`` for an analysis' loop of ``total`` fitted methods, to call after each one: it
    moves the progress bar (``progress``) one step and hands ``on_step``, when given, the rows so far
    as a :func:`tidy` frame of ``columns``, so a caller can save what is done (the ``on_step`` contract
    every analysis shares). ``rows`` is the list the loop appends to."""
    with steps(total, label, enabled=progress) as advance:

        def done() -> None:
            advance()
            if on_step is not None:
                on_step(tidy(rows, columns))

        yield done


# ---------------------------------------------------------------------------------------- methods


def registered_methods(names: Sequence[str], dataset: CrowdDataset, *, split: str,
                       options: Mapping[str, Any] | None = None,
                       notes: list[str] | None = None) -> dict[str, Trainer]:
    """Factories for methods registered with the experiment runner (``crowdllm evaluate --methods``).

    Each factory builds the method for the seed (through the runner's :class:`ExperimentContext`, so
    a method gets the same options as in ``evaluate``) and fits it. Methods that cannot run here (a
    seen-tasks-only method on a task split, a method not defined for these labels) are left out and
    the reason appended to ``notes``."""
    from crowdllm.evaluate.runner import ExperimentContext, method_spec

    out: dict[str, Trainer] = {}
    for raw in names:
        name = str(raw).strip()
        spec = method_spec(name)
        reason = spec.skip_reason(split, dataset.label)
        if reason is not None:
            if notes is not None:
                notes.append(reason)
            continue

        def trainer(train: CrowdDataset, seed: int, spec: Any = spec) -> Any:
            ctx = ExperimentContext(dataset=dataset.name, split=split, seed=int(seed), label=dataset.label,
                                    options=dict(options or {}))
            return spec.fit(ctx, train)

        out[name] = trainer
    if not out:
        raise ConfigError("none of the methods can run on this data and split"
                          + (f" ({'; '.join(notes)})" if notes else ""))
    return out
