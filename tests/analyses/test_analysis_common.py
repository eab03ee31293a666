"""The vectorised error curves agree with the project's metric definitions, crowd size by crowd size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses._common import (
    draw_people,
    error_curves,
    gold_by_task,
    label_matrix,
    sample_responses,
    subsample_workers,
)
from crowdllm.evaluate.metrics import evaluate_predictions


def test_curves_match_evaluate_predictions_for_every_crowd_size(crowd, methods):
    ds = crowd.dataset
    test = ds.subset(workers=ds.workers["worker"].iloc[:20])
    tasks = sorted(test.responses["task"].unique())
    people = draw_people(ds.workers, 12, seed=1)
    fitted = methods.TaskMean(spread=1.0).fit(ds)
    resp = sample_responses(fitted, ds.tasks.set_index("task").loc[tasks].reset_index(), people, random_state=4)
    matrix = label_matrix(ds, resp, tasks, people["worker"].tolist())
    curves = error_curves(ds, matrix, gold_by_task(test, tasks), tasks, [1, 3, 12])
    for j, n in enumerate([1, 3, 12]):
        first = resp[resp["worker"].isin(people["worker"].iloc[:n])]
        ref = evaluate_predictions(first, test.responses, ds.label, aggregators=["mean"]).set_index("metric")["value"]
        assert curves.abs_err[:, j].mean() == pytest.approx(ref["mae"], abs=1e-12)
        assert np.sqrt((curves.abs_err[:, j] ** 2).mean()) == pytest.approx(ref["rmse"], abs=1e-12)
        assert curves.wd[:, j].mean() == pytest.approx(ref["avg_wd"], abs=1e-12)


def test_votes_are_scored_as_counts_of_the_held_out_electorate():
    # 3 items, k=1; gold: 4 voters pick a,a,b,c -> counts 2,1,1. Virtual: 2 voters pick a,b -> shares .5,.5,0
    items = pd.DataFrame({"task": ["a", "b", "c"], "text": ["x", "y", "z"]})
    gold_picks = ["a", "a", "b", "c"]
    rows = [(i, f"g{w}", float(i == p)) for w, p in enumerate(gold_picks) for i in "abc"]
    gold = CrowdDataset(pd.DataFrame(rows, columns=["task", "worker", "label"]), items,
                        pd.DataFrame({"worker": [f"g{w}" for w in range(4)]}), LabelSpec("topk", k=1)).validate()
    matrix = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    curves = error_curves(gold, matrix, gold_by_task(gold, ["a", "b", "c"]), ["a", "b", "c"], [2])
    # scaled to 4 voters: 2, 2, 0 vs 2, 1, 1 -> errors 0, 1, 1
    np.testing.assert_allclose(curves.abs_err[:, 0], [0.0, 1.0, 1.0])
    assert curves.unit == 4


def test_tasks_a_method_cannot_answer_are_left_out_and_counted(crowd):
    ds = crowd.dataset
    tasks = sorted(ds.responses["task"].unique())[:10]
    matrix = np.full((10, 3), 2.0)
    matrix[0, 1] = np.nan
    curves = error_curves(ds, matrix, gold_by_task(ds, tasks), tasks, [1, 3])
    assert curves.tasks == tasks[1:]
    assert curves.coverage == pytest.approx(0.9)


def test_worker_subsamples_are_nested_and_fixed_crowds_share_one_profile(crowd):
    ds = crowd.dataset
    small = set(subsample_workers(ds, 0.1, seed=5).responses["worker"])
    big = set(subsample_workers(ds, 0.5, seed=5).responses["worker"])
    assert len(small) == 10 and len(big) == 50 and small < big
    fixed = draw_people(ds.workers, 7, fixed=True)
    assert len(fixed.drop(columns="worker").drop_duplicates()) == 1
    diverse = draw_people(ds.workers, 50, seed=0)
    assert diverse["worker"].is_unique and diverse["gender"].nunique() == 2


def test_a_crowd_larger_than_the_sample_is_refused(crowd):
    ds = crowd.dataset
    tasks = sorted(ds.responses["task"].unique())[:2]
    with pytest.raises(ConfigError, match="larger than"):
        error_curves(ds, np.ones((2, 3)), gold_by_task(ds, tasks), tasks, [5])
