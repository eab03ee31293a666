"""Virtual people drawn attribute by attribute from independent marginal shares."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from crowdllm.profiles.generator import ProfileGenerator, check_shares


class MarginalProfiles(ProfileGenerator):
    """Each attribute drawn independently from its shares, e.g.
    ``MarginalProfiles({"gender": {"Woman": .51, "Man": .49}, "age": {"18-29": .2, ...}})``.

    Shares must be non-negative and sum to 1 (within 0.02, then renormalised). Attributes are
    independent here; use :class:`~crowdllm.profiles.joint.RakedProfiles` to keep a pool's
    correlations (age x education, ...) while matching the same marginals."""

    def __init__(self, marginals: Mapping[str, Mapping[str, float]]) -> None:
        self.shares = {str(k): check_shares(str(k), v) for k, v in marginals.items()}
        self.attributes = list(self.shares)

    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        cols = {}
        for name, shares in self.shares.items():
            levels = np.array(list(shares), dtype=object)
            cum = np.cumsum(list(shares.values()))
            cum[-1] = 1.0
            cols[name] = levels[np.searchsorted(cum, rng.random(n), side="right")]
        return pd.DataFrame(cols)

    def marginals(self) -> dict[str, dict[str, float]]:
        return {k: dict(v) for k, v in self.shares.items()}
