"""Median: the middle label of each task (numeric labels only)."""

from __future__ import annotations

import numpy as np

from crowdllm.aggregate._base import Encoded, NumericAggregator


class Median(NumericAggregator):
    """The sample median of each task's labels. With an even number of labels it is the average of
    the two middle ones (as ``pandas`` and ``numpy`` define it), so a 1-5 rating can give e.g. 2.5.

    Attributes after ``fit``: ``labels_`` (Series indexed by task, float)."""

    name = "median"

    def _per_task(self, enc: Encoded, values: np.ndarray) -> np.ndarray:
        # sort by (task, value); each task's labels are then one contiguous sorted run
        order = np.lexsort((values, enc.t))
        sorted_vals = values[order]
        counts = np.bincount(enc.t, minlength=enc.n_tasks)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        lo = starts + (counts - 1) // 2
        hi = starts + counts // 2
        return (sorted_vals[lo] + sorted_vals[hi]) / 2.0
