"""DigitalCrowd end to end on small synthetic crowds with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crowdllm.belief.embeddings import TextEmbedder
from crowdllm.crowd import DigitalCrowd
from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.errors import ConfigError
from crowdllm.profiles import ProfileGenerator


def _crowd(**kw) -> DigitalCrowd:
    kw = {"epochs": 80, "random_state": 0, **kw}
    return DigitalCrowd(embedder=TextEmbedder("hashing", cache=False), **kw)


@pytest.fixture(scope="module")
def syn():
    return make_synthetic_crowd(n_tasks=60, n_workers=50, participation=0.6, random_state=0)


@pytest.fixture(scope="module")
def fitted(syn):
    return _crowd().fit(syn.dataset)


def _twins(workers: pd.DataFrame) -> pd.DataFrame:
    """Every training profile twice: once as a woman, once as a man (all else equal)."""
    return pd.concat([workers.assign(gender="Woman", worker=workers["worker"] + "-f"),
                      workers.assign(gender="Man", worker=workers["worker"] + "-m")], ignore_index=True)


@pytest.mark.slow
def test_women_rate_about_one_point_higher_in_the_virtual_crowd(syn, fitted):
    answers = fitted.sample(syn.dataset.tasks, profiles=_twins(syn.dataset.workers), random_state=1)
    assert len(answers) == 60 * 100
    means = answers.groupby("gender", observed=True)["label"].mean()
    # the data's own within-task gap is a bit under 1 (ratings are clipped to 1..5)
    assert 0.75 < means["Woman"] - means["Man"] < 1.2
    assert set(answers["label"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert list(answers.columns) == ["task", "worker", "label", "gender", "age", "group"]


@pytest.mark.slow
def test_informative_reference_beats_the_global_baseline_on_unseen_tasks(syn):
    ds = syn.dataset
    rng = np.random.default_rng(0)
    test_tasks = set(rng.choice(ds.tasks["task"], size=18, replace=False))
    train = ds.subset(tasks=[t for t in ds.tasks["task"] if t not in test_tasks])
    test = ds.responses[ds.responses["task"].isin(test_tasks)]
    # an LLM that knows roughly how offensive each text is (truth + noise), on a shifted scale
    reference = pd.DataFrame({"y_ref": 0.8 * syn.truth + 0.3 + rng.normal(0, 0.2, len(syn.truth))})
    crowd = _crowd().fit(train, reference=reference)
    answers = crowd.sample(ds.tasks[ds.tasks["task"].isin(test_tasks)], profiles=ds.workers,
                           pairs=test[["task", "worker"]], random_state=0)
    assert len(answers) == len(test)
    real = test.groupby("task")["label"].mean()
    virtual = answers.groupby("task", observed=True)["label"].mean().reindex(real.index)
    global_mae = (real - train.responses["label"].mean()).abs().mean()
    crowd_mae = (real - virtual).abs().mean()
    assert crowd_mae < 0.6 * global_mae
    # and the reference is what helps: the same crowd without it ("VAE only") does worse
    vae = _crowd().fit(train).sample(ds.tasks[ds.tasks["task"].isin(test_tasks)], profiles=ds.workers,
                                     pairs=test[["task", "worker"]], random_state=0)
    vae_mae = (real - vae.groupby("task", observed=True)["label"].mean().reindex(real.index)).abs().mean()
    assert crowd_mae < vae_mae


@pytest.mark.slow
def test_save_reload_gives_the_same_answers_for_the_same_seed(syn, fitted, tmp_path):
    people = ProfileGenerator.from_pool(syn.dataset.workers).sample(30, random_state=4)
    before = fitted.sample(syn.dataset.tasks, profiles=people, random_state=7)
    fitted.save(tmp_path / "crowd")
    back = DigitalCrowd.load(tmp_path / "crowd")
    pd.testing.assert_frame_equal(back.sample(syn.dataset.tasks, profiles=people, random_state=7), before)
    assert not before.equals(fitted.sample(syn.dataset.tasks, profiles=people, random_state=8))
    files = sorted(p.name for p in (tmp_path / "crowd").iterdir())
    # five belief networks by default (the ensemble): the first under the one network's name
    assert files == [f"belief-{k}.{ext}" for k in range(1, 5) for ext in ("json", "safetensors")] + [
        "belief.json", "belief.safetensors", "crowd.json"]
    # a crowd loaded from disk keeps no texts: tasks must come as a frame
    with pytest.raises(ConfigError, match="keeps no task texts"):
        back.sample(["t0000"], n_people=3)
    state = json.loads((tmp_path / "crowd" / "crowd.json").read_text())
    state["format_version"] = 42
    (tmp_path / "crowd" / "crowd.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="format version 42 is newer"):
        DigitalCrowd.load(tmp_path / "crowd")


@pytest.mark.slow
def test_same_seed_same_crowd(syn, fitted):
    again = _crowd().fit(syn.dataset)
    a = fitted.sample(syn.dataset.tasks, n_people=20, random_state=3)
    b = again.sample(syn.dataset.tasks, n_people=20, random_state=3)
    pd.testing.assert_frame_equal(a, b)


def test_unseen_profile_values_are_reported_not_silent(syn, fitted):
    people = pd.DataFrame({"worker": ["x", "y"], "gender": ["Non-binary", "Woman"],
                           "age": ["30-49", "30-49"], "group": ["A", "Z"]})
    with pytest.warns(UserWarning, match="not seen in training.*'Non-binary' x1.*'Z' x1"):
        out = fitted.sample(syn.dataset.tasks.head(3), profiles=people, random_state=0)
    assert len(out) == 6
    assert fitted.unseen_profiles_["gender"]["Non-binary"] >= 1


def test_reference_errors_name_the_problem(syn):
    ds = syn.dataset.subset(tasks=syn.dataset.tasks["task"][:20])
    with pytest.raises(ConfigError, match="no LLM reference for 5 task"):
        _crowd(epochs=1).fit(ds, reference=pd.Series(1.0, index=ds.tasks["task"][:15]))
    vae = _crowd(epochs=1).fit(ds)
    with pytest.raises(ConfigError, match="without an LLM reference"):
        vae.sample(ds.tasks, n_people=2, reference=pd.Series(1.0, index=ds.tasks["task"]))
    ref = _crowd(epochs=1).fit(ds, reference=pd.Series(2.0, index=ds.tasks["task"]))
    new = pd.DataFrame({"task": ["new"], "text": ["a brand new text"]})
    with pytest.raises(ConfigError, match="no LLM reference for 1 task.*'new'"):
        ref.sample(new, n_people=2)
    out = ref.sample(new, n_people=2, reference=lambda tasks: pd.DataFrame({"task": tasks["task"], "y_ref": 3.0}))
    assert len(out) == 2


def test_categorical_crowd_keeps_the_profile_effect(syn):
    ds = syn.dataset
    resp = ds.responses.assign(label=np.where(ds.responses["label"] >= 3, "offensive", "fine"))
    cat = CrowdDataset(resp, ds.tasks, ds.workers, LabelSpec("categorical", categories=("fine", "offensive")),
                       ordered_attributes=ds.ordered_attributes).validate()
    crowd = _crowd(epochs=40).fit(cat)
    answers = crowd.sample(ds.tasks, profiles=_twins(ds.workers), random_state=0)
    assert set(answers["label"]) <= {"fine", "offensive"}
    share = answers.assign(off=answers["label"] == "offensive").groupby("gender", observed=True)["off"].mean()
    real = cat.merged().assign(off=lambda f: f["label"] == "offensive").groupby("gender")["off"].mean()
    assert share["Woman"] - share["Man"] > 0.5 * (real["Woman"] - real["Man"]) > 0.05


def _voting(n_voters: int = 80, seed: int = 0) -> CrowdDataset:
    """12 projects in 2 categories; a voter picks 3, mostly from their favourite category."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"task": [f"p{i}" for i in range(12)],
                          "text": [f"project {i}" for i in range(12)],
                          "Category": ["Nature"] * 6 + ["Culture"] * 6, "Cost": [5000, 10000] * 6})
    voters = pd.DataFrame({"worker": [f"v{i}" for i in range(n_voters)],
                           "favourite": rng.choice(["Nature", "Culture"], size=n_voters)})
    rows = []
    for _, v in voters.iterrows():
        u = np.where(items["Category"] == v["favourite"], 2.0, 0.0) + rng.gumbel(size=12)
        chosen = set(np.argsort(-u)[:3])
        rows += [{"task": items["task"][i], "worker": v["worker"], "label": int(i in chosen)} for i in range(12)]
    return CrowdDataset(pd.DataFrame(rows), items, voters, LabelSpec("topk", k=3)).validate()


def test_topk_voters_choose_exactly_k_and_follow_their_preferences():
    ds = _voting()
    crowd = _crowd(epochs=60).fit(ds)
    people = pd.DataFrame({"worker": [f"n{i}" for i in range(200)], "favourite": ["Nature"] * 100 + ["Culture"] * 100})
    votes = crowd.sample(ds.tasks, profiles=people, random_state=0)
    assert (votes.groupby("worker", observed=True)["label"].sum() == 3).all()
    merged = votes.merge(ds.tasks[["task", "Category"]], on="task")
    chosen = merged[merged["label"] == 1]
    agree = (chosen["Category"] == chosen["favourite"]).mean()
    real = ds.merged()
    real_agree = (real[real["label"] == 1]["Category"] == real[real["label"] == 1]["favourite"]).mean()
    assert agree > 0.65 and abs(agree - real_agree) < 0.15
    with pytest.raises(ConfigError, match="choose among every item"):
        crowd.sample(ds.tasks, profiles=people, pairs=votes[["task", "worker"]].head(5))


def test_text_labels_and_bad_settings_are_refused(syn):
    ds = syn.dataset
    text = CrowdDataset(ds.responses.assign(label="some words"), ds.tasks, ds.workers, LabelSpec("text")).validate()
    with pytest.raises(ConfigError, match="free-text labels are not supported"):
        _crowd().fit(text)
    with pytest.raises(ConfigError, match="validation 'people'"):
        _crowd(validation="people").fit(ds)
    with pytest.raises(ConfigError, match="not fitted yet"):
        _crowd().sample(ds.tasks, n_people=3)
