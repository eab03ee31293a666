"""Participation draws and the profile encoder (one-hot, ordered codes, numeric, unseen values)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from crowdllm.errors import ConfigError, CrowdDataError
from crowdllm.profiles import ProfileEncoder, participation


def test_participation_rate_and_seed():
    workers = [f"w{i}" for i in range(200)]
    tasks = [f"t{i}" for i in range(100)]
    pairs = participation(workers, tasks, p=0.3, random_state=5)
    assert list(pairs.columns) == ["task", "worker"]
    assert abs(len(pairs) / 20_000 - 0.3) < 0.02
    pd.testing.assert_frame_equal(pairs, participation(workers, tasks, p=0.3, random_state=5))
    assert not pairs.equals(participation(workers, tasks, p=0.3, random_state=6))


def test_participation_per_person_propensity():
    p = pd.Series({"always": 1.0, "never": 0.0})
    pairs = participation(["always", "never"], ["a", "b", "c"], p=p, random_state=0)
    assert sorted(pairs["worker"]) == ["always"] * 3
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        participation(["x"], ["a"], p=1.5)


def _workers() -> pd.DataFrame:
    return pd.DataFrame({
        "worker": ["a", "b", "c", "d"],
        "gender": ["Woman", "Man", "Woman", np.nan],
        "age": ["18-29", "50+", "30-49", "18-29"],
        "score": [10.0, 20.0, 30.0, 40.0],
        "Description": ["You are a student from the north who loves parks and quiet streets " + s
                        for s in "abcd"],
    })


def test_encoder_one_hot_ordered_numeric_and_free_text_ignored():
    enc = ProfileEncoder().fit(_workers(), ordered_attributes={"age": ["18-29", "30-49", "50+"]})
    X = enc.transform(_workers())
    names = enc.feature_names_
    assert "Description" in enc.ignored_
    assert names[:4] == ["gender=(missing)", "gender=Man", "gender=Woman", "gender=other"]
    np.testing.assert_array_equal(X[:, names.index("gender=Woman")], [1, 0, 1, 0])
    np.testing.assert_array_equal(X[:, names.index("gender=(missing)")], [0, 0, 0, 1])
    np.testing.assert_allclose(X[:, names.index("age")], [0.0, 1.0, 0.5, 0.0])
    score = X[:, names.index("score")]
    assert score.mean() == pytest.approx(0.0, abs=1e-6) and score.std() == pytest.approx(1.0, abs=1e-5)
    assert enc.unseen_ == {}


def test_unseen_values_go_to_other_and_are_counted_or_raise_when_strict():
    enc = ProfileEncoder().fit(_workers(), ordered_attributes={"age": ["18-29", "30-49", "50+"]})
    new = pd.DataFrame({"worker": ["x", "y", "z"], "gender": ["Non-binary", "Non-binary", "Man"],
                        "age": ["65+", "18-29", "18-29"], "score": [10.0, 10.0, 10.0],
                        "Description": ["?"] * 3})
    X = enc.transform(new)
    names = enc.feature_names_
    np.testing.assert_array_equal(X[:, names.index("gender=other")], [1, 1, 0])
    np.testing.assert_array_equal(X[:, names.index("age=other")], [1, 0, 0])
    assert X[0, names.index("age")] == 0.5
    assert enc.unseen_ == {"gender": {"Non-binary": 2}, "age": {"65+": 1}}
    assert "gender: 2 unseen value(s)" in enc.report()
    strict = ProfileEncoder(strict=True).fit(_workers())
    with pytest.raises(CrowdDataError, match="column 'gender'.*'Non-binary' was not seen"):
        strict.transform(new)


def test_encoder_state_round_trip_and_text_columns_with_an_encoder():
    def embed(texts):
        return np.array([[len(t), t.count("a")] for t in texts], dtype=float)

    enc = ProfileEncoder(text_columns=["Description"], text_encoder=embed).fit(_workers())
    X = enc.transform(_workers())
    assert enc.feature_names_[-2:] == ["Description[0]", "Description[1]"]
    back = ProfileEncoder.from_state(enc.get_state(), text_encoder=embed)
    np.testing.assert_array_equal(back.transform(_workers()), X)
    with pytest.raises(ConfigError, match="no text_encoder"):
        ProfileEncoder(text_columns=["Description"]).fit(_workers())


def test_encoder_state_survives_a_json_round_trip_with_sorted_keys():

    frame = pd.DataFrame({"worker": ["a", "b"], "zeta": ["x", "y"], "alpha": [1.0, 3.0]})
    enc = ProfileEncoder().fit(frame)
    state = json.loads(json.dumps(enc.get_state(), sort_keys=True))
    np.testing.assert_array_equal(ProfileEncoder.from_state(state).transform(frame), enc.transform(frame))


def test_a_missing_band_met_in_training_is_seen_not_unseen():
    """Education left empty for some training people: their missing band is a known level, not an
    'unseen' value on every draw; a band nobody had in training still is."""
    bands = ["school", "college", "degree"]
    train = pd.DataFrame({"worker": list("abcd"), "education": ["school", "degree", np.nan, "college"]})
    enc = ProfileEncoder().fit(train, ordered_attributes={"education": bands})
    assert enc.missing_seen_ == ["education"]
    new = pd.DataFrame({"worker": list("xyz"), "education": [np.nan, "phd", "school"]})
    X = enc.transform(new)
    names = enc.feature_names_
    np.testing.assert_array_equal(X[:, names.index("education=other")], [1, 1, 0])
    np.testing.assert_allclose(X[:, names.index("education")], [0.5, 0.5, 0.0])
    assert enc.unseen_ == {"education": {"phd": 1}}
    back = ProfileEncoder.from_state(json.loads(json.dumps(enc.get_state())))
    back.transform(new)
    assert back.unseen_ == {"education": {"phd": 1}}
    # with no missing band in training, a missing one is unseen (and counted) as before
    complete = ProfileEncoder().fit(train.dropna(), ordered_attributes={"education": bands})
    complete.transform(new)
    assert complete.unseen_ == {"education": {"(missing)": 1, "phd": 1}}


def test_popquorn_missing_education_draws_no_unseen_warning(shared_data):
    """POPQUORN leaves education empty for a few people: encoding the training people warns of nothing."""
    from crowdllm.crowd.inputs import encode_profiles
    from crowdllm.data import load_dataset

    ds = load_dataset("popquorn-offensiveness")
    assert ds.workers["education"].isna().any()  # the case this guards
    enc = ProfileEncoder().fit(ds.workers, ordered_attributes=ds.ordered_attributes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode_profiles(enc, ds.workers.sample(frac=1.0, random_state=0))
    assert enc.unseen_ == {}
