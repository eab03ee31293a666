"""The parts of the crowd package, each on its own: label kinds, the task memory, the parameters, the
fitted state and its save/load (format versions 1 and 2)."""

from __future__ import annotations

import copy
import json
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from crowdllm.belief.cvae import BeliefModel
from crowdllm.belief.embeddings import TextEmbedder
from crowdllm.crowd import KINDS, CrowdState, DigitalCrowd, TaskMemory, crowd_kind
from crowdllm.crowd.kinds import kind_of
from crowdllm.data.dataset import LabelSpec
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.errors import ConfigError

# the "hyper" of a crowd.json written by the code before the crowd became a package (format version 1)
V1_HYPER = {"J": 10, "batch_size": 256, "blender": None, "calibrate": "linear", "dropout": 0.1, "embedder": "hashing",
            "epochs": 3, "hidden": 64, "kl_weight": 1.0, "lam": 1.0, "latent_dim": 8, "lr": 0.001,
            "memory_kappa": 1.0, "meta_columns": None, "patience": 10, "prior_pred_weight": 1.0,
            "profile_text_columns": [], "random_state": 0, "recon_weight": 1.0, "refit": False, "sigma": None,
            "sigma_scale": 1.0, "skip": "ref", "task_memory": True, "task_sigma": 5.0, "text_column": "text",
            "use_reference_distribution": True, "valid_fraction": 0.15, "validation": "both",
            "weight_decay": 0.0001}
V1_KEYS = {"blender", "calibration", "center", "emb_mean", "emb_std", "embedder", "featurizer", "files",
           "format_version", "global_dist", "has_reference", "hyper", "kind", "label", "memory", "n_train_responses",
           "p_columns", "pool", "profile_columns", "profile_encoder", "ref_default", "ref_fill", "reference",
           "reference_missing", "scale", "task_sigma"}


@pytest.fixture(scope="module")
def syn():
    return make_synthetic_crowd(n_tasks=30, n_workers=25, participation=0.6, random_state=0)


@pytest.fixture(scope="module")
def fitted(syn):
    return DigitalCrowd(epochs=3, embedder=TextEmbedder("hashing", cache=False)).fit(syn.dataset)


def test_every_label_kind_is_one_object_and_free_text_has_none():
    labels = {"continuous": LabelSpec("continuous", scale=(1, 5)), "ordinal": LabelSpec("ordinal", scale=(1, 5)),
              "categorical": LabelSpec("categorical", categories=("no", "yes")), "topk": LabelSpec("topk", k=3)}
    assert [kind.name for kind in KINDS] == list(labels)
    for label in labels.values():  # each crowd kind extends its label kind (crowdllm.data.kinds)
        assert isinstance(crowd_kind(label), type(label.kind_)) and crowd_kind(label).name == label.kind
    defaults = {name: crowd_kind(label).blenders[0] for name, label in labels.items()}
    assert defaults == {"continuous": "normal", "ordinal": "ordinal", "categorical": "softmax", "topk": "topk"}
    assert [n for n, lab in labels.items() if crowd_kind(lab).votes] == ["topk"]
    assert [n for n, lab in labels.items() if crowd_kind(lab).rating] == ["continuous", "ordinal"]
    assert crowd_kind(labels["ordinal"]).prompt_choices(labels["ordinal"]) == ["1", "2", "3", "4", "5"]
    assert crowd_kind(labels["topk"]).reference_args(labels["topk"]) == {"top_k": 3}
    assert kind_of(LabelSpec("text")) is None
    with pytest.raises(ConfigError, match="free-text labels are not supported"):
        crowd_kind(LabelSpec("text"))


def test_task_memory_estimates_kappa_as_within_over_between_task_variance():
    """400 tasks x 10 answers, task effects sd 0.5, answer noise sd 1: kappa = 1 / 0.25 = 4."""
    rng = np.random.default_rng(0)
    n_tasks, per_task = 400, 10
    ti = np.repeat(np.arange(n_tasks), per_task)
    y = rng.normal(0, 0.5, n_tasks)[ti] + rng.normal(0, 1.0, len(ti))
    state = CrowdState(LabelSpec("continuous"), center=0.0, scale=1.0)
    tasks = pd.Index([f"t{i}" for i in range(n_tasks)])
    memory = TaskMemory(kappa=None).fit(crowd_kind(state.label), state, np.zeros((len(ti), 1)), y, ti, tasks)
    # measured over seeds 0..19: mean 4.19, sd 0.40 (seed 0: 4.93); the tolerance is 3 sd
    assert memory.kappa_ == pytest.approx(4.0, abs=1.2)
    sums = np.bincount(ti, weights=y)
    np.testing.assert_allclose(memory.offsets_[:, 0], sums / (per_task + memory.kappa_))
    assert memory.for_tasks(pd.Series(["t3", "unseen"]))[:, 0].tolist() == [memory.offsets_[3, 0], 0.0]
    noise = rng.normal(0, 1.0, len(ti))
    no_effect = noise - (np.bincount(ti, weights=noise) / per_task)[ti]  # every task's answers average 0
    flat = TaskMemory(kappa=None).fit(crowd_kind(state.label), state, np.zeros((len(ti), 1)), no_effect, ti, tasks)
    assert flat.kappa_ == float("inf") and not flat.offsets_.any()  # no task effect: nothing to remember


def test_parameters_are_written_once_and_reach_the_nested_estimators():
    crowd = DigitalCrowd(epochs=7, latent_dim=4, memory_kappa=None, sigma_scale=1.2)
    assert (crowd.belief.epochs, crowd.belief.latent_dim, crowd.memory.kappa) == (7, 4, None)
    params = crowd.get_params()
    assert params["belief__epochs"] == 7 and params["sigma_scale"] == 1.2 and params["belief"] is crowd.belief
    assert crowd.set_params(belief__hidden=16, J=3).belief.hidden == 16 and crowd.J == 3
    assert crowd.belief.epochs == 7  # the other belief parameters are kept
    nested = DigitalCrowd(belief=BeliefModel(epochs=9), memory=TaskMemory(kappa=2.0))
    assert nested.get_params()["belief__epochs"] == 9 and nested.memory.kappa == 2.0
    assert DigitalCrowd().get_params()["belief__epochs"] == BeliefModel().epochs  # one default, in BeliefModel
    with pytest.raises(TypeError, match="no parameter 'epoch'"):
        DigitalCrowd(epoch=5)


def test_fit_leaves_the_arguments_alone_and_sample_changes_nothing(syn, fitted):
    assert fitted.belief.epochs == 3 and fitted.memory is None and fitted.blender is None
    assert isinstance(fitted.embedder, TextEmbedder)
    assert not hasattr(fitted.belief, "net_")  # the belief model fitted is a copy of the parameter
    memory = TaskMemory(kappa=None)
    DigitalCrowd(epochs=2, memory=memory, embedder=fitted.embedder).fit(syn.dataset)
    assert not hasattr(memory, "offsets_")
    before_attrs = dict(vars(fitted))
    before_state = {f.name: getattr(fitted.state_, f.name) for f in fields(fitted.state_)}
    before_blender = fitted.state_.blender.to_dict()
    a = fitted.sample(syn.dataset.tasks, profiles=syn.dataset.workers, random_state=2)
    fitted.expected_decisions(syn.dataset.tasks.head(3), syn.dataset.workers.head(2), random_state=2)
    assert vars(fitted).keys() == before_attrs.keys()
    assert all(vars(fitted)[k] is v for k, v in before_attrs.items())
    assert all(getattr(fitted.state_, k) is v for k, v in before_state.items())
    assert fitted.state_.blender.to_dict() == before_blender
    b = fitted.sample(syn.dataset.tasks, profiles=syn.dataset.workers, random_state=2)
    pd.testing.assert_frame_equal(a, b)


def test_a_crowd_saved_in_format_version_1_loads_and_samples_the_same(syn, fitted, tmp_path):
    fitted.save(tmp_path)
    path = tmp_path / "crowd.json"
    state = json.loads(path.read_text())
    # version 2 dropped two keys that were saved but never read; version 3 added the twins and the mixture,
    # version 4 the voter model of top-k crowds, version 5 the LLM's hidden states as task features,
    # version 6 an ensemble of belief networks, version 7 the numeric twins' curve and own noise
    assert set(state) == (V1_KEYS - {"emb_mean", "emb_std"}) | {"twins", "mixture", "voters", "hidden_basis",
                                                                   "belief_members"}
    assert state["format_version"] == 7 and state["voters"] is None and state["hidden_basis"] is None
    # exactly what the code before the package wrote: its keys, no parameters it did not know
    state.update(format_version=1, hyper={**V1_HYPER, "epochs": 3}, emb_mean=[0.0] * 4, emb_std=[1.0] * 4)
    del state["twins"], state["mixture"], state["voters"], state["hidden_basis"], state["belief_members"]
    path.write_text(json.dumps(state))
    loaded = DigitalCrowd.load(tmp_path)
    assert loaded.belief.epochs == 3 and loaded.memory.kappa == 1.0
    assert loaded.profile_columns_ == ["gender", "age", "group"]
    plain = copy.deepcopy(fitted)  # the same crowd without the parts version 1 did not have
    plain.state_.twins = plain.state_.mixture = None
    plain.state_.belief = getattr(plain.state_.belief, "members", [plain.state_.belief])[0]  # one network
    plain.J = V1_HYPER["J"]  # its saved J (10; the default is 0 now)
    pd.testing.assert_frame_equal(loaded.sample(syn.dataset.tasks, profiles=syn.dataset.workers, random_state=4),
                                  plain.sample(syn.dataset.tasks, profiles=syn.dataset.workers, random_state=4))
    del state["memory"]
    path.write_text(json.dumps(state))
    with pytest.raises(ConfigError, match=r"damaged or incompatible saved crowd \(KeyError: 'memory'\); fit the crowd"):
        DigitalCrowd.load(tmp_path)
    state["format_version"] = 8
    path.write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="format version 8 is newer"):
        DigitalCrowd.load(tmp_path)
