"""Score a fitted method under both protocols (see :mod:`crowdllm.evaluate.metrics`).

``matched``: one virtual answer per held-out real answer (the paper's protocol; the runner's default).
``population``: the method's per-task answer distribution, as a large virtual crowd of ``per_answer``
virtual answers per real one (the same people: a method that knows a person answers as their twin
every time), scored with the same metrics. Each protocol has its own floor: the sampling oracle for
``matched``, the noise ceiling for ``population``.

>>> from crowdllm.data.synthetic import make_synthetic_crowd
>>> from crowdllm.data.splits import split_dataset
>>> from crowdllm.evaluate.baselines import GlobalDistribution
>>> parts = split_dataset(make_synthetic_crowd(n_tasks=30, n_workers=20).dataset, by="task")
>>> gold = parts.test.responses
>>> method = GlobalDistribution().fit(parts.train)
>>> scores = population_scores(method, parts.test.tasks, parts.test.workers, gold[["task", "worker"]], gold,
...                            parts.test.label, ["mean"], per_answer=10, random_state=0)
>>> sorted(set(scores["metric"]))
['avg_wd', 'coverage', 'cs_centered', 'cs_dist', 'cs_raw', 'mae', 'rmse']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from crowdllm.data.dataset import LabelSpec
from crowdllm.errors import ConfigError
from crowdllm.evaluate.metrics import MATCHED, POPULATION, evaluate_population, replicate_pairs

__all__ = ["MATCHED", "POPULATION", "population_scores"]


def population_scores(method: Any, tasks: pd.DataFrame, workers: pd.DataFrame, pairs: pd.DataFrame,
                      gold: pd.DataFrame, label: LabelSpec, aggregators: Sequence[str], *, per_answer: int,
                      random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
    """``[aggregator, metric, value]`` of ``method`` (fitted) in the population protocol: it is asked
    for ``per_answer`` virtual answers per held-out pair (:func:`replicate_pairs`) and the large
    virtual crowd is scored against ``gold`` (:func:`evaluate_population`)."""
    big_pairs, big_workers = replicate_pairs(pairs, workers, per_answer=per_answer, label=label)
    pred = method.sample(tasks, big_workers, pairs=big_pairs, random_state=random_state)
    if not isinstance(pred, pd.DataFrame) or len(pred) != len(big_pairs):
        got = len(pred) if isinstance(pred, pd.DataFrame) else type(pred).__name__
        raise ConfigError(f"method '{getattr(method, 'name', method)}' returned {got} responses for "
                          f"{len(big_pairs)} requested pairs (population protocol, {per_answer} per answer)")
    pred = pred.assign(task=pred["task"].astype(str), worker=pred["worker"].astype(str))
    return evaluate_population(pred, gold, label, aggregators, per_answer=per_answer)
