"""Crowd size and resolution rate: how many virtual people should I sample?

The paper's Figure 5. A task is *resolved* by a virtual crowd when the crowd's mean answer lands
within ``tolerance`` of the held-out real crowd's mean (``|mean_virtual - mean_real| <= tolerance``;
for top-k votes the comparison is in vote counts of the held-out electorate). The resolution rate is
the share of held-out tasks resolved. It is traced as the crowd grows from 1 to ``max(sizes)`` people,
for two kinds of crowd:

- ``diverse``: each virtual person gets a profile drawn from the profile pool (different people);
- ``fixed``: every virtual person gets the same profile (the pool's most common one), so they differ
  only by the model's own randomness.

If diversity is what makes a digital crowd work, the diverse curve keeps rising while the fixed one
flattens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from crowdllm.data.dataset import CrowdDataset
from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses._common import (
    Trainer,
    check_fractions,
    check_methods,
    check_numeric,
    check_sizes,
    draw_people,
    evaluate_method,
    method_steps,
    profile_pool,
    split_train_test,
    subsample_workers,
    tidy,
)

COLUMNS = ["dataset", "split", "seed", "method", "fraction", "profiles", "n_virtual", "tolerance",
           "resolution_rate", "mae"]
DEFAULT_SIZES = (1, 2, 3, 5, 8, 10, 15, 20, 30, 50)
#: the paper's settings (``crowdllm analyze crowd-size --paper``)
PAPER = {"fractions": (0.1, 0.5, 1.0), "seeds": (0, 1, 2, 3, 4)}
PROFILE_KINDS = ("diverse", "fixed")


def crowd_size(
    dataset: CrowdDataset,
    methods: Mapping[str, Trainer],
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    tolerances: Sequence[float] = (0.5,),
    fractions: Sequence[float] = (1.0,),
    profiles: Sequence[str] = PROFILE_KINDS,
    seeds: Sequence[int] = (0,),
    split: str = "worker",
    test_size: float = 0.2,
    pool: str = "test",
    progress: bool = False,
    on_step: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Resolution rate and MAE against crowd size, for diverse and fixed profiles.

    Returns the long frame ``dataset, split, seed, method, fraction, profiles, n_virtual, tolerance,
    resolution_rate, mae``."""
    check_numeric(dataset, "crowd-size")
    methods = check_methods(methods)
    sizes = check_sizes(sizes, "sizes")
    fractions = check_fractions(fractions)
    tols = sorted({float(t) for t in tolerances})
    if not tols or tols[0] < 0:
        raise ConfigError("tolerances: give one or more values >= 0")
    for kind in profiles:
        if kind not in PROFILE_KINDS:
            raise ConfigError(f"profiles: '{kind}' is not one of {', '.join(PROFILE_KINDS)}")
    rows: list[dict] = []
    jobs = len(seeds) * len(fractions) * len(methods)
    with method_steps(jobs, "crowd size", rows, COLUMNS, progress=progress, on_step=on_step) as done:
        for seed in seeds:
            train, test = split_train_test(dataset, split, test_size, seed)
            pool_frame = profile_pool(train, test, pool)
            crowds = {kind: draw_people(pool_frame, sizes[-1], fixed=(kind == "fixed"), seed=seed)
                      for kind in profiles}
            for fraction in fractions:
                part = subsample_workers(train, fraction, seed)
                for name, factory in methods.items():
                    fitted = factory(part, seed)
                    for kind, people in crowds.items():
                        curves, _ = evaluate_method(dataset, fitted, test, people, sizes, seed=seed)
                        for j, n in enumerate(sizes):
                            err = curves.abs_err[:, j]
                            for tol in tols:
                                rows.append({
                                    "dataset": dataset.name, "split": split, "seed": seed, "method": name,
                                    "fraction": fraction, "profiles": kind, "n_virtual": n, "tolerance": tol,
                                    # unanswerable tasks count as unresolved
                                    "resolution_rate": float(np.mean(err <= tol + 1e-9)) * curves.coverage
                                    if len(err) else 0.0,
                                    "mae": float(np.mean(err)) if len(err) else np.nan,
                                })
                    done()
    return tidy(rows, COLUMNS)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Headline: resolution rate (mean over seeds) at a few crowd sizes, diverse vs fixed profiles."""
    if results.empty:
        return results
    sizes = sorted(results["n_virtual"].unique())
    show = sorted({sizes[0], sizes[len(sizes) // 2], sizes[-1]})
    sub = results[results["n_virtual"].isin(show)]
    table = sub.pivot_table(index=["method", "fraction", "tolerance", "profiles"], columns="n_virtual",
                            values="resolution_rate", aggfunc="mean")
    table.columns = [f"N={int(c)}" for c in table.columns]
    return table.reset_index()
