"""A joint model of the profile pool, raked to target marginals (iterative proportional fitting).

The model is a table over every combination of the categorical attributes (gender x age x ...):

1. **Seed**: the pool's cross-table of counts plus ``smoothing * len(pool)`` pseudo-people spread over
   all cells in proportion to the product of the (slightly smoothed) pool marginals. The pool keeps its
   correlations (e.g. age x education) where it has data; combinations it never saw get a small
   probability instead of none.
2. **Raking**: iterative proportional fitting rescales the table, one target attribute at a time, until
   every target marginal is met (max deviation below ``tol``). Attributes without a target keep the
   pool's conditional structure.
3. **Sampling**: cells are drawn from the raked table; columns that are not part of the table
   (numeric scores, free-text personas) are copied from a pool person who matches the drawn cell on
   as many attributes as possible (ties broken at random).

Every level of a targeted attribute must appear in its target (a share of 0 is allowed), so no pool
category is dropped or kept by accident; a target level the pool never saw is allowed (it gets mass
from the smoothing) unless ``smoothing=0``, which raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from crowdllm.errors import ConfigError
from crowdllm.profiles.encoding import MISSING
from crowdllm.profiles.generator import ProfileGenerator, check_shares

MAX_CELLS = 5_000_000


def ipf(seed: np.ndarray, targets: Mapping[int, np.ndarray], *, max_iter: int = 500, tol: float = 1e-9
        ) -> tuple[np.ndarray, int, float]:
    """Iterative proportional fitting of a non-negative table to marginal shares.

    ``targets`` maps an axis to its target share vector (summing to 1). Returns the fitted table
    (summing to 1), the number of sweeps and the final max absolute marginal deviation."""
    table = seed / seed.sum()
    dev = np.inf
    for it in range(1, max_iter + 1):
        for axis, target in targets.items():
            other = tuple(a for a in range(table.ndim) if a != axis)
            current = table.sum(axis=other)
            factor = np.divide(target, current, out=np.zeros_like(target, dtype=float), where=current > 0)
            shape = [1] * table.ndim
            shape[axis] = -1
            table = table * factor.reshape(shape)
        dev = max(float(np.abs(table.sum(axis=tuple(a for a in range(table.ndim) if a != ax)) - t).max())
                  for ax, t in targets.items())
        if dev < tol:
            return table / table.sum(), it, dev
    return table / table.sum(), max_iter, dev


class RakedProfiles(ProfileGenerator):
    """Pool joint distribution, smoothed, raked to ``targets``; see the module docstring.

    Parameters
    ----------
    workers:
        The pool (``worker`` + attributes).
    targets:
        ``{attribute: {level: share}}``; each attribute must be a categorical pool column.
    attributes:
        Categorical attributes of the joint table (default: every non-numeric pool column with at most
        ``max_levels`` levels; longer/free-text columns are carried along from matched pool people).
    smoothing:
        Pseudo-people spread over the independence model, as a fraction of the pool size.
    """

    def __init__(
        self,
        workers: pd.DataFrame,
        targets: Mapping[str, Mapping[str, float]],
        *,
        attributes: Sequence[str] | None = None,
        smoothing: float = 0.2,
        max_levels: int = 30,
        max_iter: int = 500,
        tol: float = 1e-9,
    ) -> None:
        if len(workers) == 0:
            raise ConfigError("the profile pool is empty")
        if smoothing < 0:
            raise ConfigError(f"smoothing must be >= 0, got {smoothing}")
        self.pool = workers.drop(columns=["worker"], errors="ignore").reset_index(drop=True)
        self.attributes = list(self.pool.columns)
        self.targets = {str(k): check_shares(str(k), v) for k, v in targets.items()}
        for name in self.targets:
            if name not in self.pool.columns:
                raise ConfigError(f"target attribute '{name}' is not a pool column "
                                  f"(pool has: {', '.join(self.pool.columns)})")
        if attributes is None:
            attributes = [c for c in self.pool.columns
                          if not pd.api.types.is_numeric_dtype(self.pool[c])
                          and self.pool[c].nunique(dropna=False) <= max_levels]
        self.table_attributes = list(dict.fromkeys([*attributes, *self.targets]))
        self.carried = [c for c in self.pool.columns if c not in self.table_attributes]

        cats = {c: self.pool[c].map(lambda v: MISSING if pd.isna(v) else str(v)) for c in self.table_attributes}
        self.levels: dict[str, list[str]] = {}
        for c in self.table_attributes:
            levels = sorted(set(cats[c]))
            if c in self.targets:
                absent = [lv for lv in levels if lv not in self.targets[c]]
                if absent:
                    raise ConfigError(f"target for '{c}' does not give a share for pool level(s) {absent} "
                                      f"(a share of 0 is allowed)")
                levels = sorted(set(levels) | set(self.targets[c]))
            self.levels[c] = levels
        shape = tuple(len(self.levels[c]) for c in self.table_attributes)
        n_cells = int(np.prod(shape, dtype=np.int64))
        if n_cells > MAX_CELLS:
            raise ConfigError(f"joint profile table would have {n_cells:,} cells (> {MAX_CELLS:,}); "
                              "pass fewer attributes=")
        self._codes = np.stack([cats[c].map({lv: i for i, lv in enumerate(self.levels[c])}).to_numpy()
                                for c in self.table_attributes], axis=1).astype(np.int64)
        counts = np.zeros(shape)
        np.add.at(counts, tuple(self._codes.T), 1.0)
        indep = np.ones(shape)
        for axis in range(len(shape)):
            marg = np.bincount(self._codes[:, axis], minlength=shape[axis]) + 0.5
            marg = marg / marg.sum()
            indep = indep * marg.reshape([-1 if a == axis else 1 for a in range(len(shape))])
        seed = counts + smoothing * len(self.pool) * indep
        target_axes = {self.table_attributes.index(c): np.array([t[lv] for lv in self.levels[c]])
                       for c, t in self.targets.items()}
        for c, t in self.targets.items():
            axis = self.table_attributes.index(c)
            reach = seed.sum(axis=tuple(a for a in range(seed.ndim) if a != axis))
            dead = [lv for lv in self.levels[c] if t[lv] > 0 and reach[self.levels[c].index(lv)] <= 0]
            if dead:
                raise ConfigError(f"target level(s) {dead} of '{c}' never occur in the pool and "
                                  "smoothing=0 gives them no mass; use smoothing > 0")
        self.table_, self.n_iter_, self.max_deviation_ = ipf(seed, target_axes, max_iter=max_iter, tol=tol)
        if self.max_deviation_ > 1e-4:
            raise ConfigError(f"raking did not converge (max marginal deviation {self.max_deviation_:.2g} "
                              f"after {self.n_iter_} sweeps); the targets may be inconsistent")
        self._cum = np.cumsum(self.table_.ravel())
        self._cum[-1] = 1.0

    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        flat = np.searchsorted(self._cum, rng.random(n), side="right")
        flat = np.minimum(flat, len(self._cum) - 1)
        codes = np.stack(np.unravel_index(flat, self.table_.shape), axis=1)
        out = {c: np.array(self.levels[c], dtype=object)[codes[:, i]]
               for i, c in enumerate(self.table_attributes)}
        frame = pd.DataFrame(out)
        for c in self.table_attributes:  # restore real missing values
            frame.loc[frame[c] == MISSING, c] = None
        if self.carried:
            donors = self._match_donors(codes, rng)
            for c in self.carried:
                frame[c] = self.pool[c].to_numpy()[donors]
        return frame[self.attributes]

    def _match_donors(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each drawn cell, a pool row matching it on the most attributes (random among ties)."""
        donors = np.empty(len(codes), dtype=np.int64)
        uniq, inverse = np.unique(codes, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        for u, cell in enumerate(uniq):
            score = (self._codes == cell).sum(axis=1)
            best = np.flatnonzero(score == score.max())
            rows = np.flatnonzero(inverse == u)
            donors[rows] = best[rng.integers(len(best), size=len(rows))]
        return donors

    def marginals(self) -> dict[str, dict[str, float]]:
        out = {}
        for axis, c in enumerate(self.table_attributes):
            m = self.table_.sum(axis=tuple(a for a in range(self.table_.ndim) if a != axis))
            out[c] = {lv: float(p) for lv, p in zip(self.levels[c], m, strict=True)}
        return out
