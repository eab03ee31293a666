"""Median: the middle label of each task (numeric labels only)."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from crowdllm.aggregate._base import Aggregator


class Median(Aggregator):
    """The sample median of each task's labels. With an even number of labels it is the average of
    the two middle ones (as ``pandas`` and ``numpy`` define it), so a 1-5 rating can give e.g. 2.5.

    Attributes after ``fit``: ``labels_`` (Series indexed by task, float)."""

    name = "median"

    def fit(self, responses: pd.DataFrame) -> Self:
        enc = self._encoded(responses, numeric=True)
        if enc is None:
            return self
        values = enc.classes[enc.k].astype(float)  # the labels, in the encoded row order
        # sort by (task, value); each task's labels are then one contiguous sorted run
        order = np.lexsort((values, enc.t))
        sorted_vals = values[order]
        counts = np.bincount(enc.t, minlength=enc.n_tasks)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        lo = starts + (counts - 1) // 2
        hi = starts + counts // 2
        med = (sorted_vals[lo] + sorted_vals[hi]) / 2.0
        self.labels_ = pd.Series(med, index=enc.tasks.copy(), name="agg_label")
        return self
