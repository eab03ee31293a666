"""Majority vote: the most frequent label of each task."""

from __future__ import annotations

from typing import Self

import pandas as pd

from crowdllm.aggregate._base import (
    Aggregator,
    argmax_lowest,
    check_responses,
    empty_result,
    encode,
    labels_series,
    per_task_counts,
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
        resp = check_responses(responses)
        if resp.empty:
            self.labels_ = empty_result()
            self.probas_ = pd.DataFrame()
            return self
        enc = encode(resp)
        counts = per_task_counts(enc)
        self.labels_ = labels_series(enc, argmax_lowest(counts))
        self.probas_ = pd.DataFrame(counts / counts.sum(axis=1, keepdims=True), index=enc.tasks.copy(),
                                    columns=list(enc.classes))
        return self
