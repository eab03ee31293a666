"""Shared plumbing of the aggregators: input checks and integer encoding of tasks, workers, labels.

Every aggregator follows crowd-kit's contract: ``fit_predict(responses) -> pd.Series`` indexed by
task (sorted task ids, index name ``task``, series name ``agg_label``). ``responses`` has the columns
``task``, ``worker``, ``label``. Categorical aggregators (MV, DS, GLAD) return one of the labels that
were given: a float for numeric (ordinal) labels, a string for categorical ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from crowdllm._params import Params
from crowdllm.errors import ConfigError, CrowdDataError

_COLUMNS = ("task", "worker", "label")


@dataclass(frozen=True)
class Encoded:
    """Responses as integer codes: ``t``/``w``/``k`` index ``tasks``/``workers``/``classes``."""

    t: np.ndarray
    w: np.ndarray
    k: np.ndarray
    tasks: pd.Index
    workers: pd.Index
    classes: np.ndarray

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def check_responses(responses: pd.DataFrame) -> pd.DataFrame:
    """The ``task``/``worker``/``label`` columns, ids as strings; raise on missing columns or labels."""
    if not isinstance(responses, pd.DataFrame):
        raise ConfigError(f"responses must be a pandas DataFrame, got {type(responses).__name__}")
    missing = [c for c in _COLUMNS if c not in responses.columns]
    if missing:
        raise CrowdDataError(
            f"responses need the columns task, worker, label (missing: {', '.join(missing)})",
            column=missing[0],
        )
    out = pd.DataFrame({
        "task": responses["task"].astype(str).to_numpy(),
        "worker": responses["worker"].astype(str).to_numpy(),
        "label": responses["label"].to_numpy(),
    })
    bad = pd.isna(out["label"]).to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        idx = responses.index[pos]
        row = int(idx) if isinstance(idx, (int, np.integer)) else None
        raise CrowdDataError("label is missing (NaN); drop such rows before aggregating", row=row,
                             column="label")
    return out


def numeric_labels(responses: pd.DataFrame, who: str) -> np.ndarray:
    """Labels as floats, or a ConfigError saying that ``who`` needs numbers."""
    values = pd.to_numeric(responses["label"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any():
        raise ConfigError(f"the {who} aggregator needs numeric labels (got e.g. '{responses['label'].iloc[0]}');"
                          " use mv, ds or glad for categorical labels")
    return values


def sorted_classes(labels: pd.Series) -> np.ndarray:
    """The distinct labels in sort order: numeric order for numbers, string order otherwise."""
    numeric = pd.to_numeric(labels, errors="coerce")
    if not numeric.isna().any():
        return np.unique(numeric.to_numpy(dtype=float))
    return np.array(sorted(set(labels.astype(str))), dtype=object)


def encode(responses: pd.DataFrame) -> Encoded:
    """Integer-encode checked responses. Tasks, workers and classes are each in sort order, and the
    encoded rows are sorted by (task, worker, label) codes."""
    tasks = pd.Index(np.unique(responses["task"].to_numpy().astype(str)), name="task")
    workers = pd.Index(np.unique(responses["worker"].to_numpy().astype(str)), name="worker")
    classes = sorted_classes(responses["label"])
    if classes.dtype == object:
        labels = responses["label"].astype(str).to_numpy()
    else:
        labels = pd.to_numeric(responses["label"]).to_numpy(dtype=float)
    t = tasks.get_indexer(responses["task"].to_numpy())
    w = workers.get_indexer(responses["worker"].to_numpy())
    k = np.searchsorted(classes, labels)
    # a canonical row order makes every floating-point sum, hence every result, independent of the
    # order of the input rows
    order = np.lexsort((k, w, t))
    return Encoded(
        t=t[order],
        w=w[order],
        k=k[order],
        tasks=tasks,
        workers=workers,
        classes=classes,
    )


def per_task_counts(enc: Encoded, weights: np.ndarray | None = None) -> np.ndarray:
    """``(n_tasks, n_classes)`` matrix of (weighted) label counts per task."""
    flat = enc.t * enc.n_classes + enc.k
    counts = np.bincount(flat, weights=weights, minlength=enc.n_tasks * enc.n_classes)
    return counts.reshape(enc.n_tasks, enc.n_classes).astype(float)


def vote_shares(counts: np.ndarray) -> np.ndarray:
    """Each task's share of the votes per label, from :func:`per_task_counts`: majority vote's
    ``probas_`` and the posterior the EM aggregators (DS, GLAD) start from."""
    return counts / counts.sum(axis=1, keepdims=True)


def probas_frame(enc: Encoded, probs: np.ndarray) -> pd.DataFrame:
    """``probas_``: a ``(n_tasks, n_classes)`` array as a frame indexed by task, one column per label."""
    return pd.DataFrame(probs, index=enc.tasks.copy(), columns=list(enc.classes))


def argmax_lowest(scores: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Row-wise argmax; among entries within ``rtol`` (relative) of the row maximum, the lowest index.

    Exact float ties depend on summation order, so a plain ``argmax`` could flip between two equally
    likely labels when rows are shuffled; this keeps the promised tie rule (lowest label)."""
    top = scores.max(axis=1, keepdims=True)
    near = scores >= top - rtol * np.maximum(np.abs(top), 1.0)
    return near.argmax(axis=1)


def normalize_log(logp: np.ndarray) -> tuple[np.ndarray, float]:
    """Row-wise softmax of log-scores and the sum over rows of their log-normalisers (log-likelihood)."""
    top = logp.max(axis=1, keepdims=True)
    shifted = np.exp(logp - top)
    total = shifted.sum(axis=1, keepdims=True)
    return shifted / total, float(np.sum(np.log(total) + top))


def em_converged(old: float, new: float, tol: float) -> bool:
    """Whether an EM objective (log-likelihood) moved by at most ``tol``, relative to its size (at least 1)."""
    return abs(new - old) <= tol * max(1.0, abs(new))


def posterior_result(enc: Encoded, post: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
    """``probas_`` and ``labels_`` of an EM aggregator from its posterior ``post`` (tasks x classes): the
    posterior as a frame, and each task's most likely label (ties -> the lowest label)."""
    return probas_frame(enc, post), labels_series(enc, argmax_lowest(post))


def labels_series(enc: Encoded, codes: np.ndarray) -> pd.Series:
    values: Any = enc.classes[codes]
    if enc.classes.dtype != object:
        values = values.astype(float)
    return pd.Series(values, index=enc.tasks.copy(), name="agg_label")


def empty_result() -> pd.Series:
    return pd.Series([], index=pd.Index([], name="task", dtype=object), name="agg_label", dtype=float)


class Aggregator(Params):
    """Base class: ``fit(responses)`` stores ``labels_``; ``fit_predict`` returns it."""

    name: str = "aggregator"
    labels_: pd.Series

    def fit(self, responses: pd.DataFrame) -> Self:
        raise NotImplementedError

    def _encoded(self, responses: pd.DataFrame, *, numeric: bool = False) -> Encoded | None:
        """The start of every ``fit``: ``responses`` checked and integer-encoded, or None when there are
        none, with ``labels_`` (and ``probas_``, except for a ``numeric`` aggregator) set to the empty
        result. ``numeric`` (mean, median): every label must be a number."""
        resp = check_responses(responses)
        if resp.empty:
            self.labels_ = empty_result()
            if not numeric:
                self.probas_ = pd.DataFrame()
            return None
        if numeric:
            numeric_labels(resp, self.name)  # raises unless every label is a number
        return encode(resp)

    def fit_predict(self, responses: pd.DataFrame) -> pd.Series:
        return self.fit(responses).labels_


class NumericAggregator(Aggregator):
    """Base of the aggregators of numeric labels (mean, median): ``fit`` checks that every label is a
    number and stores ``labels_``, each task's :meth:`_per_task` statistic of its labels (a float)."""

    def fit(self, responses: pd.DataFrame) -> Self:
        enc = self._encoded(responses, numeric=True)
        if enc is None:
            return self
        values = enc.classes[enc.k].astype(float)  # the labels, in the encoded row order
        self.labels_ = pd.Series(self._per_task(enc, values), index=enc.tasks.copy(), name="agg_label")
        return self

    def _per_task(self, enc: Encoded, values: np.ndarray) -> np.ndarray:
        """The statistic of each task's ``values`` (rows in ``enc`` order), one per task in ``enc.tasks``."""
        raise NotImplementedError
