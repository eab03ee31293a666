"""Property tests that complement the ones next to each module (tests/llm/test_llm_parsing.py,
tests/aggregate/test_simple_aggregators.py, tests/evaluate/test_metrics.py):

- parsers are total (never raise) and never invent an answer outside what was allowed, on any text and scale;
- aggregators do not depend on what the tasks and workers are called, and move with the labels;
- the per-task Wasserstein distance is a distance (non-negative, triangle inequality), moves by |c| under a
  shift c, and only sees the distribution (duplicating every answer changes nothing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdllm.aggregate import AGGREGATORS, get_aggregator
from crowdllm.evaluate.metrics import avg_wasserstein, mae, per_task_wasserstein
from crowdllm.llm.parsing import parse_choice, parse_rating, parse_topk

FAST = settings(max_examples=80, deadline=None)

# ---------------------------------------------------------------------- parsers
scales = st.tuples(st.integers(-5, 10), st.integers(1, 12)).map(lambda t: (t[0], t[0] + t[1]))
model_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="0123456789 -/.:Rratingscoe*#,\n", max_size=40),
    st.builds(lambda a, n, b: f"{a} {n} {b}", st.text(max_size=20), st.integers(-20, 30), st.text(max_size=20)),
)


@FAST
@given(text=model_text, scale=scales)
def test_parse_rating_never_raises_and_never_leaves_the_scale(text: str, scale: tuple[int, int]) -> None:
    value = parse_rating(text, scale)
    assert value is None or (isinstance(value, int) and scale[0] <= value <= scale[1])


@FAST
@given(scale=scales, data=st.data())
def test_a_labelled_rating_is_read_on_any_scale(scale: tuple[int, int], data: st.DataObject) -> None:
    v = data.draw(st.integers(scale[0], scale[1]))
    assert parse_rating(f"Rating: {v}", scale) == v


choice_sets = st.lists(st.text(alphabet="abcdefgXYZ -", min_size=1, max_size=8).map(str.strip).filter(bool),
                       min_size=1, max_size=5, unique_by=str.lower)


@FAST
@given(text=model_text, choices=choice_sets)
def test_parse_choice_returns_one_of_the_choices_or_none(text: str, choices: list[str]) -> None:
    answer = parse_choice(text, choices)
    assert answer is None or answer in choices


@FAST
@given(text=model_text, n_items=st.integers(1, 30), data=st.data())
def test_parse_topk_returns_exactly_k_distinct_known_items_or_none(text: str, n_items: int,
                                                                  data: st.DataObject) -> None:
    items = [str(i) for i in range(1, n_items + 1)]
    k = data.draw(st.integers(1, n_items))
    picked = parse_topk(text, items, k)
    assert picked is None or (len(picked) == k and len(set(picked)) == k and set(picked) <= set(items))


# ---------------------------------------------------------------------- aggregators
crowds = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(1, 5)),
    min_size=1, max_size=24, unique_by=lambda r: (r[0], r[1]),
)


def _frame(rows: list[tuple[int, int, int]], task_name, worker_name) -> pd.DataFrame:  # noqa: ANN001
    return pd.DataFrame([(task_name(t), worker_name(w), float(y)) for t, w, y in rows],
                        columns=["task", "worker", "label"])


@settings(max_examples=40, deadline=None)
@given(rows=crowds, seed=st.integers(0, 10_000))
def test_aggregators_do_not_depend_on_what_tasks_and_workers_are_called(rows: list, seed: int) -> None:
    rng = np.random.default_rng(seed)
    task_ids, worker_ids = rng.permutation(100)[:5], rng.permutation(100)[:6]
    plain = _frame(rows, lambda t: f"t{t}", lambda w: f"w{w}")
    renamed = _frame(rows, lambda t: f"item-{task_ids[t]:03d}", lambda w: f"person {worker_ids[w]}")
    back = {f"item-{task_ids[t]:03d}": f"t{t}" for t in range(5)}
    for name in AGGREGATORS:
        a = get_aggregator(name).fit_predict(plain)
        b = get_aggregator(name).fit_predict(renamed)
        b.index = b.index.map(back)
        pd.testing.assert_series_equal(a.sort_index(), b.sort_index(), check_names=False, obj=name)


@FAST
@given(rows=crowds, shift=st.integers(-3, 7))
def test_mean_median_and_majority_move_with_the_labels(rows: list, shift: int) -> None:
    df = _frame(rows, lambda t: f"t{t}", lambda w: f"w{w}")
    moved = df.assign(label=df["label"] + shift)
    for name in ("mean", "median", "mv"):
        a = get_aggregator(name).fit_predict(df)
        b = get_aggregator(name).fit_predict(moved)
        np.testing.assert_allclose(b.to_numpy(), a.to_numpy() + shift, err_msg=name)


def test_dawid_skene_and_glad_by_hand_on_a_crowd_with_one_reliable_majority() -> None:
    # three careful workers agree on every task; one worker always answers the opposite class.
    # Every latent-class model must side with the careful three, and so must majority vote.
    truth = {"a": 1.0, "b": 2.0, "c": 1.0, "d": 2.0, "e": 2.0}
    rows = [(t, w, y) for t, y in truth.items() for w in ("x", "y", "z")]
    rows += [(t, "contrarian", 3.0 - y) for t, y in truth.items()]
    df = pd.DataFrame(rows, columns=["task", "worker", "label"])
    for name in ("mv", "ds", "glad"):
        assert get_aggregator(name).fit_predict(df).to_dict() == truth, name


# ---------------------------------------------------------------------- metrics
samples = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 5)), min_size=1, max_size=15)
LEVELS = np.arange(1.0, 11.0)  # room to shift 1..5 by up to 5


def _arrays(rows: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([t for t, _ in rows], dtype=int), np.array([v for _, v in rows], dtype=float)


@FAST
@given(a=samples, b=samples, c=samples)
def test_wasserstein_is_a_distance(a: list, b: list, c: list) -> None:
    (ta, va), (tb, vb), (tc, vc) = _arrays(a), _arrays(b), _arrays(c)
    ab = per_task_wasserstein(ta, va, tb, vb, 3, LEVELS)
    bc = per_task_wasserstein(tb, vb, tc, vc, 3, LEVELS)
    ac = per_task_wasserstein(ta, va, tc, vc, 3, LEVELS)
    ok = ~(np.isnan(ab) | np.isnan(bc) | np.isnan(ac))
    assert (ab[~np.isnan(ab)] >= 0).all()
    assert (ac[ok] <= ab[ok] + bc[ok] + 1e-9).all()


@FAST
@given(a=samples, shift=st.integers(0, 5))
def test_wasserstein_of_a_shifted_crowd_is_the_shift(a: list, shift: int) -> None:
    ta, va = _arrays(a)
    d = per_task_wasserstein(ta, va, ta, va + shift, 3, LEVELS)
    present = np.bincount(ta, minlength=3) > 0
    np.testing.assert_allclose(d[present], float(shift))
    assert np.isnan(d[~present]).all()


@FAST
@given(a=samples, b=samples, copies=st.integers(2, 4))
def test_wasserstein_only_sees_the_distribution(a: list, b: list, copies: int) -> None:
    (ta, va), (tb, vb) = _arrays(a), _arrays(b)
    once = per_task_wasserstein(ta, va, tb, vb, 3, LEVELS)
    many = per_task_wasserstein(np.tile(ta, copies), np.tile(va, copies), tb, vb, 3, LEVELS)
    np.testing.assert_allclose(once, many, equal_nan=True)


@FAST
@given(a=st.lists(st.floats(-5, 5), min_size=1, max_size=10), data=st.data())
def test_mae_is_symmetric_and_zero_only_on_identical_inputs(a: list[float], data: st.DataObject) -> None:
    b = data.draw(st.lists(st.floats(-5, 5), min_size=len(a), max_size=len(a)))
    x, y = np.array(a), np.array(b)
    assert mae(x, y) == pytest.approx(mae(y, x))
    assert mae(x, x) == 0
    assert (mae(x, y) == 0) == bool(np.all(x == y))


def test_avg_wasserstein_by_hand() -> None:
    from crowdllm.data.dataset import LabelSpec

    # task a: {1, 1} vs {1, 3} -> W1 = 1; task b: {5} vs {2} -> 3; average 2
    gold = pd.DataFrame([("a", "x", 1.0), ("a", "y", 3.0), ("b", "x", 2.0)], columns=["task", "worker", "label"])
    pred = pd.DataFrame([("a", "p", 1.0), ("a", "q", 1.0), ("b", "p", 5.0)], columns=["task", "worker", "label"])
    label = LabelSpec("ordinal", scale=(1, 5))
    assert avg_wasserstein(pred, gold, label) == pytest.approx(2.0)
    assert avg_wasserstein(gold, pred, label) == pytest.approx(2.0)
    assert avg_wasserstein(gold, gold, label) == 0
