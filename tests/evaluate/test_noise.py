"""The noise ceiling: known answers for unanimous crowds and for the analytic mean formula."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.dataset import LabelSpec
from crowdllm.evaluate.noise import noise_ceiling, sampling_oracle, split_half

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


def test_vote_floor_is_the_exact_expectation_not_a_few_simulated_rounds() -> None:
    """The top-k floor's MAE / RMSE are the expectations over gold crowds drawn from all voters, not the
    average of ``n_sim`` draws: with 3 rounds they match 40,000 simulated rounds (standard error of that
    long average about 0.002 for the MAE, measured), while 3 rounds alone scatter by about 0.15."""
    rng = np.random.default_rng(7)
    items = [f"i{j}" for j in range(6)]
    weights = np.array([6.0, 4, 3, 2, 1, 1])
    ballots = [rng.choice(6, size=2, replace=False, p=weights / weights.sum()) for _ in range(40)]
    full = pd.DataFrame([(items[j], f"v{v}", int(j in b)) for v, b in enumerate(ballots) for j in range(6)],
                        columns=["task", "worker", "label"])
    gold = full[full["worker"].isin([f"v{v}" for v in range(9)])]
    got = rows_of(noise_ceiling(gold, LabelSpec("topk", k=2), full=full, n_sim=3, n_splits=1, random_state=0),
                  "noise-ceiling")
    matrix = full.pivot(index="worker", columns="task", values="label").to_numpy(float)
    expected = 9 * matrix.mean(axis=0)
    draws = np.stack([matrix[rng.integers(0, 40, size=9)].sum(axis=0) for _ in range(40_000)])
    assert got[("count", "mae")] == pytest.approx(np.abs(draws - expected).mean(), abs=0.01)
    assert got[("count", "rmse")] == pytest.approx(np.sqrt(((draws - expected) ** 2).mean()), abs=0.01)


def test_vote_sampling_oracle_is_exact_too() -> None:
    """The matched floor for votes (a crowd of ``k n`` ballots drawn from all voters, counts / k, against
    ``n`` drawn gold ballots): 3 rounds give the expectation of 40,000 simulated ones (about 0.003 standard
    error, measured)."""
    rng = np.random.default_rng(11)
    items = [f"i{j}" for j in range(5)]
    ballots = [rng.choice(5, size=2, replace=False, p=[0.4, 0.25, 0.15, 0.1, 0.1]) for _ in range(30)]
    full = pd.DataFrame([(items[j], f"v{v}", int(j in b)) for v, b in enumerate(ballots) for j in range(5)],
                        columns=["task", "worker", "label"])
    gold = full[full["worker"].isin([f"v{v}" for v in range(8)])]
    matrix = full.pivot(index="worker", columns="task", values="label").to_numpy(float)
    for k in (1, 3):
        got = sampling_oracle(gold, LabelSpec("topk", k=2), full=full, per_answer=k, n_sim=3, random_state=0)
        got = {(r.aggregator, r.metric): r.value for r in got.itertuples()}
        diff = np.stack([matrix[rng.integers(0, 30, size=8 * k)].sum(axis=0) / k
                         - matrix[rng.integers(0, 30, size=8)].sum(axis=0) for _ in range(40_000)])
        assert got[("count", "mae")] == pytest.approx(np.abs(diff).mean(), abs=0.012), k
        assert got[("count", "rmse")] == pytest.approx(np.sqrt((diff ** 2).mean()), abs=0.012), k
