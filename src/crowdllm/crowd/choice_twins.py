"""Digital twins of known people for categorical labels (binary too): each person's own answer shares.

The numeric twins (:mod:`.twins`) move a known person's expected rating; a categorical crowd decides
by logits, so a person's habit is a logit offset. Over the ``n_w`` training answers of person ``w`` the
crowd (task memory included) expected the shares ``qbar_w`` (the mean softmax of its decisions) and
the person gave their own counts. Their twin is::

    o_w = log(phat_w) - log(qbar_w),   phat_w = qbar_w + sum_w(onehot - q) / (n_w + kappa)

the person's answer shares shrunk towards the model's with ``kappa`` pseudo-answers -- the task
memory's step (:meth:`crowdllm.crowd.kinds.CrowdKind.offsets`) grouped by person instead of by task;
this class *is* a :class:`~crowdllm.crowd.memory.TaskMemory` fitted on the person index. ``kappa=None``
estimates it as the within-person over the between-person variance of the residuals. A known person (a
training worker id) answering any task gets ``o_w`` added to the logits of every decision; anyone else
is the profile's prediction.

Measured (binary POPQUORN "offensive?", task split, crowd with the LLM reference, 5 seeds; docs/crowd.md):
on inner validation tasks of the training part population Avg TVD / CS dist 0.150 / 0.944 without twins,
0.141 / 0.949 with ``kappa`` estimated (4.4-5.3; fixed values 0.5-5 within 0.001 of it); on the test
tasks 0.152 / 0.944 -> 0.144 / 0.949 (the best baseline, text+reference: 0.156 / 0.946).

>>> import numpy as np
>>> import pandas as pd
>>> from crowdllm.crowd.kinds import crowd_kind
>>> from crowdllm.crowd.state import CrowdState
>>> from crowdllm.data.dataset import LabelSpec
>>> state = CrowdState(LabelSpec("categorical", categories=["no", "yes"]))
>>> twins = ChoiceTwins(kappa=2.0).fit(crowd_kind(state.label), state, pred=np.zeros((4, 2)),
...                                    y=np.array([1, 1, 1, 0]), wi=np.array([0, 0, 0, 1]),
...                                    workers=pd.Index(["ann", "bob", "cy"]))
>>> np.exp(twins.terms(np.array(["ann", "bob", "new"]))).round(3).tolist()  # shares / model's 0.5
[[0.4, 1.6], [1.333, 0.667], [1.0, 1.0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crowdllm._params import Params
from crowdllm.crowd.memory import TaskMemory
from crowdllm.errors import ConfigError

if TYPE_CHECKING:
    from crowdllm.crowd.kinds import CrowdKind
    from crowdllm.crowd.state import CrowdState


class ChoiceTwins(Params):
    """Per known person a logit offset (``offsets_``: a frame by worker id, one column per category),
    their number of training answers (``n_``) and the shrinkage ``kappa_`` (pseudo-answers)."""

    def __init__(self, kappa: float | None = None) -> None:
        self.kappa = kappa

    def fit(self, kind: CrowdKind, state: CrowdState, pred: np.ndarray, y: np.ndarray, wi: np.ndarray,
            workers: pd.Index) -> ChoiceTwins:
        """Offsets from the training decisions ``pred`` (logits ``(n, C)``: base + prior-mean deviation +
        task offset) and category codes ``y`` of answers given by ``workers[wi]``."""
        pred, wi = np.asarray(pred, float), np.asarray(wi, dtype=np.int64)
        if not len(pred) == len(y) == len(wi):
            raise ConfigError(f"twins need one decision and label per answer ({len(pred)}, {len(y)}, {len(wi)})")
        if self.kappa is not None and not float(self.kappa) >= 0:
            raise ConfigError(f"kappa={self.kappa!r}: give a number of pseudo-answers >= 0")
        index = pd.Index(workers).astype(str)
        by_person = TaskMemory(kappa=self.kappa).fit(kind, state, pred, np.asarray(y), wi, index)
        self.kappa_ = by_person.kappa_
        self.offsets_ = by_person.table(index)
        self.n_ = pd.Series(np.bincount(wi, minlength=len(index)).astype(float), index=index)
        return self

    def rows(self, workers: np.ndarray) -> np.ndarray:
        """Each worker id's row among the known people (``-1``: a person not seen in training)."""
        if not hasattr(self, "offsets_"):
            raise ConfigError("these twins are not fitted yet")
        return self.offsets_.index.get_indexer(pd.Index(np.asarray(workers, dtype=object).astype(str)))

    def terms_at(self, rows: np.ndarray, *unused: Any) -> np.ndarray:
        """The logit offset ``(rows, C)`` of each row of :meth:`rows`; 0 for row ``-1``. (The numeric
        twins' further arguments -- the prediction -- are accepted and unused: a person's offset is the
        same on every task.)"""
        offsets = self.offsets_.fillna(0.0).to_numpy(dtype=float)
        return np.vstack([offsets, np.zeros((1, offsets.shape[1]))])[rows]  # row -1: the zeros at the end

    def terms(self, workers: np.ndarray, *unused: Any) -> np.ndarray:
        """The logit offset ``(rows, C)`` of each worker id; 0 for a person not seen in training."""
        return self.terms_at(self.rows(workers))

    def known(self, workers: np.ndarray) -> np.ndarray:
        """Whether each worker id is a person seen in training."""
        return self.rows(workers) >= 0

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        return {"model": "choice", **self.get_params(),
                "kappa_": self.kappa_ if np.isfinite(self.kappa_) else None,
                "workers": self.offsets_.index.tolist(), "offsets": self.offsets_.to_numpy().tolist(),
                "n": self.n_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChoiceTwins:
        twins = cls(kappa=d["kappa"])
        twins.kappa_ = float(d["kappa_"]) if d.get("kappa_") is not None else float("inf")
        index = pd.Index([str(w) for w in d["workers"]])
        values = np.asarray(d["offsets"], dtype=float).reshape(len(index), -1)
        twins.offsets_ = pd.DataFrame(values, index=index, columns=[f"o{i}" for i in range(values.shape[1])])
        twins.n_ = pd.Series(np.asarray(d["n"], dtype=float), index=index)
        return twins


def fit_choice_twins(template: Any, kind: CrowdKind, state: CrowdState, pred: np.ndarray, y: np.ndarray,
                     wi: np.ndarray, worker_ids: pd.Index) -> ChoiceTwins:
    """Fit fresh twins of a categorical crowd on its training decisions ``pred`` (logits, task memory
    included); ``template`` (the crowd's ``twins`` parameter, or None) gives ``kappa``: the numeric twins'
    ``kappa`` means the same, the offset's pseudo-answers, so ``twin_kappa=`` sets both."""
    return ChoiceTwins(kappa=getattr(template, "kappa", None)).fit(kind, state, pred, y, wi, worker_ids)
