"""Calibrating an LLM reference that is on the wrong scale, out-of-fold, and keeping it through save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.belief.calibration import ReferenceCalibrator
from crowdllm.belief.embeddings import TextEmbedder
from crowdllm.crowd import DigitalCrowd
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.errors import ConfigError


def test_calibrator_maps_a_shifted_squeezed_reference_back_and_predicts_out_of_fold():
    rng = np.random.default_rng(0)
    truth = rng.uniform(1, 4, size=300)
    y_ref = 0.4 * truth + 3.0  # an LLM that rates everything high and flat
    X = np.stack([y_ref], axis=1)
    cal = ReferenceCalibrator().fit(X, truth + rng.normal(0, 0.1, 300), np.full(300, 5.0))
    np.testing.assert_allclose(cal.predict(np.array([[3.4], [4.6]])), [1.0, 4.0], atol=0.05)
    assert cal.oof_.shape == (300,) and np.abs(cal.oof_ - truth).mean() < 0.1
    back = ReferenceCalibrator.from_state(cal.get_state())
    np.testing.assert_allclose(back.predict(X[:5]), cal.predict(X[:5]))
    with pytest.raises(ConfigError, match="at least 10 training tasks"):
        ReferenceCalibrator().fit(X[:6], truth[:6], np.ones(6))


def test_a_crowd_calibrates_its_reference_and_keeps_it_after_reload(tmp_path):
    syn = make_synthetic_crowd(n_tasks=40, n_workers=30, random_state=3)
    ds = syn.dataset
    reference = pd.DataFrame({"y_ref": 0.4 * syn.truth + 3.0})  # right order, wrong scale
    crowd = DigitalCrowd(embedder=TextEmbedder("hashing", cache=False), epochs=20, calibrate="linear").fit(
        ds, reference=reference)
    new = pd.DataFrame({"task": ["low", "high"], "text": ["thanks lovely garden", "vile scum filth"]})
    ref_new = pd.DataFrame({"task": ["low", "high"], "y_ref": [0.4 * 1.2 + 3.0, 0.4 * 3.8 + 3.0]})
    out = crowd.expected_decisions(new, ds.workers.head(10), reference=ref_new).groupby("task")["mu_mean"].mean()
    assert out["low"] < 2.2 < 3.0 < out["high"]
    crowd.save(tmp_path)
    back = DigitalCrowd.load(tmp_path)
    again = back.expected_decisions(new, ds.workers.head(10), reference=ref_new).groupby("task")["mu_mean"].mean()
    pd.testing.assert_series_equal(again, out)
    with pytest.raises(ConfigError, match="calibrate 'cubic'"):
        DigitalCrowd(embedder=TextEmbedder("hashing", cache=False), calibrate="cubic").fit(ds, reference=reference)


def test_a_categorical_crowd_calibrates_its_answer_shares_and_keeps_them_after_reload(tmp_path):
    """Three categories; the reference's shares are scrambled (it prefers the wrong category) but a
    hidden-state column knows which one people pick: the calibrated base follows people, out-of-fold."""
    from crowdllm.data.dataset import CrowdDataset, LabelSpec

    rng = np.random.default_rng(0)
    n_tasks, n_workers = 90, 30
    favourite = rng.integers(0, 3, n_tasks)
    rows = [(t, w, ["a", "b", "c"][favourite[t] if rng.random() < 0.8 else rng.integers(0, 3)])
            for t in range(n_tasks) for w in range(n_workers) if rng.random() < 0.3]
    responses = pd.DataFrame(rows, columns=["task", "worker", "label"]).astype({"task": str, "worker": str})
    tasks = pd.DataFrame({"task": [str(t) for t in range(n_tasks)], "text": [f"text {t}" for t in range(n_tasks)]})
    workers = pd.DataFrame({"worker": [str(w) for w in range(n_workers)], "group": ["x", "y"] * (n_workers // 2)})
    ds = CrowdDataset(responses=responses, tasks=tasks, workers=workers,
                      label=LabelSpec(kind="categorical", categories=["a", "b", "c"]), name="cat")
    wrong = np.eye(3)[(favourite + 1) % 3] * 0.8 + 0.2 / 3
    ref = pd.DataFrame({"y_ref": [["a", "b", "c"][(f + 1) % 3] for f in favourite],
                        "p_a": wrong[:, 0], "p_b": wrong[:, 1], "p_c": wrong[:, 2],
                        "h_0": favourite + 0.1 * rng.normal(size=n_tasks), "h_1": rng.normal(size=n_tasks)},
                       index=tasks["task"])
    crowd = DigitalCrowd(embedder=TextEmbedder("hashing", cache=False), epochs=5, random_state=0).fit(ds, reference=ref)
    base = crowd.state_.calibrated_base  # out-of-fold shares of each training task
    assert base.shape == (n_tasks, 3)
    # measured: the calibrated shares put the most weight on people's favourite on 90/90 tasks (the raw
    # reference on 0/90)
    assert (base.to_numpy().argmax(axis=1) == favourite).mean() > 0.9
    crowd.save(tmp_path)
    back = DigitalCrowd.load(tmp_path)
    people = workers.head(4)
    pd.testing.assert_frame_equal(back.sample(tasks, profiles=people, random_state=1),
                                  crowd.sample(tasks, profiles=people, random_state=1))
