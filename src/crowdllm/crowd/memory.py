"""Task memory: what the real training people said about each task they answered.

After the belief network is trained, each seen task gets an offset on the model scale: the mean
training residual on that task, shrunk towards 0 like a random effect, ``sum(r) / (n_t + kappa)``.
``kappa`` is given (default 1 pseudo-answer) or, with ``kappa=None``, estimated as the within-task
variance over the between-task variance of the residuals. For categories and votes the label
distribution is shrunk Dirichlet-style and the offset is a logit shift (the label kind decides:
:meth:`crowdllm.crowd.kinds.CrowdKind.offsets`). A new person on a seen task gets
``y_ref + offset + delta``; an unseen task gets no offset.

>>> import numpy as np
>>> import pandas as pd
>>> from crowdllm.crowd.kinds import crowd_kind
>>> from crowdllm.crowd.state import CrowdState
>>> from crowdllm.data.dataset import LabelSpec
>>> state = CrowdState(LabelSpec("continuous"), center=0.0, scale=1.0)
>>> tasks = pd.Index(["a", "b", "c"])
>>> memory = TaskMemory(kappa=1.0).fit(crowd_kind(state.label), state, pred=np.zeros((3, 1)),
...                                    y=np.array([1.0, 1.0, -2.0]), ti=np.array([0, 0, 1]), tasks=tasks)
>>> memory.for_tasks(pd.Series(["a", "b", "c", "new"])).ravel().round(3).tolist()
[0.667, -1.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from crowdllm.crowd.kinds import CrowdKind
    from crowdllm.crowd.state import CrowdState


class TaskMemory:
    """Shrunken per-task offsets (``offsets_``, ``(n_tasks, out)``) and their shrinkage ``kappa_``."""

    def __init__(self, kappa: float | None = 1.0) -> None:
        self.kappa = kappa

    def fit(self, kind: CrowdKind, state: CrowdState, pred: np.ndarray, y: np.ndarray, ti: np.ndarray,
            tasks: pd.Index) -> TaskMemory:
        """Offsets from training predictions ``pred`` (base + prior-mean deviation, model units) and
        labels ``y`` of rows on tasks ``tasks[ti]``."""
        self.tasks_ = tasks
        n_tasks = len(tasks)
        n = np.bincount(ti, minlength=n_tasks).astype(float)
        r, q = kind.residuals(state, pred, y)
        sums = np.zeros((n_tasks, r.shape[1]))
        np.add.at(sums, ti, r)
        self.offsets_ = np.zeros((n_tasks, pred.shape[1]))
        self.kappa_ = float(self.kappa) if self.kappa is not None else within_over_between(r, ti, n)
        if np.isfinite(self.kappa_):
            self.offsets_ = kind.offsets(sums, n, self.kappa_, q, ti)
        return self

    # ------------------------------------------------------------------ as a table by task id
    def table(self, task_ids: pd.Index) -> pd.DataFrame:
        """The offsets as a frame indexed by task id (columns ``o0..``)."""
        return pd.DataFrame(self.offsets_, index=task_ids, columns=[f"o{i}" for i in range(self.offsets_.shape[1])])

    @classmethod
    def from_table(cls, table: pd.DataFrame, kappa: float) -> TaskMemory:
        memory = cls(kappa=kappa)
        memory.offsets_, memory.kappa_, memory.tasks_ = table.to_numpy(dtype=float), kappa, table.index
        return memory

    @classmethod
    def disabled(cls, tasks: pd.Index, out_dim: int) -> TaskMemory:
        """No memory (``task_memory=False``): zero offsets, infinite shrinkage."""
        return cls.from_table(pd.DataFrame(np.zeros((len(tasks), out_dim)), index=tasks,
                                           columns=[f"o{i}" for i in range(out_dim)]), float("inf"))

    def for_tasks(self, task_ids: pd.Series) -> np.ndarray:
        """Offsets for ``task_ids`` (0 for tasks not seen in training)."""
        return self.offsets_table.reindex(task_ids.astype(str)).fillna(0.0).to_numpy()

    @property
    def offsets_table(self) -> pd.DataFrame:
        return self.table(self.tasks_)


def group_means(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of ``values`` per group index (0 for a group without rows): per task for the calibration
    target and the seen-task mixture, per task and per person in the two-way offsets."""
    n = np.bincount(groups, minlength=n_groups)
    return np.bincount(groups, weights=values, minlength=n_groups) / np.maximum(n, 1)


def within_over_between(r: np.ndarray, groups: np.ndarray, n: np.ndarray) -> float:
    """How many pseudo-answers a group's mean residual is shrunk by, as for a random effect: the
    within-group over the between-group variance of the residuals ``r`` (``(rows,)`` or ``(rows, out)``)
    of rows in groups ``groups`` with ``n`` rows each; inf when there is no group effect to keep. The
    task memory groups by task, the digital twins by person."""
    r = np.asarray(r, float).reshape(len(groups), -1)
    sums = np.zeros((len(n), r.shape[1]))
    np.add.at(sums, groups, r)
    seen = n > 0
    means = sums[seen] / n[seen, None]
    sq = np.zeros(len(n))
    np.add.at(sq, groups, (r ** 2).sum(axis=1))
    within_ss = sq[seen] - n[seen] * (means ** 2).sum(axis=1)
    dof = (n[seen] - 1).sum()
    sigma2 = float(within_ss.sum() / dof) if dof > 0 else 0.0
    tau2 = float(np.mean((means ** 2).sum(axis=1) - sigma2 / n[seen]))
    if tau2 <= 1e-12 or not np.isfinite(tau2):
        return float("inf")
    return sigma2 / tau2
