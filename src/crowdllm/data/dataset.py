"""The crowd data model: tasks, workers, responses as pandas frames plus the kind of label.

Column names follow crowd-kit:

- ``responses``: ``task``, ``worker``, ``label`` (+ any extra columns)
- ``tasks``: ``task``, ``text`` (+ metadata columns)
- ``workers``: ``worker`` + one column per profile attribute

Ids are stored as strings. Labels are floats for continuous/ordinal, strings for categorical and
free text, and 0/1 integers for top-k votes (one row per (item, voter); each voter selects exactly
``k`` items, so ``task`` is the *item* voted on and the per-item vote count is the task aggregate).

When a frame was read from a file, its index holds the 1-based row number in that file (the header
is row 1 for CSV), so validation errors can point at the exact place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from crowdllm.data.kinds import Kind, kind_named
from crowdllm.errors import CrowdDataError

LabelKind = Literal["continuous", "ordinal", "categorical", "topk", "text"]
LABEL_KINDS: tuple[str, ...] = ("continuous", "ordinal", "categorical", "topk", "text")


@dataclass(frozen=True)
class LabelSpec:
    """What a label is.

    - ``continuous``: any real number, optionally bounded by ``scale=(low, high)``.
    - ``ordinal``: integers ``low..high`` (``scale``), e.g. a 1-5 rating.
    - ``categorical``: one of ``categories`` (binary included).
    - ``topk``: 0/1 selection of an item; every worker selects exactly ``k`` items.
    - ``text``: free text (rewrites, answers); not scored by the numeric metrics.
    """

    kind: LabelKind
    scale: tuple[float, float] | None = None
    categories: tuple[str, ...] | None = None
    k: int | None = None

    def __post_init__(self) -> None:
        from crowdllm.errors import ConfigError

        if self.kind not in LABEL_KINDS:
            raise ConfigError(f"label kind '{self.kind}' is not one of {', '.join(LABEL_KINDS)}")
        if self.kind_.integer_scale:
            if self.scale is None:
                raise ConfigError("an ordinal label needs a scale, e.g. scale=(1, 5)")
            lo, hi = self.scale
            if not (float(lo).is_integer() and float(hi).is_integer() and lo < hi):
                raise ConfigError(f"ordinal scale {self.scale} must be two integers low < high")
        if self.kind_.nominal and not self.categories:
            raise ConfigError("a categorical label needs its categories, e.g. categories=('no', 'yes')")
        if self.kind_.votes and (self.k is None or self.k < 1):
            raise ConfigError("a top-k label needs k >= 1 (the number of items each voter selects)")

    @property
    def is_numeric(self) -> bool:
        return self.kind_.numeric

    @property
    def kind_(self) -> Kind:
        """The kind object (:mod:`crowdllm.data.kinds`): ask it what differs by label kind."""
        return kind_named(self.kind)

    @property
    def levels(self) -> np.ndarray:
        """The support of the label distribution used by histogram metrics.

        Ordinal: ``low..high``; top-k: ``[0, 1]``; categorical: codes ``0..C-1``.
        Continuous labels have no finite support (metrics use the samples themselves)."""
        if self.kind_.integer_scale:
            assert self.scale is not None
            return np.arange(int(self.scale[0]), int(self.scale[1]) + 1, dtype=float)
        if self.kind_.votes:
            return np.array([0.0, 1.0])
        if self.kind_.nominal:
            assert self.categories is not None
            return np.arange(len(self.categories), dtype=float)
        raise ValueError(f"label kind '{self.kind}' has no finite set of levels")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scale": list(self.scale) if self.scale is not None else None,
            "categories": list(self.categories) if self.categories is not None else None,
            "k": self.k,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelSpec:
        return cls(
            kind=d["kind"],
            scale=tuple(d["scale"]) if d.get("scale") is not None else None,  # type: ignore[arg-type]
            categories=tuple(d["categories"]) if d.get("categories") is not None else None,
            k=d.get("k"),
        )


def category_text(value: Any) -> str:
    """A category as text: numbers used as category codes read the same whatever the file's type
    (``1``, ``1.0`` and ``"1.0"`` are all ``"1"``; ``-1.0`` is ``"-1"``); other values unchanged.

    >>> [category_text(v) for v in (1, 1.0, "1.0", "-1", " yes ", 0.5)]
    ['1', '1', '1', '-1', 'yes', '0.5']
    """
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    if re.fullmatch(r"[-+]?\d+\.0+", text):
        return str(int(float(text)))
    return text


def _row_of(frame: pd.DataFrame, pos: int) -> int | None:
    """The file row of the frame's ``pos``-th row, if the index carries row numbers."""
    idx = frame.index[pos]
    if isinstance(idx, (int, np.integer)):
        return int(idx)
    return None


@dataclass
class CrowdDataset:
    """Tasks, workers and their responses, validated once.

    ``source`` names the file(s) the data came from (used in error messages);
    ``ordered_attributes`` lists profile attributes whose levels are ordered (age or education bands),
    each with its levels from lowest to highest.
    """

    responses: pd.DataFrame
    tasks: pd.DataFrame
    workers: pd.DataFrame
    label: LabelSpec
    name: str = "custom"
    source: str | None = None
    ordered_attributes: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""
    #: rows of the source file(s) that the loader skipped on purpose (e.g. responses without a worker id)
    dropped_rows: int = 0

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        self.responses = self.responses.copy()
        self.tasks = self.tasks.copy()
        self.workers = self.workers.copy()

    @property
    def profile_columns(self) -> list[str]:
        return [c for c in self.workers.columns if c != "worker"]

    @property
    def n_tasks(self) -> int:
        return int(self.tasks["task"].nunique())

    @property
    def n_workers(self) -> int:
        return int(self.workers["worker"].nunique())

    @property
    def n_responses(self) -> int:
        return len(self.responses)

    # ------------------------------------------------------------------ validation
    def validate(self) -> CrowdDataset:
        """Check the frames and the labels; raise :class:`CrowdDataError` naming file, row, column.

        Returns ``self`` so loaders can write ``return CrowdDataset(...).validate()``.
        """
        src = self.source
        for frame, cols, what in (
            (self.responses, ("task", "worker", "label"), "responses"),
            (self.tasks, ("task",), "tasks"),
            (self.workers, ("worker",), "workers"),
        ):
            for col in cols:
                if col not in frame.columns:
                    raise CrowdDataError(
                        f"{what} need a column '{col}' (found: {', '.join(map(str, frame.columns)) or 'none'})",
                        file=src,
                        column=col,
                    )
        if len(self.responses) == 0:
            raise CrowdDataError("there are no responses", file=src)
        for frame, col in ((self.responses, "task"), (self.responses, "worker"), (self.tasks, "task"),
                           (self.workers, "worker")):
            missing = frame[col].isna().to_numpy()
            if missing.any():
                pos = int(np.flatnonzero(missing)[0])
                raise CrowdDataError("missing id", file=src, row=_row_of(frame, pos), column=col)
            frame[col] = frame[col].astype(str)
        for frame, col, what in ((self.tasks, "task", "task"), (self.workers, "worker", "worker")):
            dup = frame[col].duplicated().to_numpy()
            if dup.any():
                pos = int(np.flatnonzero(dup)[0])
                raise CrowdDataError(
                    f"{what} id '{frame[col].iloc[pos]}' appears twice in the {what}s table",
                    file=src, row=_row_of(frame, pos), column=col,
                )
        known_tasks = set(self.tasks["task"])
        unknown = ~self.responses["task"].isin(known_tasks).to_numpy()
        if unknown.any():
            pos = int(np.flatnonzero(unknown)[0])
            raise CrowdDataError(
                f"unknown task id '{self.responses['task'].iloc[pos]}'", file=src,
                row=_row_of(self.responses, pos), column="task",
            )
        known_workers = set(self.workers["worker"])
        unknown = ~self.responses["worker"].isin(known_workers).to_numpy()
        if unknown.any():
            pos = int(np.flatnonzero(unknown)[0])
            raise CrowdDataError(
                f"unknown worker id '{self.responses['worker'].iloc[pos]}'", file=src,
                row=_row_of(self.responses, pos), column="worker",
            )
        dup = self.responses.duplicated(subset=["task", "worker"]).to_numpy()
        if dup.any():
            pos = int(np.flatnonzero(dup)[0])
            r = self.responses.iloc[pos]
            raise CrowdDataError(
                f"duplicate response: worker '{r['worker']}' answered task '{r['task']}' more than once",
                file=src, row=_row_of(self.responses, pos), column="worker",
            )
        self.responses["label"] = self._validated_labels(self.responses)
        if self.label.kind_.votes:
            counts = self.responses.groupby("worker")["label"].sum()
            bad = counts[counts != self.label.k]
            if len(bad):
                raise CrowdDataError(
                    f"worker '{bad.index[0]}' selected {int(bad.iloc[0])} items, expected k={self.label.k}",
                    file=src, column="label",
                )
        for attr, levels in self.ordered_attributes.items():
            if attr not in self.workers.columns:
                raise CrowdDataError(f"ordered attribute '{attr}' is not a worker column", file=src, column=attr)
            vals = self.workers[attr].dropna()
            off = ~vals.isin(levels).to_numpy()
            if off.any():
                pos = int(np.flatnonzero(off)[0])
                raise CrowdDataError(
                    f"value '{vals.iloc[pos]}' is not one of the ordered levels {levels}",
                    file=src, row=_row_of(self.workers, pos), column=attr,
                )
        return self

    def _validated_labels(self, frame: pd.DataFrame) -> pd.Series:
        src, spec = self.source, self.label
        raw = frame["label"]
        missing = raw.isna().to_numpy()
        if missing.any():
            pos = int(np.flatnonzero(missing)[0])
            raise CrowdDataError("label is missing (empty or NaN)", file=src, row=_row_of(frame, pos),
                                 column="label")
        if spec.kind_.numeric:
            num = pd.to_numeric(raw, errors="coerce")
            bad = num.isna().to_numpy() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                raise CrowdDataError(f"label '{raw.iloc[pos]}' is not a number", file=src,
                                     row=_row_of(frame, pos), column="label")
            values = num.to_numpy(dtype=float)
            if spec.kind_.votes:
                off = ~np.isin(values, (0.0, 1.0))
                if off.any():
                    pos = int(np.flatnonzero(off)[0])
                    raise CrowdDataError(f"top-k label {raw.iloc[pos]} must be 0 or 1", file=src,
                                         row=_row_of(frame, pos), column="label")
                return pd.Series(values.astype(int), index=frame.index)
            if spec.scale is not None:
                lo, hi = spec.scale
                off = (values < lo) | (values > hi)
                if spec.kind_.integer_scale:
                    off |= values != np.round(values)
                if off.any():
                    pos = int(np.flatnonzero(off)[0])
                    what = f"an integer in {int(lo)}..{int(hi)}" if spec.kind_.integer_scale else f"in [{lo}, {hi}]"
                    raise CrowdDataError(f"label {raw.iloc[pos]} is off the scale: must be {what}", file=src,
                                         row=_row_of(frame, pos), column="label")
            return pd.Series(values, index=frame.index)
        values = raw.map(category_text) if spec.kind_.nominal else raw.astype(str)
        if spec.kind_.nominal:
            assert spec.categories is not None
            off = ~values.isin(spec.categories).to_numpy()
            if off.any():
                pos = int(np.flatnonzero(off)[0])
                raise CrowdDataError(
                    f"label '{values.iloc[pos]}' is not one of the categories {list(spec.categories)}",
                    file=src, row=_row_of(frame, pos), column="label",
                )
        else:  # text
            empty = (values.str.strip() == "").to_numpy()
            if empty.any():
                pos = int(np.flatnonzero(empty)[0])
                raise CrowdDataError("text label is empty", file=src, row=_row_of(frame, pos), column="label")
        return values

    # ------------------------------------------------------------------ views
    def subset(self, *, tasks: Iterable[str] | None = None, workers: Iterable[str] | None = None,
               keep_all_tasks: bool = False) -> CrowdDataset:
        """A dataset restricted to some tasks and/or workers (responses filtered accordingly).

        With ``keep_all_tasks`` the tasks table is kept whole (e.g. a test set of unseen *people*
        still knows every task text)."""
        resp = self.responses
        task_tab, worker_tab = self.tasks, self.workers
        if tasks is not None:
            tset = set(map(str, tasks))
            resp = resp[resp["task"].isin(tset)]
            if not keep_all_tasks:
                task_tab = task_tab[task_tab["task"].isin(tset)]
        if workers is not None:
            wset = set(map(str, workers))
            resp = resp[resp["worker"].isin(wset)]
            worker_tab = worker_tab[worker_tab["worker"].isin(wset)]
        return replace(self, responses=resp, tasks=task_tab, workers=worker_tab)

    def label_codes(self, labels: pd.Series | Sequence[Any] | None = None) -> np.ndarray:
        """Labels as floats on the metric axis (categorical -> category index)."""
        values = self.responses["label"] if labels is None else pd.Series(labels)
        if self.label.kind_.nominal:
            assert self.label.categories is not None
            lookup = {c: i for i, c in enumerate(self.label.categories)}
            return values.map(lookup).to_numpy(dtype=float)
        return values.to_numpy(dtype=float)

    def merged(self) -> pd.DataFrame:
        """Responses joined with the task text/metadata and the worker profiles."""
        out = self.responses.merge(self.workers, on="worker", how="left", suffixes=("", "_worker"))
        return out.merge(self.tasks, on="task", how="left", suffixes=("", "_task"))

    def summary(self) -> dict[str, Any]:
        per_task = self.responses.groupby("task").size()
        info: dict[str, Any] = {
            "name": self.name,
            "label": self.label.to_dict(),
            "tasks": self.n_tasks,
            "workers": self.n_workers,
            "responses": self.n_responses,
            "responses_per_task": {
                "min": int(per_task.min()), "median": float(per_task.median()), "max": int(per_task.max()),
            },
            "profile_attributes": {
                c: int(self.workers[c].nunique(dropna=True)) for c in self.profile_columns
            },
        }
        if self.dropped_rows:
            info["dropped_rows"] = int(self.dropped_rows)
        if self.label.is_numeric:
            counts = self.responses["label"].value_counts().sort_index()
            info["label_counts"] = {str(k): int(v) for k, v in counts.items()}
        return info
