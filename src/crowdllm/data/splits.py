"""Train/test splits of a crowd dataset, by worker, by task, or both.

- ``by="worker"`` (the CrowdLLM paper's protocol): the responses of a random ``1 - test_size`` share of
  the workers train, the other workers' responses test. Both parts keep the full tasks table: the
  test asks how *unseen people* answer.
- ``by="task"``: a random ``test_size`` share of the tasks (all their responses) is held out: *unseen
  problems*. Both parts keep the full workers table.
- ``by="both"``: workers and tasks are split independently; train = train workers on train tasks,
  test = test workers on test tasks (*unseen people on unseen problems*). Responses that cross the
  two (a train worker on a test task, or the reverse) are in neither part.

Ids are sorted before shuffling, so a split depends only on the seed and the set of ids, not on row
order. Top-k votes only split by worker: every voter picks exactly k of *all* items, so removing
items would break the k-of-n ballots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from crowdllm._io import rng
from crowdllm.data.dataset import CrowdDataset
from crowdllm.errors import ConfigError, CrowdDataError

SplitBy = Literal["worker", "task", "both"]
SPLIT_BY: tuple[str, ...] = ("worker", "task", "both")


@dataclass
class Split:
    """A train/test split. The id tuples are the split's assignment (sorted); for ``by="worker"``
    both task tuples hold every task, for ``by="task"`` both worker tuples hold every worker."""

    train: CrowdDataset
    test: CrowdDataset
    by: str
    seed: int | None
    train_workers: tuple[str, ...]
    test_workers: tuple[str, ...]
    train_tasks: tuple[str, ...]
    test_tasks: tuple[str, ...]

    def __repr__(self) -> str:
        return (f"Split(by={self.by!r}, seed={self.seed}, train={self.train.n_responses} responses, "
                f"test={self.test.n_responses} responses)")


def _partition(ids: np.ndarray, test_size: float, generator: np.random.Generator,
               what: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    ids = np.sort(ids)
    if len(ids) < 2:
        raise ConfigError(f"cannot split {len(ids)} {what}(s) into train and test; need at least 2")
    n_test = int(round(test_size * len(ids)))
    n_test = min(max(n_test, 1), len(ids) - 1)
    order = generator.permutation(len(ids))
    test = ids[order[:n_test]]
    train = ids[order[n_test:]]
    return tuple(sorted(map(str, train))), tuple(sorted(map(str, test)))


def split_dataset(ds: CrowdDataset, by: SplitBy = "worker", test_size: float = 0.2,
                  random_state: int | None = 0) -> Split:
    """Split ``ds`` into train and test (see the module docs for what each ``by`` means)."""
    if by not in SPLIT_BY:
        raise ConfigError(f"split by '{by}' is not one of {', '.join(SPLIT_BY)}")
    if not isinstance(test_size, (int, float)) or not 0 < float(test_size) < 1:
        raise ConfigError(f"test_size={test_size!r} must be a fraction strictly between 0 and 1")
    if ds.label.kind_.votes and by != "worker":
        raise ConfigError(
            f"split by '{by}' is not possible for top-k votes: each voter selects exactly "
            f"k={ds.label.k} of all the items, so holding items out would break the ballots; "
            "use by='worker'"
        )
    generator = rng(random_state)
    all_workers = tuple(sorted(ds.responses["worker"].astype(str).unique()))
    all_tasks = tuple(sorted(ds.tasks["task"].astype(str).unique()))
    train_w, test_w = all_workers, all_workers
    train_t, test_t = all_tasks, all_tasks
    if by in ("worker", "both"):
        train_w, test_w = _partition(np.array(all_workers, dtype=object), test_size, generator, "worker")
    if by in ("task", "both"):
        answered = np.array(sorted(ds.responses["task"].astype(str).unique()), dtype=object)
        train_t, test_t = _partition(answered, test_size, generator, "task")
    if by == "worker":
        train = ds.subset(workers=train_w)
        test = ds.subset(workers=test_w)
    elif by == "task":
        train = ds.subset(tasks=train_t)
        test = ds.subset(tasks=test_t)
    else:
        train = ds.subset(tasks=train_t, workers=train_w)
        test = ds.subset(tasks=test_t, workers=test_w)
    for part, name in ((train, "train"), (test, "test")):
        if part.n_responses == 0:
            raise CrowdDataError(
                f"splitting by '{by}' left no responses in the {name} part "
                f"({ds.n_responses} responses, {len(all_workers)} workers, {len(all_tasks)} tasks); "
                "use a larger data set or another test_size",
                file=ds.source,
            )
    seed = random_state if isinstance(random_state, (int, np.integer)) else None
    return Split(train=train, test=test, by=by, seed=None if seed is None else int(seed),
                 train_workers=train_w, test_workers=test_w, train_tasks=train_t, test_tasks=test_t)
