"""Mean, median and majority vote on crowds small enough to check by hand, plus property tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdllm.aggregate import AGGREGATORS, MajorityVote, Mean, Median, get_aggregator
from crowdllm.errors import ConfigError, CrowdDataError


def frame(rows: list[tuple[str, str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


def test_mean_and_median_by_hand() -> None:
    # task a: 1, 2, 6 -> mean 3, median 2; task b: 1, 2, 3, 4 -> mean 2.5, median (2+3)/2 = 2.5;
    # task c: a single 5
    df = frame([("a", "x", 1), ("a", "y", 2), ("a", "z", 6), ("b", "x", 4), ("b", "y", 3), ("b", "z", 2),
                ("b", "v", 1), ("c", "x", 5)])
    mean = Mean().fit_predict(df)
    median = Median().fit_predict(df)
    assert mean.to_dict() == {"a": 3.0, "b": 2.5, "c": 5.0}
    assert median.to_dict() == {"a": 2.0, "b": 2.5, "c": 5.0}
    assert mean.index.name == "task" and list(mean.index) == ["a", "b", "c"]


def test_majority_vote_by_hand_and_tie_rule() -> None:
    # a: two 3s beat one 5; b: one 4 and one 2 tie -> the lower label, 2; c: three-way tie -> 1
    df = frame([("a", "x", 5.0), ("a", "y", 3.0), ("a", "z", 3.0), ("b", "x", 4.0), ("b", "y", 2.0),
                ("c", "x", 3.0), ("c", "y", 1.0), ("c", "z", 2.0)])
    mv = MajorityVote().fit(df)
    assert mv.labels_.to_dict() == {"a": 3.0, "b": 2.0, "c": 1.0}
    assert mv.labels_.dtype == float  # ordinal labels come back as the label value
    assert mv.probas_.loc["a", 3.0] == pytest.approx(2 / 3)


def test_majority_vote_on_categories_returns_strings() -> None:
    df = frame([("a", "x", "yes"), ("a", "y", "no"), ("a", "z", "yes"), ("b", "x", "no"), ("b", "y", "yes")])
    out = MajorityVote().fit_predict(df)
    assert out.to_dict() == {"a": "yes", "b": "no"}  # tie on b -> "no" < "yes" in string order


def test_numeric_aggregators_refuse_categories() -> None:
    df = frame([("a", "x", "yes"), ("a", "y", "no")])
    with pytest.raises(ConfigError, match="numeric labels"):
        Mean().fit(df)
    with pytest.raises(ConfigError, match="numeric labels"):
        Median().fit(df)


def test_missing_column_and_missing_label_are_data_errors() -> None:
    with pytest.raises(CrowdDataError, match="label"):
        Mean().fit(pd.DataFrame({"task": ["a"], "worker": ["x"]}))
    with pytest.raises(CrowdDataError, match="row 7"):
        MajorityVote().fit(pd.DataFrame({"task": ["a", "a"], "worker": ["x", "y"], "label": [1.0, None]},
                                        index=[6, 7]))


def test_get_aggregator_by_name() -> None:
    assert set(AGGREGATORS) == {"mean", "median", "mv", "ds", "glad"}
    assert isinstance(get_aggregator("MV"), MajorityVote)
    assert get_aggregator("ds", n_iter=3).n_iter == 3
    with pytest.raises(ConfigError, match="unknown aggregator 'average'"):
        get_aggregator("average")


def test_empty_responses_give_an_empty_series() -> None:
    empty = frame([])
    for name in AGGREGATORS:
        assert get_aggregator(name).fit_predict(empty).empty


# ---------------------------------------------------------------- property tests
ratings = st.lists(
    st.tuples(st.sampled_from(["t1", "t2", "t3", "t4"]), st.sampled_from(["w1", "w2", "w3", "w4", "w5"]),
              st.integers(1, 5)),
    min_size=1, max_size=20,
    unique_by=lambda r: (r[0], r[1]),
)


@settings(max_examples=60, deadline=None)
@given(rows=ratings, seed=st.integers(0, 2**16))
def test_every_aggregator_ignores_row_order(rows: list[tuple[str, str, int]], seed: int) -> None:
    df = frame([(t, w, float(y)) for t, w, y in rows])
    shuffled = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    for name in AGGREGATORS:
        a = get_aggregator(name).fit_predict(df)
        b = get_aggregator(name).fit_predict(shuffled)
        pd.testing.assert_series_equal(a, b, obj=name)


@settings(max_examples=60, deadline=None)
@given(rows=ratings)
def test_mean_and_median_agree_with_pandas(rows: list[tuple[str, str, int]]) -> None:
    df = frame([(t, w, float(y)) for t, w, y in rows])
    grouped = df.groupby("task")["label"]
    np.testing.assert_allclose(Mean().fit_predict(df).to_numpy(), grouped.mean().sort_index().to_numpy())
    np.testing.assert_allclose(Median().fit_predict(df).to_numpy(), grouped.median().sort_index().to_numpy())


@settings(max_examples=60, deadline=None)
@given(rows=ratings)
def test_majority_vote_returns_a_most_frequent_given_label(rows: list[tuple[str, str, int]]) -> None:
    df = frame([(t, w, float(y)) for t, w, y in rows])
    out = MajorityVote().fit_predict(df)
    for task, label in out.items():
        counts = df.loc[df["task"] == task, "label"].value_counts()
        assert label in counts.index  # a label somebody gave for this task
        assert counts[label] == counts.max()
        assert label == min(counts.index[counts == counts.max()])  # the tie rule
