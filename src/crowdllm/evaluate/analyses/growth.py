"""Growth curves: error as the training data grow along one axis at a time.

The paper's appendix B.1-B.4. Starting from the training part of a split, one factor is limited and
the others left as they are:

- ``problems``: keep ``k`` training tasks (seeded choice);
- ``people``: keep ``k`` training people;
- ``ratings_per_person``: every training person keeps at most ``k`` of their answers;
- ``people_per_problem``: every training task keeps at most ``k`` of its answers.

Each method is fitted on the limited data; a virtual crowd of ``n_virtual`` people then answers the
held-out tasks and is scored against the held-out answers (MAE / RMSE of the per-task mean, Avg WD).
The level ``all`` (written as the full count) is the unrestricted training part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from crowdllm._io import rng
from crowdllm.data.dataset import CrowdDataset
from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses._common import (
    Trainer,
    check_methods,
    check_numeric,
    evaluate_method,
    method_steps,
    split_train_test,
    tidy,
    virtual_people,
    worker_order,
)

COLUMNS = ["dataset", "split", "seed", "method", "factor", "level", "n_train_responses", "metric", "value"]
FACTORS = ("problems", "people", "ratings_per_person", "people_per_problem")
DEFAULT_LEVELS: dict[str, tuple[int, ...]] = {
    "problems": (30, 100, 300),
    "people": (5, 20, 60),
    "ratings_per_person": (2, 5, 20),
    "people_per_problem": (1, 2, 4),
}
#: the paper's finer grids (appendix B.1-B.4), for ``--paper``
PAPER_LEVELS: dict[str, tuple[int, ...]] = {
    "problems": (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    "people": (1, 2, 5, 10, 20, 50, 100, 150, 200),
    "ratings_per_person": (1, 2, 5, 10, 20, 50, 100),
    "people_per_problem": (1, 2, 3, 4, 5, 6, 7, 8),
}


def limit(train: CrowdDataset, factor: str, level: int, seed: int) -> CrowdDataset:
    """The training data limited to ``level`` along ``factor`` (seeded; levels are nested per seed)."""
    if level < 1:
        raise ConfigError(f"growth level for {factor} must be >= 1 (got {level})")
    resp = train.responses
    gen = rng(seed)
    if factor == "problems":
        tasks = np.array(sorted(resp["task"].unique()))
        keep = gen.permutation(tasks)[:level]
        return train.subset(tasks=keep, keep_all_tasks=True)
    if factor == "people":
        return train.subset(workers=worker_order(train, seed)[:level], keep_all_tasks=True)
    if factor in ("ratings_per_person", "people_per_problem"):
        by = "worker" if factor == "ratings_per_person" else "task"
        order = resp.assign(_key=gen.random(len(resp))).sort_values([by, "_key"])
        rank = order.groupby(by).cumcount()
        kept = order[rank.to_numpy() < level].drop(columns="_key").sort_index()
        out = train.subset()
        out.responses = kept
        out.workers = train.workers[train.workers["worker"].isin(set(kept["worker"]))]
        return out
    raise ConfigError(f"growth factor '{factor}' is not one of {', '.join(FACTORS)}")


def full_level(train: CrowdDataset, factor: str) -> int:
    resp = train.responses
    if factor == "problems":
        return int(resp["task"].nunique())
    if factor == "people":
        return int(resp["worker"].nunique())
    if factor == "ratings_per_person":
        return int(resp.groupby("worker").size().max())
    return int(resp.groupby("task").size().max())


def growth_curves(
    dataset: CrowdDataset,
    methods: Mapping[str, Trainer],
    *,
    factors: Sequence[str] = FACTORS,
    levels: Mapping[str, Sequence[int]] | None = None,
    n_virtual: int = 20,
    seeds: Sequence[int] = (0,),
    split: str = "worker",
    test_size: float = 0.2,
    pool: str = "test",
    progress: bool = False,
    on_step: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Error against the amount of training data along each factor.

    ``levels`` maps a factor to its levels (default :data:`DEFAULT_LEVELS`); levels at or above the
    full amount are replaced by the full amount (measured once). Returns ``dataset, split, seed,
    method, factor, level, n_train_responses, metric, value``."""
    check_numeric(dataset, "growth")
    methods = check_methods(methods)
    for f in factors:
        if f not in FACTORS:
            raise ConfigError(f"growth factor '{f}' is not one of {', '.join(FACTORS)}")
    if n_virtual < 1:
        raise ConfigError(f"n_virtual must be >= 1 (got {n_virtual})")
    wanted = {f: list((levels or {}).get(f, DEFAULT_LEVELS[f])) for f in factors}
    rows: list[dict] = []
    plans = []
    for seed in seeds:
        train, test = split_train_test(dataset, split, test_size, seed)
        for f in factors:
            full = full_level(train, f)
            lv = sorted({min(int(v), full) for v in wanted[f]} | {full})
            plans.append((seed, train, test, f, lv))
    total = sum(len(p[4]) for p in plans) * len(methods)
    people_by_seed: dict[int, pd.DataFrame] = {}
    with method_steps(total, "growth curves", rows, COLUMNS, progress=progress, on_step=on_step) as done:
        for seed, train, test, factor, lv in plans:
            if seed not in people_by_seed:
                people_by_seed[seed] = virtual_people(train, test, pool, n_virtual, seed=seed)
            people = people_by_seed[seed]
            for level in lv:
                part = limit(train, factor, level, seed)
                for name, factory in methods.items():
                    fitted = factory(part, seed)
                    curves, _ = evaluate_method(dataset, fitted, test, people, [n_virtual], seed=seed)
                    for rec in curves.summary().itertuples(index=False):
                        rows.append({
                            "dataset": dataset.name, "split": split, "seed": seed, "method": name,
                            "factor": factor, "level": level, "n_train_responses": len(part.responses),
                            "metric": rec.metric, "value": rec.value,
                        })
                    done()
    return tidy(rows, COLUMNS)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Headline: MAE (mean over seeds) at the smallest and the full level of each factor, per method."""
    if results.empty:
        return results
    wide = results.pivot_table(index=["factor", "method", "level"], columns="metric", values="value",
                               aggfunc="mean").reset_index()
    rows = []
    for (factor, method), g in wide.groupby(["factor", "method"], sort=True):
        g = g.sort_values("level")
        lo, hi = g.iloc[0], g.iloc[-1]
        row = {"factor": factor, "method": method, "smallest_level": int(lo["level"]), "mae_smallest": lo["mae"],
               "full_level": int(hi["level"]), "mae_full": hi["mae"]}
        if "coverage" in g:  # MAE is over the tasks a method could answer
            row["coverage_smallest"] = lo["coverage"]
        rows.append(row)
    return pd.DataFrame(rows)
