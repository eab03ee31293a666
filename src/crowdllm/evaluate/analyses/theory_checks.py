"""Theory checks: the Theorem 5 interval's coverage and the Theorem 2 risk terms, measured.

(Work in progress: the estimators live in :mod:`crowdllm.evaluate.theory`.)
"""

from __future__ import annotations

import pandas as pd

COVERAGE_COLUMNS = ["dataset", "split", "seed", "method", "target", "nominal", "coverage", "mean_half_width",
                    "n_tasks"]
TERM_COLUMNS = ["dataset", "split", "seed", "method", "term", "value"]


def summarize_coverage(results: pd.DataFrame) -> pd.DataFrame:
    """Headline: empirical coverage (mean over seeds) per nominal level, method and target."""
    if results.empty:
        return results
    keys = [c for c in ("method", "target", "nominal") if c in results.columns]
    return results.groupby(keys, sort=True)[["coverage", "mean_half_width"]].mean().reset_index()


def summarize_terms(results: pd.DataFrame) -> pd.DataFrame:
    """Headline: each Theorem 2 term (mean over seeds), one column per method."""
    if results.empty:
        return results
    table = results.pivot_table(index="term", columns="method", values="value", aggfunc="mean", sort=False)
    table.columns.name = None
    return table.reset_index()
