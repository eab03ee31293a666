"""Cost saving: people needed to match the real crowd, checked by hand, and the money that follows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data import split_dataset
from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses.cost import LLMCost, Prices, cost_table, needed_histogram, people_needed


class Oracle:
    """Virtual person i answers task t with the i-th real answer of t (cycling): after as many people
    as the task has real answers, the virtual mean is exactly the real one."""

    def __init__(self, responses):
        self.labels = responses.groupby("task")["label"].apply(list).to_dict()

    def sample(self, tasks, workers, *, pairs, random_state=None):
        order = {w: i for i, w in enumerate(workers["worker"])}
        out = [self.labels[t][order[w] % len(self.labels[t])] for t, w in zip(pairs["task"], pairs["worker"],
                                                                              strict=True)]
        return pairs.assign(label=out)


def test_a_constant_method_matches_exactly_the_tasks_near_its_constant(crowd, methods):
    ds = crowd.dataset
    res = people_needed(ds, {"always-2": lambda train, seed: methods.Constant(2.0)}, tolerances=[0.25],
                        max_people=5, seeds=[0])
    test = split_dataset(ds, by="task", test_size=0.2, random_state=0).test
    gold = test.responses.groupby("task")["label"].mean()
    expected = gold.index[(gold - 2.0).abs() <= 0.25]
    got = res.set_index("task")["n_needed"]
    assert len(got) == len(gold) and 0 < len(expected) < len(gold)
    assert (got.loc[expected] == 1).all()
    assert got.drop(expected).isna().all()
    assert (res.set_index("task")["n_real"] == test.responses.groupby("task").size()).all()


def test_an_oracle_matches_every_task_within_its_real_crowd_size(crowd):
    ds = crowd.dataset
    res = people_needed(ds, {"oracle": lambda train, seed: Oracle(ds.responses)}, tolerances=[0.1, 0.4],
                        max_people=60, seeds=[0], rule="first")
    assert res["n_needed"].notna().all()
    assert (res["n_needed"] <= res["n_real"]).all()
    # a looser tolerance never needs more people
    wide = res.pivot(index="task", columns="tolerance", values="n_needed")
    assert (wide[0.4] <= wide[0.1]).all()
    hist = needed_histogram(res)
    assert hist.groupby("tolerance")["share"].sum().round(9).eq(1.0).all()


def test_money_per_task_follows_calls_tokens_and_prices():
    needed = pd.DataFrame({
        "dataset": "d", "split": "task", "seed": 0, "method": ["crowd"] * 3 + ["persona"] * 3,
        "task": ["a", "b", "c"] * 2, "tolerance": 0.2, "n_needed": [1, 3, np.nan, 2, 4, 6],
        "n_real": [5, 5, 8] * 2, "n_train_responses": 1000,
    })
    prices = Prices(per_judgement=0.5, per_million_tokens=2.0, tokens_per_call=100)
    table = cost_table(needed, llm_costs={"crowd": LLMCost(per_task=1), "persona": LLMCost(per_person=1)},
                       prices=prices, max_people=10).set_index("method")
    crowd, persona = table.loc["crowd"], table.loc["persona"]
    assert crowd["resolved"] == pytest.approx(2 / 3)
    assert crowd["mean_needed"] == pytest.approx(2.0)
    assert crowd["virtual_per_task"] == pytest.approx((1 + 3 + 10) / 3)  # unmatched counts max_people
    assert crowd["llm_calls_per_task"] == pytest.approx(1.0)
    assert crowd["llm_cost_per_task"] == pytest.approx(100 / 1e6 * 2.0)
    assert persona["llm_calls_per_task"] == pytest.approx(4.0)
    assert persona["tokens_per_task"] == pytest.approx(400.0)
    assert crowd["human_cost_per_task"] == pytest.approx(6.0 * 0.5)
    assert crowd["training_cost"] == pytest.approx(500.0)
    assert crowd["break_even_tasks"] == pytest.approx(500.0 / (3.0 - 2e-4))


def test_negative_prices_and_tolerances_are_refused(crowd, methods):
    with pytest.raises(ConfigError, match="per_judgement"):
        Prices(per_judgement=-1)
    with pytest.raises(ConfigError, match="tolerances"):
        people_needed(crowd.dataset, {"m": methods.factory()}, tolerances=[0.0])


def test_first_and_staying_within_the_tolerance_differ_for_a_wandering_mean():
    from crowdllm.evaluate.analyses.cost import first_within

    err = np.array([[0.5, 0.05, 0.3, 0.05, 0.0],   # touches at 2, stays from 4
                    [0.0, 0.0, 0.0, 0.0, 0.0],     # always
                    [0.5, 0.5, 0.5, 0.5, 0.15]])   # only the last size
    np.testing.assert_array_equal(first_within(err, 0.1, "first"), [2, 1, np.nan])
    np.testing.assert_array_equal(first_within(err, 0.1, "stays"), [4, 1, np.nan])
    np.testing.assert_array_equal(first_within(err, 0.2, "stays"), [4, 1, 5])
