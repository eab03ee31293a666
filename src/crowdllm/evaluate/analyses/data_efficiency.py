"""Data efficiency: how many real people does a digital crowd need to be fitted well?

The paper's Figure 4. The data are split (by default by person, the paper's protocol: 80% of the
people train, the other 20% are held out). Each method is fitted on a seeded ``x%`` of the *training*
people (``x`` in ``fractions``; the subsamples are nested, 10% inside 25% inside ...), then a virtual
crowd answers every held-out task and its error against the held-out people's answers is measured as
the crowd grows from 1 to ``max(sizes)`` virtual people (MAE / RMSE of the per-task mean, Avg WD of
the label distributions). All methods and fractions of one seed share the same virtual profiles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from crowdllm._io import rng
from crowdllm.data.dataset import CrowdDataset
from crowdllm.evaluate.analyses._common import (
    Trainer,
    check_fractions,
    check_methods,
    check_numeric,
    check_sizes,
    evaluate_method,
    method_steps,
    split_train_test,
    subsample_workers,
    tidy,
    virtual_people,
)

COLUMNS = ["dataset", "split", "seed", "method", "fraction", "n_train_workers", "n_train_responses",
           "n_virtual", "metric", "value"]
DEFAULT_FRACTIONS = (0.1, 0.5, 1.0)
DEFAULT_SIZES = (1, 2, 5, 10, 20, 50)
#: the paper's settings (``crowdllm analyze data-efficiency --paper``)
PAPER = {"fractions": (0.1, 0.25, 0.5, 0.75, 1.0), "seeds": (0, 1, 2, 3, 4)}


def data_efficiency(
    dataset: CrowdDataset,
    methods: Mapping[str, Trainer],
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    sizes: Sequence[int] = DEFAULT_SIZES,
    seeds: Sequence[int] = (0,),
    split: str = "worker",
    test_size: float = 0.2,
    pool: str = "test",
    progress: bool = False,
    on_step: Callable[[pd.DataFrame], None] | None = None,
    predictions: list[pd.DataFrame] | None = None,
    prediction_tasks: int = 50,
) -> pd.DataFrame:
    """Error against the number of virtual people, for each method fitted on each fraction of people.

    ``methods`` maps a name to a factory ``(train, random_state) -> fitted model``; ``pool`` says whose
    profiles the virtual people get (``test``: the held-out people's, the population the gold comes
    from). Returns the long frame ``dataset, split, seed, method, fraction, n_train_workers,
    n_train_responses, n_virtual, metric, value`` (metrics ``mae``, ``rmse``, ``wd``, ``coverage``).

    ``predictions``: a list to which the answers behind the curves are appended (first seed, all
    training people, the largest crowd, at most ``prediction_tasks`` held-out tasks) in the report's
    ``predictions.csv`` layout: ``task, worker, label, source (real | virtual), method``."""
    check_numeric(dataset, "data-efficiency")
    methods = check_methods(methods)
    fractions = check_fractions(fractions)
    sizes = check_sizes(sizes, "sizes")
    rows: list[dict] = []
    jobs = [(s, f, m) for s in seeds for f in fractions for m in methods]
    with method_steps(len(jobs), "data efficiency", rows, COLUMNS, progress=progress, on_step=on_step) as done:
        for seed in seeds:
            train, test = split_train_test(dataset, split, test_size, seed)
            people = virtual_people(train, test, pool, sizes[-1], seed=seed)
            for fraction in fractions:
                part = subsample_workers(train, fraction, seed)
                for name, factory in methods.items():
                    fitted = factory(part, seed)
                    keep = predictions is not None and seed == seeds[0] and fraction == fractions[-1]
                    curves, virtual = evaluate_method(dataset, fitted, test, people, sizes, seed=seed,
                                                      keep_responses=keep)
                    if keep and virtual is not None:
                        predictions.extend(_prediction_rows(test, virtual, name, prediction_tasks, seed,
                                                            first=not predictions))
                    for rec in curves.summary().itertuples(index=False):
                        rows.append({
                            "dataset": dataset.name, "split": split, "seed": seed, "method": name,
                            "fraction": fraction, "n_train_workers": int(part.responses["worker"].nunique()),
                            "n_train_responses": len(part.responses), "n_virtual": rec.n_virtual,
                            "metric": rec.metric, "value": rec.value,
                        })
                    done()
    return tidy(rows, COLUMNS)


def _prediction_rows(test: CrowdDataset, virtual: pd.DataFrame, method: str, n_tasks: int, seed: int,
                     first: bool) -> list[pd.DataFrame]:
    tasks = sorted(virtual["task"].unique())
    if len(tasks) > n_tasks:
        tasks = sorted(rng(seed).choice(tasks, size=n_tasks, replace=False))
    keep = set(tasks)
    out = [virtual[virtual["task"].isin(keep)].assign(source="virtual", method=method)]
    if first:
        real = test.responses[test.responses["task"].isin(keep)][["task", "worker", "label"]]
        out.insert(0, real.assign(source="real", method=""))
    return out


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Headline: MAE and Avg WD (mean over seeds) of the largest virtual crowd, per method and fraction."""
    if results.empty:
        return results
    top = results[results["n_virtual"] == results["n_virtual"].max()]
    table = (top.pivot_table(index=["method", "fraction"], columns="metric", values="value", aggfunc="mean")
             .reset_index())
    table.insert(2, "n_virtual", int(results["n_virtual"].max()))
    return table[[c for c in ["method", "fraction", "n_virtual", "mae", "rmse", "wd", "coverage"]
                  if c in table.columns]]
