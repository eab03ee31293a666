"""Majority vote: the most frequent label of each task."""

from __future__ import annotations

from typing import Self

import pandas as pd

from crowdllm.aggregate._base import (
    Aggregator,
    argmax_lowest,
    labels_series,
    per_task_counts,
    probas_frame,
    vote_shares,
)


class MajorityVote(Aggregator):
    """``a_t = argmax_c #{w : y_wt = c}``.

    Ties are broken deterministically toward the *lowest* label in sort order (numeric order for
    numbers, so a 1-5 tie between 2 and 4 gives 2; string order for categories). This rule does not
    depend on the order of the rows.

    Attributes after ``fit``: ``labels_`` (Series indexed by task) and ``probas_`` (DataFrame
    tasks x classes: each task's share of votes per label)."""

    name = "mv"

    def fit(self, responses: pd.DataFrame) -> Self:
        enc = self._encoded(responses)
        if enc is None:
            return self
        counts = per_task_counts(enc)
        self.labels_ = labels_series(enc, argmax_lowest(counts))
        self.probas_ = probas_frame(enc, vote_shares(counts))
        return self
