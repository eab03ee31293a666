"""Profile generators: the empirical pool, independent marginals, and the raked joint model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.errors import ConfigError
from crowdllm.profiles import MarginalProfiles, ProfileGenerator, RakedProfiles, ipf


def _pool(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Young people are mostly students, old people mostly retired; gender 50/50; a numeric score."""
    rng = np.random.default_rng(seed)
    age = rng.choice(["young", "old"], size=n)
    occ = np.where(age == "young", np.where(rng.random(n) < 0.9, "student", "employed"),
                   np.where(rng.random(n) < 0.9, "retired", "employed"))
    return pd.DataFrame({
        "worker": [f"w{i}" for i in range(n)],
        "gender": rng.choice(["Woman", "Man"], size=n),
        "age": age, "occupation": occ,
        "score": rng.normal(size=n),
    })


def _shares(frame: pd.DataFrame, col: str) -> dict[str, float]:
    return frame[col].value_counts(normalize=True).to_dict()


def test_pool_resampling_keeps_the_pool_shares_and_is_seeded():
    pool = _pool()
    gen = ProfileGenerator.from_pool(pool)
    a = gen.sample(20_000, random_state=1)
    assert list(a.columns) == ["worker", "gender", "age", "occupation", "score"]
    assert a["worker"].is_unique and not set(a["worker"]) & set(pool["worker"])
    for col in ("gender", "occupation"):
        for level, share in _shares(pool, col).items():
            assert abs(_shares(a, col)[level] - share) < 0.02
    pd.testing.assert_frame_equal(a, gen.sample(20_000, random_state=1))
    assert not a.equals(gen.sample(20_000, random_state=2))


def test_pool_without_replacement_refuses_to_draw_more_people_than_it_has():
    gen = ProfileGenerator.from_pool(_pool(10), replace=False)
    assert gen.sample(10, random_state=0)["score"].nunique() == 10
    with pytest.raises(ConfigError, match="without replacement"):
        gen.sample(11, random_state=0)


def test_marginals_are_reproduced_and_bad_shares_are_refused():
    gen = ProfileGenerator.from_marginals({"gender": {"Woman": 0.7, "Man": 0.3},
                                            "age": {"18-29": 0.2, "30-49": 0.5, "50+": 0.3}})
    s = gen.sample(40_000, random_state=0)
    assert abs(_shares(s, "gender")["Woman"] - 0.7) < 0.01
    assert abs(_shares(s, "age")["30-49"] - 0.5) < 0.01
    with pytest.raises(ConfigError, match="sum to 0.5"):
        MarginalProfiles({"gender": {"Woman": 0.2, "Man": 0.3}})
    with pytest.raises(ConfigError, match="'Man' must be >= 0"):
        MarginalProfiles({"gender": {"Woman": 1.1, "Man": -0.1}})


def test_ipf_on_a_two_by_two_table_gives_the_known_answer():
    # uniform seed -> the raked table is the product of the target marginals
    table, _, dev = ipf(np.ones((2, 2)), {0: np.array([0.3, 0.7]), 1: np.array([0.6, 0.4])})
    np.testing.assert_allclose(table, np.outer([0.3, 0.7], [0.6, 0.4]), atol=1e-9)
    assert dev < 1e-9
    # a seed with an odds ratio keeps it (IPF preserves cross-product ratios)
    seed = np.array([[4.0, 1.0], [1.0, 4.0]])
    table, _, _ = ipf(seed, {0: np.array([0.5, 0.5]), 1: np.array([0.8, 0.2])})
    np.testing.assert_allclose(table.sum(axis=1), [0.5, 0.5], atol=1e-8)
    np.testing.assert_allclose(table.sum(axis=0), [0.8, 0.2], atol=1e-8)
    assert table[0, 0] * table[1, 1] / (table[0, 1] * table[1, 0]) == pytest.approx(16.0, rel=1e-6)


def test_raked_crowd_meets_the_targets_and_keeps_the_pool_correlations():
    pool = _pool(600)
    gen = ProfileGenerator.raked(pool, {"gender": {"Woman": 0.75, "Man": 0.25},
                                        "age": {"young": 0.3, "old": 0.7}}, smoothing=0.05)
    assert isinstance(gen, RakedProfiles)
    crowd = gen.sample(30_000, random_state=3)
    assert abs(_shares(crowd, "gender")["Woman"] - 0.75) < 0.01
    assert abs(_shares(crowd, "age")["old"] - 0.7) < 0.01
    # occupation had no target: it follows age as in the pool (about 90% students among the young)
    young = crowd[crowd["age"] == "young"]
    assert (young["occupation"] == "student").mean() > 0.8
    old = crowd[crowd["age"] == "old"]
    assert (old["occupation"] == "retired").mean() > 0.8
    # the carried numeric column comes from real pool people
    assert set(crowd["score"]).issubset(set(pool["score"]))
    assert gen.marginals()["gender"]["Woman"] == pytest.approx(0.75, abs=1e-6)


def test_raking_reaches_a_level_the_pool_never_saw_only_with_smoothing():
    pool = _pool(300)
    target = {"gender": {"Woman": 0.45, "Man": 0.45, "Non-binary": 0.10}}
    crowd = RakedProfiles(pool, target, smoothing=0.1).sample(20_000, random_state=0)
    assert abs(_shares(crowd, "gender")["Non-binary"] - 0.10) < 0.01
    with pytest.raises(ConfigError, match="never occur in the pool"):
        RakedProfiles(pool, target, smoothing=0.0)


def test_raking_target_must_name_every_pool_level_and_attribute():
    pool = _pool(100)
    with pytest.raises(ConfigError, match="does not give a share for pool level"):
        RakedProfiles(pool, {"gender": {"Woman": 1.0}})
    with pytest.raises(ConfigError, match="not a pool column"):
        RakedProfiles(pool, {"income": {"low": 1.0}})
