"""Virtual people resampled from the empirical pool of real profiles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from crowdllm.errors import ConfigError
from crowdllm.profiles.generator import ProfileGenerator


class PoolProfiles(ProfileGenerator):
    """Draw rows of a pool of real profiles (the ``workers`` frame), with or without replacement.

    ``weights`` (one per pool row, e.g. survey weights) make some people more likely; the ``worker``
    column is dropped (virtual people get fresh ids)."""

    def __init__(self, workers: pd.DataFrame, *, replace: bool = True,
                 weights: Sequence[float] | None = None) -> None:
        if len(workers) == 0:
            raise ConfigError("the profile pool is empty")
        self.pool = workers.drop(columns=["worker"], errors="ignore").reset_index(drop=True)
        self.attributes = list(self.pool.columns)
        self.replace = replace
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            if w.shape != (len(self.pool),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise ConfigError("pool weights must be one finite non-negative number per pool row")
            self.weights = w / w.sum()
        else:
            self.weights = None

    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        if not self.replace and n > len(self.pool):
            raise ConfigError(f"cannot draw {n} people without replacement from a pool of {len(self.pool)}")
        idx = rng.choice(len(self.pool), size=n, replace=self.replace, p=self.weights)
        return self.pool.iloc[idx].reset_index(drop=True)

    def marginals(self) -> dict[str, dict[str, float]]:
        w = self.weights if self.weights is not None else np.full(len(self.pool), 1 / len(self.pool))
        out = {}
        for col in self.attributes:
            if pd.api.types.is_numeric_dtype(self.pool[col]):
                continue
            shares = pd.Series(w).groupby(self.pool[col].astype(str).to_numpy()).sum()
            out[col] = {str(k): float(v) for k, v in shares.items()}
        return out
