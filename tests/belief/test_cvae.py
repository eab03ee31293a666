"""The conditional VAE belief generator: learns a profile effect, is seeded, saves without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crowdllm.belief.cvae import BeliefModel, TrainData
from crowdllm.errors import ConfigError


def _data(seed: int = 0) -> tuple[TrainData, np.ndarray]:
    """40 tasks x 30 people; the answer is the task score + 1.0 for people with profile bit 1."""
    rng = np.random.default_rng(seed)
    T, W = 40, 30
    task_x = rng.normal(size=(T, 6)).astype(np.float32)
    score = task_x[:, 0]
    profile_x = np.zeros((W, 2), dtype=np.float32)
    bit = rng.integers(0, 2, size=W)
    profile_x[np.arange(W), bit] = 1.0
    ti, wi = np.meshgrid(np.arange(T), np.arange(W), indexing="ij")
    ti, wi = ti.ravel(), wi.ravel()
    y = score[ti] + 1.0 * bit[wi] + 0.3 * rng.normal(size=len(ti))
    base = np.zeros((len(ti), 1), dtype=np.float32)
    data = TrainData(task_x=task_x, recon=task_x.copy(), profile_x=profile_x, ti=ti, wi=wi, base=base,
                     target=y.astype(np.float32), target_enc=(y - base[:, 0])[:, None].astype(np.float32),
                     valid=rng.random(len(ti)) < 0.15)
    return data, profile_x


def _prior_means(model: BeliefModel, data: TrainData, profile_x: np.ndarray) -> np.ndarray:
    A = model.task_part(data.task_x)
    B = model.profile_part(profile_x)
    T, W = len(A), len(B)
    ti, wi = np.repeat(np.arange(T), W), np.tile(np.arange(W), T)
    m, _ = model.belief(A, B, ti, wi)
    return m[:, 0].reshape(T, W)


@pytest.mark.slow
def test_cvae_learns_the_profile_effect_and_restores_its_best_epoch():
    data, profile_x = _data()
    model = BeliefModel(epochs=60, patience=15, random_state=0).fit(data, "mse")
    m = _prior_means(model, data, profile_x)
    one = profile_x[:, 1] == 1
    assert m[:, one].mean() - m[:, ~one].mean() == pytest.approx(1.0, abs=0.2)
    assert 0 <= model.best_epoch_ < len(model.history_)
    assert model.valid_loss_ == pytest.approx(min(h["valid"] for h in model.history_))


def test_same_seed_same_model_other_seed_other_model():
    data, profile_x = _data()
    a = _prior_means(BeliefModel(epochs=3, random_state=1).fit(data, "mse"), data, profile_x)
    b = _prior_means(BeliefModel(epochs=3, random_state=1).fit(data, "mse"), data, profile_x)
    c = _prior_means(BeliefModel(epochs=3, random_state=2).fit(data, "mse"), data, profile_x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_j_sample_average_has_the_closed_form_spread():
    data, profile_x = _data()
    model = BeliefModel(epochs=2, random_state=0).fit(data, "mse")
    A, B = model.task_part(data.task_x[:1]), model.profile_part(profile_x[:1])
    m, lv = model.belief(A, B, np.zeros(100_000, dtype=int), np.zeros(100_000, dtype=int))
    rng = np.random.default_rng(0)
    one = model.sample_deviation(m, lv, 1, rng)[:, 0]
    ten = model.sample_deviation(m, lv, 10, rng)[:, 0]
    sd1 = model.deviation_sd(lv[:1], 1)[0, 0]
    assert one.std() == pytest.approx(sd1, rel=0.03)
    assert ten.std() == pytest.approx(sd1 / np.sqrt(10), rel=0.03)
    assert ten.mean() == pytest.approx(m[0, 0], abs=3 * sd1 / np.sqrt(10) / np.sqrt(1e5) + 1e-6)


def test_save_load_round_trip_refuses_newer_versions_and_uses_no_pickle(tmp_path):
    data, profile_x = _data()
    model = BeliefModel(epochs=2, random_state=0).fit(data, "mse")
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["belief.json", "belief.safetensors"]
    back = BeliefModel.load(tmp_path)
    np.testing.assert_array_equal(_prior_means(back, data, profile_x), _prior_means(model, data, profile_x))
    meta = json.loads((tmp_path / "belief.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "belief.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="format version 99 is newer"):
        BeliefModel.load(tmp_path)
    with pytest.raises(ConfigError, match="no saved belief model"):
        BeliefModel.load(tmp_path / "nowhere")
