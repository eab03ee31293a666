"""Mean: the average label of each task (numeric labels only)."""

from __future__ import annotations

import numpy as np

from crowdllm.aggregate._base import Encoded, NumericAggregator


class Mean(NumericAggregator):
    """``a_t = (1 / n_t) * sum_{w answered t} y_wt``.

    Attributes after ``fit``: ``labels_`` (Series indexed by task, float)."""

    name = "mean"

    def _per_task(self, enc: Encoded, values: np.ndarray) -> np.ndarray:
        sums = np.bincount(enc.t, weights=values, minlength=enc.n_tasks)
        counts = np.bincount(enc.t, minlength=enc.n_tasks)
        return sums / counts
