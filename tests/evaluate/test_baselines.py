"""Non-LLM baselines: each samples from the distribution it claims to, seeded, one row per pair."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.errors import ConfigError
from crowdllm.evaluate.baselines import (
    GlobalDistribution,
    Method,
    PerTaskEmpirical,
    ProfileGroup,
    UniformRandom,
    top_k_without_replacement,
)

ORDINAL = LabelSpec("ordinal", scale=(1, 5))


def gendered_crowd() -> CrowdDataset:
    """20 tasks x 40 workers. Women always answer 5, men always answer 1 -- except on task t00, which
    everybody rates 3. Half the workers are women."""
    workers = pd.DataFrame({"worker": [f"w{i:02d}" for i in range(40)],
                            "gender": ["Woman" if i % 2 else "Man" for i in range(40)],
                            "age": ["young" if i < 20 else "old" for i in range(40)]})
    tasks = pd.DataFrame({"task": [f"t{j:02d}" for j in range(20)], "text": [f"text {j}" for j in range(20)]})
    rows = []
    for j in range(20):
        for i in range(40):
            label = 3.0 if j == 0 else (5.0 if i % 2 else 1.0)
            rows.append((f"t{j:02d}", f"w{i:02d}", label))
    responses = pd.DataFrame(rows, columns=["task", "worker", "label"])
    return CrowdDataset(responses, tasks, workers, ORDINAL).validate()


@pytest.mark.parametrize("cls", [UniformRandom, GlobalDistribution, PerTaskEmpirical, ProfileGroup])
def test_every_baseline_does_what_the_method_protocol_promises(cls: type) -> None:
    """The Method protocol by behaviour, as the runner relies on it: a registered name; fit returns the
    method itself; sample answers exactly the given pairs, in their order, with labels on the scale, the same
    for the same seed (int or Generator), and changes nothing on the fitted method."""
    from crowdllm.evaluate.runner import METHODS

    train = gendered_crowd()
    method = cls()
    assert isinstance(method.name, str) and method.name in METHODS
    assert method.fit(train) is method
    fitted = {k: repr(v) for k, v in vars(method).items()}
    gen = np.random.default_rng(7)
    # a shuffled subset of (task, worker) pairs, with one pair asked twice: the answer follows the rows
    pairs = train.responses[["task", "worker"]].sample(n=50, random_state=3).reset_index(drop=True)
    pairs = pd.concat([pairs, pairs.iloc[[4]]], ignore_index=True)
    out = method.sample(train.tasks, train.workers, pairs=pairs, random_state=11)
    assert list(out.columns) == ["task", "worker", "label"]
    pd.testing.assert_frame_equal(out[["task", "worker"]].astype(str), pairs.astype(str))
    assert out["label"].isin([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    pd.testing.assert_frame_equal(out, method.sample(train.tasks, train.workers, pairs=pairs, random_state=11))
    a = method.sample(train.tasks, train.workers, pairs=pairs, random_state=np.random.default_rng(5))
    b = method.sample(train.tasks, train.workers, pairs=pairs, random_state=np.random.default_rng(5))
    pd.testing.assert_frame_equal(a, b)
    method.sample(train.tasks, train.workers, pairs=pairs, random_state=gen)
    assert {k: repr(v) for k, v in vars(method).items()} == fitted
    assert isinstance(method, Method)  # and the static protocol, for type checkers


def test_uniform_random_is_uniform_over_the_scale_and_seeded() -> None:
    train = gendered_crowd()
    method = UniformRandom().fit(train)
    pairs = pd.DataFrame({"task": ["t01"] * 20000, "worker": ["w00"] * 20000})
    out = method.sample(train.tasks, train.workers, pairs=pairs, random_state=0)
    shares = out["label"].value_counts(normalize=True).sort_index()
    assert list(shares.index) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.allclose(shares.to_numpy(), 0.2, atol=0.015)
    again = method.sample(train.tasks, train.workers, pairs=pairs, random_state=0)
    pd.testing.assert_frame_equal(out, again)
    other = method.sample(train.tasks, train.workers, pairs=pairs, random_state=1)
    assert not out["label"].equals(other["label"])


def test_without_pairs_every_worker_answers_every_task() -> None:
    train = gendered_crowd()
    out = UniformRandom().fit(train).sample(train.tasks.head(3), train.workers.head(4), random_state=0)
    assert len(out) == 12 and set(out["task"]) == {"t00", "t01", "t02"}
    assert list(out.columns) == ["task", "worker", "label"]


def test_global_distribution_reproduces_the_training_label_shares() -> None:
    train = gendered_crowd()  # 1/20 of the labels are 3; the rest half 1, half 5
    method = GlobalDistribution().fit(train)
    assert method.global_ == pytest.approx([0.475, 0, 0.05, 0, 0.475])
    pairs = pd.DataFrame({"task": ["t05"] * 20000, "worker": ["w01"] * 20000})
    out = method.sample(train.tasks, train.workers, pairs=pairs, random_state=0)
    shares = out["label"].value_counts(normalize=True)
    assert set(shares.index) == {1.0, 3.0, 5.0}
    assert shares[3.0] == pytest.approx(0.05, abs=0.01)


def test_per_task_copies_the_task_distribution_and_refuses_unseen_tasks() -> None:
    train = gendered_crowd()
    method = PerTaskEmpirical().fit(train)
    tasks = pd.concat([train.tasks, pd.DataFrame({"task": ["new"], "text": ["never seen"]})])
    pairs = pd.DataFrame({"task": ["t00"] * 50 + ["new"] * 5, "worker": ["w00"] * 55})
    out = method.sample(tasks, train.workers, pairs=pairs, random_state=0)
    assert (out["label"].iloc[:50] == 3.0).all()  # everybody rated t00 a 3
    assert out["label"].iloc[50:].isna().all()  # unseen: NaN, consistently


def test_profile_group_answers_like_people_with_the_same_profile() -> None:
    train = gendered_crowd().subset(workers=[f"w{i:02d}" for i in range(36)])
    method = ProfileGroup().fit(train)
    test_workers = pd.DataFrame({"worker": ["woman", "man"], "gender": ["Woman", "Man"], "age": ["old", "old"]})
    pairs = pd.DataFrame({"task": ["t05"] * 400, "worker": ["woman", "man"] * 200})
    out = method.sample(train.tasks, test_workers, pairs=pairs, random_state=0)
    women = out.loc[out["worker"] == "woman", "label"]
    men = out.loc[out["worker"] == "man", "label"]
    assert (women == 5.0).mean() > 0.97 and (men == 1.0).mean() > 0.97
    # on t00 the task says 3 and the group says 5: the naive-Bayes product of the two still gives 3 mostly,
    # because the group's smoothed distribution keeps a little mass on 3 while the task's is almost all 3
    on_t00 = method.sample(train.tasks, test_workers, pairs=pd.DataFrame({"task": ["t00"] * 200,
                                                                          "worker": ["woman"] * 200}),
                           random_state=0)
    assert (on_t00["label"] == 3.0).mean() > 0.9


def test_profile_group_backs_off_to_attributes_then_global() -> None:
    train = gendered_crowd()
    method = ProfileGroup(use_task=False).fit(train)
    # full combination (Woman, old) is supported: women answer 5 except on t00 (3)
    full = method.group_distribution(pd.Series({"gender": "Woman", "age": "old"}))
    assert full.argmax() == 4
    # an unknown age: back off to the mean of the supported single attributes (here: gender only)
    backed = method.group_distribution(pd.Series({"gender": "Woman", "age": "middle"}))
    assert backed == pytest.approx(method.attr_tables_["gender"]["Woman"])
    # nothing known: the global distribution
    assert method.group_distribution(pd.Series(dtype=object)) == pytest.approx(method.global_)
    with pytest.raises(ConfigError, match="attribute 'height'"):
        ProfileGroup(attributes=["height"]).fit(train)


def voting_crowd() -> CrowdDataset:
    """6 items, 30 voters choosing k=2: group A always picks items 0 and 1, group B items 4 and 5."""
    items = [f"i{j}" for j in range(6)]
    workers = pd.DataFrame({"worker": [f"v{i:02d}" for i in range(30)], "group": ["A", "B"] * 15})
    rows = []
    for i in range(30):
        chosen = {"i0", "i1"} if i % 2 == 0 else {"i4", "i5"}
        rows += [(item, f"v{i:02d}", int(item in chosen)) for item in items]
    return CrowdDataset(pd.DataFrame(rows, columns=["task", "worker", "label"]),
                        pd.DataFrame({"task": items, "text": items}), workers,
                        LabelSpec("topk", k=2)).validate()


@pytest.mark.parametrize("cls", [UniformRandom, GlobalDistribution, ProfileGroup])
def test_top_k_ballots_select_exactly_k_distinct_items(cls: type) -> None:
    train = voting_crowd()
    out = cls().fit(train).sample(train.tasks, train.workers, pairs=train.responses[["task", "worker"]],
                                  random_state=0)
    assert (out.groupby("worker")["label"].sum() == 2).all()
    assert set(out["label"]) <= {0, 1}


def test_top_k_popularity_and_groups() -> None:
    train = voting_crowd()
    pairs = train.responses[["task", "worker"]]
    glob = GlobalDistribution().fit(train).sample(train.tasks, train.workers, pairs=pairs, random_state=0)
    counts = glob.groupby("task")["label"].sum()
    assert counts[["i2", "i3"]].sum() < counts[["i0", "i1", "i4", "i5"]].sum() / 4  # never-voted items rare
    group = ProfileGroup().fit(train).sample(train.tasks, train.workers, pairs=pairs, random_state=0)
    a_votes = group[group["worker"].isin([f"v{i:02d}" for i in range(0, 30, 2)])]
    assert a_votes.groupby("task")["label"].sum()[["i0", "i1"]].sum() >= 26  # of 30 votes by group A
    with pytest.raises(ConfigError, match="top-k"):
        PerTaskEmpirical().fit(train)


def test_gumbel_top_k_follows_sequential_sampling_law() -> None:
    # weights (3, 1): the first pick is item 0 with probability 3/4
    rng = np.random.default_rng(0)
    mask = top_k_without_replacement(np.tile([3.0, 1.0], (20000, 1)), 1, rng)
    assert mask[:, 0].mean() == pytest.approx(0.75, abs=0.01)


def test_sampling_before_fit_and_text_labels_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="fitted"):
        UniformRandom().sample(pd.DataFrame({"task": ["a"]}), pd.DataFrame({"worker": ["x"]}))
    ds = gendered_crowd()
    text = CrowdDataset(ds.responses.assign(label="some words"), ds.tasks, ds.workers, LabelSpec("text"))
    with pytest.raises(ConfigError, match="free text"):
        GlobalDistribution().fit(text)
