"""Splits: unseen people, unseen problems, or both — without leakage, reproducible per seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data import CrowdDataset, LabelSpec, load_dataset, split_dataset
from crowdllm.errors import ConfigError


def _pairs(ds: CrowdDataset) -> set[tuple[str, str]]:
    return set(zip(ds.responses["task"], ds.responses["worker"], strict=True))


def test_by_worker_holds_out_a_fifth_of_the_people_with_all_their_answers(synthetic):
    ds = synthetic.dataset
    split = split_dataset(ds, by="worker", test_size=0.2, random_state=3)
    assert len(split.test_workers) == 8 and len(split.train_workers) == 32
    assert set(split.train.responses["worker"]) == set(split.train_workers)
    assert not set(split.train.responses["worker"]) & set(split.test.responses["worker"])
    assert set(split.test.responses["worker"]) == set(split.test_workers)
    # every response lands in exactly one part, and both keep the full tasks table
    assert _pairs(split.train) | _pairs(split.test) == _pairs(ds)
    assert split.train.n_responses + split.test.n_responses == ds.n_responses
    assert split.test.n_tasks == ds.n_tasks == split.train.n_tasks
    assert set(split.test.workers["worker"]) == set(split.test_workers)


def test_by_task_holds_out_unseen_problems(synthetic):
    ds = synthetic.dataset
    split = split_dataset(ds, by="task", random_state=1)
    assert len(split.test_tasks) == 12 and len(split.train_tasks) == 48
    assert not set(split.train.responses["task"]) & set(split.test_tasks)
    assert set(split.test.responses["task"]) <= set(split.test_tasks)
    assert set(split.test.tasks["task"]) == set(split.test_tasks)
    assert _pairs(split.train) | _pairs(split.test) == _pairs(ds)


def test_by_both_tests_unseen_people_on_unseen_problems(synthetic):
    ds = synthetic.dataset
    split = split_dataset(ds, by="both", random_state=2)
    train, test = split.train.responses, split.test.responses
    assert set(train["worker"]) <= set(split.train_workers) and set(train["task"]) <= set(split.train_tasks)
    assert set(test["worker"]) <= set(split.test_workers) and set(test["task"]) <= set(split.test_tasks)
    assert not set(split.train_workers) & set(split.test_workers)
    assert not set(split.train_tasks) & set(split.test_tasks)
    # exactly the responses of train people on train problems are in train (and likewise for test)
    r = ds.responses
    expect_train = r["worker"].isin(split.train_workers) & r["task"].isin(split.train_tasks)
    expect_test = r["worker"].isin(split.test_workers) & r["task"].isin(split.test_tasks)
    assert len(train) == int(expect_train.sum()) and len(test) == int(expect_test.sum())


@pytest.mark.parametrize("by", ["worker", "task", "both"])
def test_same_seed_same_split_other_seed_other_split_row_order_irrelevant(synthetic, by):
    ds = synthetic.dataset
    a = split_dataset(ds, by=by, random_state=7)
    b = split_dataset(ds, by=by, random_state=7)
    c = split_dataset(ds, by=by, random_state=8)
    shuffled = CrowdDataset(responses=ds.responses.sample(frac=1.0, random_state=0),
                            tasks=ds.tasks.sample(frac=1.0, random_state=1),
                            workers=ds.workers.sample(frac=1.0, random_state=2), label=ds.label)
    d = split_dataset(shuffled, by=by, random_state=7)
    key = (lambda s: s.test_workers) if by != "task" else (lambda s: s.test_tasks)
    assert key(a) == key(b) == key(d) and key(a) != key(c)
    pd.testing.assert_frame_equal(a.test.responses, b.test.responses)
    assert a.seed == 7 and a.by == by


def _votes(n_voters=10, n_items=8, k=3, seed=0) -> CrowdDataset:
    gen = np.random.default_rng(seed)
    rows = []
    for v in range(n_voters):
        picked = set(gen.choice(n_items, size=k, replace=False))
        rows += [(f"i{i}", f"v{v}", int(i in picked)) for i in range(n_items)]
    return CrowdDataset(
        responses=pd.DataFrame(rows, columns=["task", "worker", "label"]),
        tasks=pd.DataFrame({"task": [f"i{i}" for i in range(n_items)], "text": "an item"}),
        workers=pd.DataFrame({"worker": [f"v{v}" for v in range(n_voters)]}),
        label=LabelSpec("topk", k=k),
    ).validate()


def test_topk_votes_split_by_worker_only_and_keep_whole_ballots():
    ds = _votes()
    split = split_dataset(ds, by="worker")
    assert (split.test.responses.groupby("worker")["label"].sum() == 3).all()
    split.test.validate()
    for by in ("task", "both"):
        with pytest.raises(ConfigError, match="top-k votes.*ballots"):
            split_dataset(ds, by=by)


@pytest.mark.parametrize("kwargs, match", [
    ({"by": "people"}, "not one of worker, task, both"),
    ({"test_size": 0.0}, "strictly between 0 and 1"),
    ({"test_size": 1.5}, "strictly between 0 and 1"),
])
def test_bad_split_settings(synthetic, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        split_dataset(synthetic.dataset, **kwargs)


def test_real_popquorn_split_by_worker_follows_the_papers_protocol(shared_data):
    ds = load_dataset("popquorn-offensiveness")
    split = split_dataset(ds, by="worker", random_state=0)
    assert len(split.test_workers) == round(0.2 * 262) and len(split.train_workers) == 262 - len(split.test_workers)
    assert not set(split.train.responses["worker"]) & set(split.test.responses["worker"])
    assert split.train.n_responses + split.test.n_responses == 13036
    assert 0.1 < split.test.n_responses / 13036 < 0.3
    both = split_dataset(ds, by="both", random_state=0)
    assert not set(both.train.responses["task"]) & set(both.test.responses["task"])
    assert not set(both.train.responses["worker"]) & set(both.test.responses["worker"])
    assert both.test.n_responses > 0
