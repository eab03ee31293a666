"""Who the virtual participants are: the common interface of every profile generator.

A profile generator draws ``n`` virtual people, each a row ``worker`` + one column per attribute, the
same shape as ``CrowdDataset.workers``. Three generators ship (the paper's Eq. 3, v_i = G_v(S, eps_i)):

- :class:`~crowdllm.profiles.pool.PoolProfiles` -- resample the empirical pool of real profiles;
- :class:`~crowdllm.profiles.marginals.MarginalProfiles` -- independent draws from marginal shares a
  user gives (``{"gender": {"Woman": .51, "Man": .49}}``);
- :class:`~crowdllm.profiles.joint.RakedProfiles` -- a joint model of the pool (its cross-table,
  smoothed towards independence) raked by iterative proportional fitting to target marginals, e.g. a
  census, so a user can ask for "a US-representative crowd of 10,000".

``ProfileGenerator.from_pool`` / ``from_marginals`` / ``raked`` build them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from crowdllm._io import rng as make_rng
from crowdllm.errors import ConfigError


class ProfileGenerator(ABC):
    """Draws virtual people. Subclasses implement :meth:`_draw` (attributes only, ``n`` rows)."""

    #: attribute columns the generator produces, in order
    attributes: list[str]

    def sample(self, n: int, random_state: int | np.random.Generator | None = None, *,
               prefix: str = "v") -> pd.DataFrame:
        """``n`` virtual people: column ``worker`` (``v000``, ``v001``, ...) + the attributes."""
        if int(n) != n or n < 0:
            raise ConfigError(f"number of virtual people must be a whole number >= 0, got {n}")
        n = int(n)
        frame = self._draw(n, make_rng(random_state)).reset_index(drop=True)
        width = max(3, len(str(max(n - 1, 0))))
        frame.insert(0, "worker", [f"{prefix}{i:0{width}d}" for i in range(n)])
        return frame

    @abstractmethod
    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        ...

    def marginals(self) -> dict[str, dict[str, float]]:
        """The expected share of each level of each categorical attribute (for reports and checks)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ constructors
    @staticmethod
    def from_pool(workers: pd.DataFrame, *, replace: bool = True,
                  weights: Sequence[float] | None = None) -> ProfileGenerator:
        from crowdllm.profiles.pool import PoolProfiles

        return PoolProfiles(workers, replace=replace, weights=weights)

    @staticmethod
    def from_marginals(marginals: Mapping[str, Mapping[str, float]]) -> ProfileGenerator:
        from crowdllm.profiles.marginals import MarginalProfiles

        return MarginalProfiles(marginals)

    @staticmethod
    def raked(workers: pd.DataFrame, targets: Mapping[str, Mapping[str, float]], **kwargs: object
              ) -> ProfileGenerator:
        from crowdllm.profiles.joint import RakedProfiles

        return RakedProfiles(workers, targets, **kwargs)  # type: ignore[arg-type]


def check_shares(name: str, shares: Mapping[str, float], *, tol: float = 0.02) -> dict[str, float]:
    """Validate one attribute's shares (non-negative, finite, summing to 1 within ``tol``); renormalise."""
    if not isinstance(shares, Mapping) or not shares:
        raise ConfigError(f"marginal for '{name}' must be a non-empty mapping level -> share")
    out: dict[str, float] = {}
    for level, p in shares.items():
        try:
            value = float(p)
        except (TypeError, ValueError):
            raise ConfigError(f"marginal for '{name}': share of '{level}' is not a number ({p!r})") from None
        if not np.isfinite(value) or value < 0:
            raise ConfigError(f"marginal for '{name}': share of '{level}' must be >= 0, got {p!r}")
        out[str(level)] = value
    total = sum(out.values())
    if total <= 0:
        raise ConfigError(f"marginal for '{name}': shares sum to 0")
    if abs(total - 1.0) > tol:
        raise ConfigError(f"marginal for '{name}': shares sum to {total:.4g}, not 1 "
                          f"(within {tol}); rescale them")
    return {k: v / total for k, v in out.items()}
