"""Metrics on tiny crowds computed by hand, plus property tests."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import wasserstein_distance

from crowdllm.data.dataset import LabelSpec
from crowdllm.errors import ConfigError, CrowdDataError
from crowdllm.evaluate.metrics import (
    avg_wasserstein,
    centered_cosine,
    cosine,
    cs_dist,
    evaluate_predictions,
    label_values,
    per_task_wasserstein,
)

ORDINAL = LabelSpec("ordinal", scale=(1, 5))


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


def as_dict(result: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(r.aggregator, r.metric): r.value for r in result.itertuples()}


# gold: a = {1, 1} (mean 1), b = {4, 5} (mean 4.5); pred: a = {2, 1} (mean 1.5), b = {4, 4} (mean 4)
GOLD = frame([("a", "x", 1.0), ("a", "y", 1.0), ("b", "x", 4.0), ("b", "y", 5.0)])
PRED = frame([("a", "x", 2.0), ("a", "y", 1.0), ("b", "x", 4.0), ("b", "y", 4.0)])


def test_every_metric_by_hand() -> None:
    m = as_dict(evaluate_predictions(PRED, GOLD, ORDINAL, aggregators=["mean", "mv"]))
    # per-task means differ by 0.5 on both tasks
    assert m[("mean", "mae")] == pytest.approx(0.5)
    assert m[("mean", "rmse")] == pytest.approx(0.5)
    # cosine of (1.5, 4) and (1, 4.5); centred they are (-1.25, 1.25) and (-1.75, 1.75): Pearson 1
    assert m[("mean", "cs_raw")] == pytest.approx(19.5 / math.sqrt(18.25 * 21.25))
    assert m[("mean", "cs_centered")] == pytest.approx(1.0)
    # MV: pred a ties 1/2 -> 1 = gold 1; gold b ties 4/5 -> 4 = pred 4
    assert m[("mv", "mae")] == 0.0
    # histograms over 1..5: a (1,1,0,0,0) vs (2,0,0,0,0) and b (0,0,0,2,0) vs (0,0,0,1,1): cosine 1/sqrt(2) each
    assert m[("-", "cs_dist")] == pytest.approx(1 / math.sqrt(2))
    # W1({1,2},{1,1}) = 0.5 and W1({4,4},{4,5}) = 0.5
    assert m[("-", "avg_wd")] == pytest.approx(0.5)
    assert m[("-", "coverage")] == 1.0
    assert avg_wasserstein(PRED, GOLD, ORDINAL) == pytest.approx(0.5)
    assert cs_dist(PRED, GOLD, ORDINAL) == pytest.approx(1 / math.sqrt(2))


def test_result_layout() -> None:
    out = evaluate_predictions(PRED, GOLD, ORDINAL)
    assert list(out.columns) == ["aggregator", "metric", "value"]
    assert list(pd.unique(out["aggregator"])) == ["mean", "median", "mv", "ds", "glad", "-"]
    assert set(out.loc[out["aggregator"] == "ds", "metric"]) == {"mae", "rmse", "cs_raw", "cs_centered"}


def test_tasks_a_method_cannot_predict_are_left_out_and_counted() -> None:
    pred = PRED.copy()
    pred.loc[pred["task"] == "b", "label"] = np.nan
    m = as_dict(evaluate_predictions(pred, GOLD, ORDINAL, aggregators=["mean"]))
    assert m[("-", "coverage")] == 0.5
    assert m[("mean", "mae")] == pytest.approx(0.5)  # task a only
    assert m[("-", "avg_wd")] == pytest.approx(0.5)
    nothing = PRED.assign(label=np.nan)
    m = as_dict(evaluate_predictions(nothing, GOLD, ORDINAL, aggregators=["mean"]))
    assert m[("-", "coverage")] == 0.0 and math.isnan(m[("mean", "mae")])


def test_off_level_predictions_use_scipy_wasserstein() -> None:
    pred = PRED.assign(label=[1.5, 1.0, 4.2, 3.9])
    expected = (wasserstein_distance([1.5, 1.0], [1, 1]) + wasserstein_distance([4.2, 3.9], [4, 5])) / 2
    assert avg_wasserstein(pred, GOLD, ORDINAL) == pytest.approx(expected)


def test_votes_by_hand() -> None:
    # 3 items, 2 voters choosing k=1: gold counts (2, 0, 0), predicted (1, 1, 0)
    topk = LabelSpec("topk", k=1)
    gold = frame([("A", "v1", 1), ("B", "v1", 0), ("C", "v1", 0), ("A", "v2", 1), ("B", "v2", 0), ("C", "v2", 0)])
    pred = frame([("A", "v1", 1), ("B", "v1", 0), ("C", "v1", 0), ("A", "v2", 0), ("B", "v2", 1), ("C", "v2", 0)])
    m = as_dict(evaluate_predictions(pred, gold, topk))
    assert m[("count", "mae")] == pytest.approx(2 / 3)
    assert m[("count", "rmse")] == pytest.approx(math.sqrt(2 / 3))
    assert m[("count", "cs_raw")] == pytest.approx(2 / (2 * math.sqrt(2)))
    # sorted counts (0, 1, 1) vs (0, 0, 2): W1 = (0 + 1 + 1) / 3
    assert m[("count", "wd")] == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match="same size"):
        evaluate_predictions(pred[pred["worker"] == "v1"], gold, topk)


def test_categorical_labels_get_error_rate_and_tvd() -> None:
    spec = LabelSpec("categorical", categories=("no", "yes"))
    gold = frame([("a", "x", "yes"), ("a", "y", "yes"), ("b", "x", "no"), ("b", "y", "no")])
    pred = frame([("a", "x", "yes"), ("a", "y", "no"), ("b", "x", "yes"), ("b", "y", "yes")])
    m = as_dict(evaluate_predictions(pred, gold, spec, aggregators=["mv"]))
    # MV: pred a ties -> "no" (string order) != "yes"; pred b "yes" != "no": both wrong
    assert m[("mv", "error_rate")] == 1.0
    # TV: a: |0.5-1| + |0.5-0| over 2 = 0.5; b: 1.0
    assert m[("-", "avg_tvd")] == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="numeric labels"):
        evaluate_predictions(pred, gold, spec, aggregators=["mean"])


def test_text_labels_are_refused() -> None:
    with pytest.raises(ConfigError, match="free-text"):
        evaluate_predictions(PRED, GOLD, LabelSpec("text"))


def test_cosine_helpers() -> None:
    assert cosine([1, 0], [0, 1]) == 0.0
    assert math.isnan(cosine([0, 0], [1, 1]))
    assert centered_cosine([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert math.isnan(centered_cosine([2, 2, 2], [1, 2, 3]))


# ---------------------------------------------------------------- properties
crowds = st.lists(
    st.tuples(st.sampled_from(["t1", "t2", "t3"]), st.sampled_from(["w1", "w2", "w3", "w4"]), st.integers(1, 5)),
    min_size=1, max_size=12, unique_by=lambda r: (r[0], r[1]),
)


@settings(max_examples=60, deadline=None)
@given(a=crowds, b=crowds)
def test_wasserstein_is_symmetric_and_matches_scipy(a: list, b: list) -> None:
    fa, fb = frame(a), frame(b)
    tasks = pd.Index(sorted(set(fa["task"]) | set(fb["task"])))
    ta, tb = tasks.get_indexer(fa["task"]), tasks.get_indexer(fb["task"])
    va, vb = fa["label"].to_numpy(float), fb["label"].to_numpy(float)
    ab = per_task_wasserstein(ta, va, tb, vb, len(tasks), ORDINAL.levels)
    ba = per_task_wasserstein(tb, vb, ta, va, len(tasks), ORDINAL.levels)
    np.testing.assert_allclose(ab, ba, equal_nan=True)
    for i, t in enumerate(tasks):
        pa, pb = va[fa["task"] == t], vb[fb["task"] == t]
        if len(pa) and len(pb):
            assert ab[i] == pytest.approx(wasserstein_distance(pa, pb))
        else:
            assert np.isnan(ab[i])
    same = per_task_wasserstein(ta, va, ta, va, len(tasks), ORDINAL.levels)
    assert np.all(same[~np.isnan(same)] == 0)


@settings(max_examples=40, deadline=None)
@given(rows=crowds)
def test_a_perfect_prediction_scores_zero_error_and_full_similarity(rows: list) -> None:
    gold = frame([(t, w, float(y)) for t, w, y in rows])
    m = as_dict(evaluate_predictions(gold.copy(), gold, ORDINAL))
    for agg in ("mean", "median", "mv", "ds", "glad"):
        assert m[(agg, "mae")] == 0 and m[(agg, "rmse")] == 0
        assert m[(agg, "cs_raw")] == pytest.approx(1.0)
        assert math.isnan(m[(agg, "cs_centered")]) or m[(agg, "cs_centered")] == pytest.approx(1.0)
    assert m[("-", "avg_wd")] == 0
    assert m[("-", "cs_dist")] == pytest.approx(1.0)


def test_category_codes_match_whatever_type_the_file_gave_them():
    """Answers -1/1 read as ints, floats or text are the categories '-1'/'1' (as the loader reads them)."""
    binary = LabelSpec("categorical", categories=("-1", "1"))
    for labels in ([-1, 1, 1], [-1.0, 1.0, 1.0], ["-1", "1.0", " 1"]):
        np.testing.assert_array_equal(label_values(pd.Series(labels), binary), [0.0, 1.0, 1.0])
    named = LabelSpec("categorical", categories=("no", "yes"))
    np.testing.assert_array_equal(label_values(pd.Series(["yes", "no"]), named), [1.0, 0.0])
    with pytest.raises(CrowdDataError, match="label '0' is not one of the categories"):
        label_values(pd.Series([-1, 0]), binary)
