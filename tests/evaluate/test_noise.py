"""The noise ceiling: known answers for unanimous crowds and for the analytic mean formula."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.dataset import LabelSpec
from crowdllm.evaluate.noise import noise_ceiling, split_half

ORDINAL = LabelSpec("ordinal", scale=(1, 5))


def rows_of(table: pd.DataFrame, method: str) -> dict[tuple[str, str], float]:
    part = table[table["method"] == method]
    return {(r.aggregator, r.metric): r.value for r in part.itertuples()}


def spread_crowd(n_tasks: int = 40, per_level: int = 4) -> pd.DataFrame:
    """Every task has the same full distribution: each level 1..5 given by ``per_level`` workers."""
    rows = []
    for t in range(n_tasks):
        w = 0
        for level in range(1, 6):
            for _ in range(per_level):
                rows.append((f"t{t:03d}", f"w{w:03d}", float(level)))
                w += 1
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


def test_analytic_mean_error_from_the_task_variance() -> None:
    full = spread_crowd()
    gold = full.groupby("task").head(5)  # n_t = 5 gold responses per task
    var = np.var([1, 2, 3, 4, 5] * 4, ddof=1)  # s_t^2 of the full responses, the same for every task
    table = noise_ceiling(gold, ORDINAL, full=full, aggregators=["mean"], n_sim=2, n_splits=1)
    ceiling = rows_of(table, "noise-ceiling")
    assert ceiling[("mean", "rmse")] == pytest.approx(math.sqrt(var / 5))
    assert ceiling[("mean", "mae")] == pytest.approx(math.sqrt(2 / math.pi) * math.sqrt(var / 5))
    assert table.attrs["variance_source"] == "full data"


def test_analytic_rmse_matches_direct_simulation() -> None:
    # draw 5 labels per task from the uniform 1..5 distribution many times; the RMSE of the sample mean
    # around the true mean 3 is sqrt(2 / 5) (population variance 2); the formula uses ddof=1 (20/19 * 2)
    full = spread_crowd(n_tasks=400)
    gold = full.groupby("task").head(5)
    table = noise_ceiling(gold, ORDINAL, full=full, aggregators=["mean"], n_sim=1, n_splits=1)
    analytic = rows_of(table, "noise-ceiling")[("mean", "rmse")]
    rng = np.random.default_rng(0)
    draws = rng.integers(1, 6, size=(20000, 5)).mean(axis=1)
    simulated = float(np.sqrt(np.mean((draws - 3.0) ** 2)))
    assert analytic == pytest.approx(simulated * math.sqrt(20 / 19), rel=0.02)


def test_a_unanimous_crowd_has_no_noise() -> None:
    rows = [(f"t{t}", f"w{w}", float(1 + t % 5)) for t in range(10) for w in range(6)]
    full = pd.DataFrame(rows, columns=["task", "worker", "label"])
    gold = full.groupby("task").head(2)
    table = noise_ceiling(gold, ORDINAL, full=full, n_sim=3, n_splits=2)
    for method in ("noise-ceiling", "split-half"):
        got = rows_of(table, method)
        # (not DS: with two answers per task and few per worker, its per-worker confusion matrices can
        # swap labels even on a unanimous crowd; crowd-kit's DawidSkene does the same on such data)
        for agg in ("mean", "median", "mv", "glad"):
            assert got[(agg, "mae")] == pytest.approx(0.0, abs=1e-12), (method, agg)
        assert got[("-", "avg_wd")] == pytest.approx(0.0, abs=1e-12)
        assert got[("-", "cs_dist")] == pytest.approx(1.0)
    assert set(table.columns) == {"method", "aggregator", "metric", "value"}


def test_split_half_needs_four_responses_per_task() -> None:
    full = pd.DataFrame([("a", "x", 1.0), ("a", "y", 5.0), ("a", "z", 1.0),  # 3 responses: left out
                         ("b", "x", 2.0), ("b", "y", 2.0), ("b", "z", 2.0), ("b", "v", 2.0)],
                        columns=["task", "worker", "label"])
    got = split_half(full, ORDINAL, aggregators=["mean"], n_splits=3, random_state=1)
    values = {(r.aggregator, r.metric): r.value for r in got.itertuples()}
    assert values[("mean", "mae")] == 0.0  # only task b, unanimous
    assert "coverage" not in set(got["metric"])


def test_gold_only_variance_is_flagged() -> None:
    gold = spread_crowd(n_tasks=5).groupby("task").head(6)
    table = noise_ceiling(gold, ORDINAL, aggregators=["mean"], n_sim=1, n_splits=1)
    assert table.attrs["variance_source"] == "gold only"


def test_votes_with_identical_ballots_have_no_noise() -> None:
    items = ["A", "B", "C", "D"]
    rows = [(i, f"v{v}", int(i in ("A", "C"))) for v in range(10) for i in items]
    full = pd.DataFrame(rows, columns=["task", "worker", "label"])
    gold = full[full["worker"].isin(["v0", "v1", "v2", "v3"])]
    table = noise_ceiling(gold, LabelSpec("topk", k=2), full=full, n_sim=3, n_splits=2)
    for method in ("noise-ceiling", "split-half"):
        got = rows_of(table, method)
        assert got[("count", "mae")] == 0 and got[("count", "wd")] == 0, method
        assert got[("count", "cs_raw")] == pytest.approx(1.0)


def test_seeded() -> None:
    full = spread_crowd(n_tasks=20)
    gold = full.groupby("task").head(3)
    a = noise_ceiling(gold, ORDINAL, full=full, n_sim=2, n_splits=2, random_state=3)
    b = noise_ceiling(gold, ORDINAL, full=full, n_sim=2, n_splits=2, random_state=3)
    pd.testing.assert_frame_equal(a, b)
