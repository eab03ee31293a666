"""Turn a table of attributes (worker profiles, task metadata) into a numeric feature matrix.

:class:`ProfileEncoder` is fitted on the *training* people and then encodes anyone, seen or not:

- **nominal** attributes (gender, race, district, ...) -> one-hot, plus one explicit ``other`` column
  that catches any value not seen at fit time;
- **ordered** bands (age, education; ``CrowdDataset.ordered_attributes``) -> the level's rank scaled to
  ``[0, 1]`` (lowest band 0, highest 1), plus an ``other`` indicator (an unseen band is put at 0.5; so is
  a missing band, which is *seen* when training people had it missing too -- ``missing_seen_``);
- **numeric** columns -> standardised with the training mean and standard deviation (missing -> 0,
  the training mean);
- **free-text** columns (a persona ``Description``, a name) -> ignored unless they are listed in
  ``text_columns`` and a ``text_encoder`` (a function ``list[str] -> array``) is given.

Unseen values are never silent: each one is counted in ``unseen_`` (``{column: {value: count}}``,
cumulative over ``transform`` calls) and summarised by :meth:`ProfileEncoder.report`; with
``strict=True`` the first unseen value raises :class:`~crowdllm.errors.CrowdDataError` naming the row
and column instead. A missing value (NaN) is its own level ``"(missing)"`` for nominal attributes; a
missing value met at fit time is never counted as unseen (POPQUORN leaves education empty for a few
people: their draws are not "unseen" every time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from crowdllm.errors import ConfigError, CrowdDataError

MISSING = "(missing)"
OTHER = "other"
ID_COLUMNS = ("worker", "task")

TextEncoder = Callable[[list[str]], np.ndarray]


def _as_level(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    return str(value)


def _looks_like_text(values: pd.Series, max_categories: int) -> bool:
    nonnull = values.dropna().astype(str)
    if nonnull.empty:
        return False
    return nonnull.nunique() > max_categories or float(nonnull.str.len().mean()) > 40.0


class ProfileEncoder:
    """One-hot / ordered-code / standardised encoding of an attribute table, fitted on training rows.

    Parameters
    ----------
    ordered:
        ``{column: [lowest, ..., highest]}`` for ordered bands (merged with the ``ordered_attributes``
        passed to :meth:`fit`).
    columns:
        Columns to encode (default: every column but the id columns ``worker``/``task``).
    text_columns:
        Free-text columns to encode with ``text_encoder`` (else free text is ignored, listed in
        ``ignored_``).
    text_encoder:
        ``list[str] -> (n, d) array``, e.g. a :class:`crowdllm.belief.embeddings.TextEmbedder`'s
        ``embed``. Needed only when ``text_columns`` is given.
    strict:
        Raise on a value unseen at fit time instead of using the ``other`` bucket.
    max_categories:
        A string column with more distinct values than this (or long strings) counts as free text.
    """

    def __init__(
        self,
        ordered: dict[str, Sequence[str]] | None = None,
        columns: Sequence[str] | None = None,
        text_columns: Sequence[str] = (),
        text_encoder: TextEncoder | None = None,
        strict: bool = False,
        max_categories: int = 50,
    ) -> None:
        self.ordered = ordered
        self.columns = columns
        self.text_columns = text_columns
        self.text_encoder = text_encoder
        self.strict = strict
        self.max_categories = max_categories

    # ------------------------------------------------------------------ fit
    def fit(self, frame: pd.DataFrame, ordered_attributes: dict[str, Sequence[str]] | None = None
            ) -> ProfileEncoder:
        ordered = {**(ordered_attributes or {}), **(self.ordered or {})}
        cols = list(self.columns) if self.columns is not None else [c for c in frame.columns
                                                                      if c not in ID_COLUMNS]
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ConfigError(f"profile encoder: column(s) {missing} not in the table "
                              f"(found: {', '.join(map(str, frame.columns))})")
        if self.text_columns and self.text_encoder is None:
            raise ConfigError("profile encoder: text_columns given but no text_encoder to embed them")
        self.kinds_: dict[str, str] = {}
        self.levels_: dict[str, list[str]] = {}
        self.stats_: dict[str, tuple[float, float]] = {}
        self.ignored_: list[str] = []
        self.text_dim_: dict[str, int] = {}
        self.missing_seen_: list[str] = []  # ordered columns with missing values among the training rows
        for col in cols:
            values = frame[col]
            if col in self.text_columns:
                self.kinds_[col] = "text"
            elif col in ordered:
                levels = [str(v) for v in ordered[col]]
                if len(set(levels)) != len(levels) or len(levels) < 2:
                    raise ConfigError(f"ordered attribute '{col}' needs at least two distinct levels")
                self.kinds_[col] = "ordered"
                self.levels_[col] = levels
                if values.isna().any():
                    self.missing_seen_.append(col)
            elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                self.kinds_[col] = "numeric"
                x = values.to_numpy(dtype=float)
                mu = float(np.nanmean(x)) if np.isfinite(x).any() else 0.0
                sd = float(np.nanstd(x)) if np.isfinite(x).any() else 1.0
                self.stats_[col] = (mu, sd if sd > 1e-12 else 1.0)
            elif _looks_like_text(values, self.max_categories):
                self.ignored_.append(col)
            else:
                self.kinds_[col] = "nominal"
                self.levels_[col] = sorted({_as_level(v) for v in values})
        self.feature_names_: list[str] = []
        for col, kind in self.kinds_.items():
            if kind == "nominal":
                self.feature_names_ += [f"{col}={lv}" for lv in self.levels_[col]] + [f"{col}={OTHER}"]
            elif kind == "ordered":
                self.feature_names_ += [col, f"{col}={OTHER}"]
            elif kind == "numeric":
                self.feature_names_.append(col)
        self.unseen_: dict[str, dict[str, int]] = {}
        if any(k == "text" for k in self.kinds_.values()):
            # probe the text dimension on the first training value
            for col, kind in self.kinds_.items():
                if kind == "text":
                    probe = np.asarray(self.text_encoder([_as_level(frame[col].iloc[0])]))  # type: ignore[misc]
                    self.text_dim_[col] = int(probe.shape[1])
                    self.feature_names_ += [f"{col}[{i}]" for i in range(probe.shape[1])]
        return self

    @property
    def n_features_(self) -> int:
        return len(self.feature_names_)

    # ------------------------------------------------------------------ transform
    def _unseen(self, frame: pd.DataFrame, col: str, mask: np.ndarray, values: Sequence[str]) -> None:
        if not mask.any():
            return
        if self.strict:
            pos = int(np.flatnonzero(mask)[0])
            idx = frame.index[pos]
            raise CrowdDataError(
                f"value '{values[pos]}' was not seen when the encoder was fitted "
                f"(known: {', '.join(self.levels_.get(col, []))})",
                row=int(idx) if isinstance(idx, (int, np.integer)) else None, column=col,
            )
        counts = self.unseen_.setdefault(col, {})
        for v in np.asarray(values, dtype=object)[mask]:
            counts[str(v)] = counts.get(str(v), 0) + 1

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The ``(n, n_features_)`` float32 matrix for ``frame`` (rows in order)."""
        if not hasattr(self, "kinds_"):
            raise ConfigError("profile encoder: call fit() before transform()")
        missing = [c for c in self.kinds_ if c not in frame.columns]
        if missing:
            raise CrowdDataError(f"profile column(s) {missing} are missing", column=missing[0])
        blocks: list[np.ndarray] = []
        n = len(frame)
        for col, kind in self.kinds_.items():
            if kind == "nominal":
                levels = self.levels_[col]
                lookup = {lv: i for i, lv in enumerate(levels)}
                vals = [_as_level(v) for v in frame[col].tolist()]
                codes = np.fromiter((lookup.get(v, len(levels)) for v in vals), dtype=np.int64, count=n)
                self._unseen(frame, col, codes == len(levels), vals)
                block = np.zeros((n, len(levels) + 1), dtype=np.float32)
                block[np.arange(n), codes] = 1.0
                blocks.append(block)
            elif kind == "ordered":
                levels = self.levels_[col]
                lookup = {lv: i for i, lv in enumerate(levels)}
                vals = [_as_level(v) for v in frame[col].tolist()]
                codes = np.fromiter((lookup.get(v, -1) for v in vals), dtype=np.int64, count=n)
                other = codes < 0
                if col in self.missing_seen_:  # a missing band met in training is seen, not 'unseen'
                    other_unseen = other & ~frame[col].isna().to_numpy(dtype=bool)
                else:
                    other_unseen = other
                self._unseen(frame, col, other_unseen, vals)
                block = np.zeros((n, 2), dtype=np.float32)
                block[:, 0] = np.where(other, 0.5, codes / (len(levels) - 1))
                block[:, 1] = other
                blocks.append(block)
            elif kind == "numeric":
                mu, sd = self.stats_[col]
                x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
                z = (x - mu) / sd
                blocks.append(np.nan_to_num(z, nan=0.0).astype(np.float32)[:, None])
            else:  # text
                texts = [_as_level(v) for v in frame[col].tolist()]
                emb = np.asarray(self.text_encoder(texts), dtype=np.float32)  # type: ignore[misc]
                blocks.append(emb.reshape(n, self.text_dim_[col]))
        if not blocks:
            return np.zeros((n, 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1)

    def fit_transform(self, frame: pd.DataFrame, ordered_attributes: dict[str, Sequence[str]] | None = None
                      ) -> np.ndarray:
        return self.fit(frame, ordered_attributes).transform(frame)

    # ------------------------------------------------------------------ reporting / persistence
    def report(self) -> str:
        """One line per column with unseen values (empty string when there were none)."""
        lines = []
        for col, counts in self.unseen_.items():
            total = sum(counts.values())
            shown = ", ".join(f"'{v}' x{c}" for v, c in sorted(counts.items(), key=lambda kv: -kv[1])[:5])
            lines.append(f"{col}: {total} unseen value(s) put in '{OTHER}': {shown}")
        return "\n".join(lines)

    def get_state(self) -> dict[str, Any]:
        """A JSON-serialisable description of the fitted encoder (text columns need their encoder back)."""
        return {
            "order": list(self.kinds_), "kinds": self.kinds_, "levels": self.levels_,
            "stats": {k: list(v) for k, v in self.stats_.items()}, "ignored": self.ignored_,
            "text_dim": self.text_dim_, "feature_names": self.feature_names_, "strict": self.strict,
            "missing_seen": self.missing_seen_,
            "max_categories": self.max_categories,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], text_encoder: TextEncoder | None = None) -> ProfileEncoder:
        enc = cls(strict=bool(state.get("strict", False)), max_categories=int(state.get("max_categories", 50)),
                  text_columns=[c for c, k in state["kinds"].items() if k == "text"], text_encoder=text_encoder)
        order = state.get("order", list(state["kinds"]))  # JSON writers may sort keys: keep the order
        enc.kinds_ = {c: state["kinds"][c] for c in order}
        enc.levels_ = {k: list(v) for k, v in state["levels"].items()}
        enc.stats_ = {k: (float(v[0]), float(v[1])) for k, v in state["stats"].items()}
        enc.ignored_ = list(state["ignored"])
        enc.text_dim_ = {k: int(v) for k, v in state.get("text_dim", {}).items()}
        enc.feature_names_ = list(state["feature_names"])
        enc.missing_seen_ = list(state.get("missing_seen", []))  # absent in states saved before it existed
        enc.unseen_ = {}
        return enc
