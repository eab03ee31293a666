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
        "n_real": [5, 5, 8] * 2, "judgements_real": [5, 5, 8] * 2, "n_train_responses": 1000,
        "train_judgements": 1000,
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


def test_a_ballot_is_one_judgement_shared_by_the_items():
    from crowdllm.data.dataset import CrowdDataset, LabelSpec

    items = pd.DataFrame({"task": ["a", "b", "c"], "text": ["x", "y", "z"]})
    picks = ["a", "a", "b", "a", "c", "a", "b", "a", "a", "c"]
    rows = [(i, f"v{w}", float(i == p)) for w, p in enumerate(picks) for i in "abc"]
    ds = CrowdDataset(pd.DataFrame(rows, columns=["task", "worker", "label"]), items,
                      pd.DataFrame({"worker": [f"v{w}" for w in range(10)]}), LabelSpec("topk", k=1)).validate()

    class AlwaysA:
        def sample(self, tasks, workers, *, pairs, random_state=None):
            return pairs.assign(label=(pairs["task"] == "a").astype(float))

    need = people_needed(ds, {"a": lambda train, seed: AlwaysA()}, tolerances=[1.0], max_people=4, split="worker",
                         test_size=0.5, seeds=[0])
    assert len(need) == 3 and (need["n_real"] == 5).all()
    table = cost_table(need, prices=Prices(per_judgement=3.0)).iloc[0]
    assert table["human_per_task"] == pytest.approx(5 / 3)  # five ballots over three items
    assert table["training_cost"] == pytest.approx(5 * 3.0)  # five training voters, one ballot each
