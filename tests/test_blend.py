"""The blender: reference + belief -> answers, with noise estimated from residuals."""

from __future__ import annotations

import numpy as np
import pytest

from crowdllm.blend import (
    NormalBlender,
    OrdinalBlender,
    SoftmaxBlender,
    TopKBlender,
    blender_from_dict,
    make_blender,
)
from crowdllm.crowd.kinds import crowd_kind
from crowdllm.data.dataset import LabelSpec
from crowdllm.errors import ConfigError

LEVELS = [1.0, 2.0, 3.0, 4.0, 5.0]


def test_ordinal_blender_keeps_the_predicted_mean_even_near_the_ends_of_the_scale():
    ordinal = OrdinalBlender(LEVELS, sigma=0.8)
    rounding = OrdinalBlender(LEVELS, sigma=0.8, mean_matching=False)
    mu = np.array([1.05, 1.2, 2.0, 3.0, 3.7, 4.9])
    exact = ordinal.probs(mu) @ np.array(LEVELS)
    np.testing.assert_allclose(exact, mu, atol=1e-3)
    # rounding + clipping pushes a low prediction up (the clipped mass piles on level 1 from below)
    assert rounding.probs(np.array([1.2]))[0] @ np.array(LEVELS) > 1.35
    # sampling follows the exact distribution
    draws = ordinal.sample(np.full(200_000, 1.2), np.random.default_rng(0))
    assert set(np.unique(draws)) <= set(LEVELS)
    assert abs(draws.mean() - 1.2) < 0.01


def test_ordinal_sigma_is_recovered_by_maximum_likelihood():
    rng = np.random.default_rng(1)
    mu = rng.uniform(1.2, 4.8, size=20_000)
    for true_sigma in (0.4, 1.0):
        y = OrdinalBlender(LEVELS, sigma=true_sigma).sample(mu, rng)
        fitted = OrdinalBlender(LEVELS).fit(mu, y).scale_
        assert fitted == pytest.approx(true_sigma, rel=0.08)


def test_normal_blender_sigma_is_the_rms_residual_and_clips_to_the_scale():
    b = NormalBlender(scale=(0.0, 1.0)).fit(np.zeros(4), np.array([0.3, -0.3, 0.3, -0.3]))
    assert b.scale_ == pytest.approx(0.3) and b.sigma is None  # fit never overwrites an argument
    draws = b.sample(np.full(1000, 0.95), np.random.default_rng(0))
    assert draws.max() <= 1.0 and draws.min() >= 0.0


def test_softmax_blender_samples_the_softmax_and_recovers_its_temperature():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(30_000, 3)) * 2
    b = SoftmaxBlender(("a", "b", "c"), temperature=2.0)
    draws = b.sample(logits[:1].repeat(30_000, axis=0), rng)
    p = np.exp(logits[0] / 2.0) / np.exp(logits[0] / 2.0).sum()
    freq = np.array([(draws == c).mean() for c in "abc"])
    np.testing.assert_allclose(freq, p, atol=0.01)
    codes = np.array([list("abc").index(x) for x in b.sample(logits, rng)])
    assert SoftmaxBlender(("a", "b", "c")).fit(logits, codes).scale_ == pytest.approx(2.0, rel=0.1)


def test_topk_blender_picks_exactly_k_favouring_high_utility_and_recovers_beta():
    rng = np.random.default_rng(3)
    U = rng.normal(size=(600, 10)) * 2
    b = TopKBlender(3, beta=0.5)
    picks = b.sample(U, rng)
    assert (picks.sum(axis=1) == 3).all()
    best = np.argmax(U, axis=1)
    assert picks[np.arange(600), best].mean() > 0.9
    # the same fit(mu, y) contract as every blender: y has the shape sample() returns
    assert TopKBlender(3).fit(U, picks).scale_ == pytest.approx(0.5, rel=0.2)
    with pytest.raises(ConfigError, match="k=3 but only 2 items"):
        b.sample(U[:, :2], rng)


def test_blender_factory_checks_the_label_kind_and_round_trips():
    ordinal = LabelSpec("ordinal", scale=(1, 5))
    kind = crowd_kind(ordinal)
    assert kind.make_blender(ordinal, None, None, 1.0).name == "ordinal"
    assert kind.make_blender(ordinal, "round", None, 1.0).name == "round"
    assert make_blender("round", ordinal).name == "round"
    categorical = LabelSpec("categorical", categories=("no", "yes"))
    with pytest.raises(ConfigError, match="does not fit a categorical"):
        crowd_kind(categorical).make_blender(categorical, "ordinal", None, 1.0)
    b = OrdinalBlender(LEVELS, sigma=0.7)
    back = blender_from_dict(b.to_dict())
    np.testing.assert_allclose(back.probs(np.array([2.5])), b.probs(np.array([2.5])))
    with pytest.raises(ConfigError, match="unknown blender"):
        blender_from_dict({"name": "magic"})
    fixed = OrdinalBlender(LEVELS, sigma=0.5, factor=2.0).fit(np.array([2.0]), np.array([2.0]))
    assert (fixed.scale_, fixed.sigma) == (1.0, 0.5)  # a fixed noise is kept, times the factor
    with pytest.raises(ConfigError, match="call fit"):
        OrdinalBlender(LEVELS).sample(np.array([2.0]), np.random.default_rng(0))


def test_group_sigmas_find_each_groups_noise_and_shrink_small_groups_to_the_global_one():
    rng = np.random.default_rng(4)
    mu = np.full(6000, 2.5)
    groups = np.repeat([0, 1, 2], [3000, 2980, 20])
    true = np.array([0.4, 1.5, 1.5])
    y = OrdinalBlender(LEVELS, sigma=1.0).sample(mu, rng, sigma=true[groups])
    b = OrdinalBlender(LEVELS).fit(mu, y)
    sig = b.group_sigmas(mu, y, groups, 4, kappa=50.0)
    assert sig[0] == pytest.approx(0.4, rel=0.1) and sig[1] == pytest.approx(1.5, rel=0.1)
    assert abs(np.log(sig[2]) - np.log(b.scale_)) < abs(np.log(1.5) - np.log(b.scale_))  # 20 answers: pulled in
    assert sig[3] == b.scale_  # no answers: the global noise
