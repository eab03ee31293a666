"""Mean: the average label of each task (numeric labels only)."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from crowdllm.aggregate._base import Aggregator


class Mean(Aggregator):
    """``a_t = (1 / n_t) * sum_{w answered t} y_wt``.

    Attributes after ``fit``: ``labels_`` (Series indexed by task, float)."""

    name = "mean"

    def fit(self, responses: pd.DataFrame) -> Self:
        enc = self._encoded(responses, numeric=True)
        if enc is None:
            return self
        values = enc.classes[enc.k].astype(float)  # the labels, in the encoded row order
        sums = np.bincount(enc.t, weights=values, minlength=enc.n_tasks)
        counts = np.bincount(enc.t, minlength=enc.n_tasks)
        self.labels_ = pd.Series(sums / counts, index=enc.tasks.copy(), name="agg_label")
        return self
