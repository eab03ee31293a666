"""Digital twins of known people: a person's own habits, learned from their answers, shrunk by count."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crowdllm.crowd import DigitalCrowd, PersonTwins
from crowdllm.crowd.twins import person_offsets
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.errors import ConfigError


def test_offsets_and_slopes_are_recovered_and_shrunk_by_count() -> None:
    rng = np.random.default_rng(0)
    workers = pd.Index([f"w{i}" for i in range(60)])
    a_true, c_true = rng.normal(0, 0.5, 60), rng.normal(0, 0.3, 60)
    n_each = np.where(np.arange(60) < 30, 80, 3)  # half the people answered 80 times, half 3 times
    wi = np.repeat(np.arange(60), n_each)
    pred = rng.normal(0, 1, len(wi))
    r = a_true[wi] + c_true[wi] * pred + rng.normal(0, 1, len(wi))
    twins = PersonTwins().fit(r, pred, wi, workers)
    a, c = twins.coef_["a"].to_numpy(), twins.coef_["c"].to_numpy()
    # 80 answers with noise sd 1: a is known to ~0.11, c to ~0.11 (after the small ridge shrinkage)
    assert np.corrcoef(a[:30], a_true[:30])[0, 1] > 0.9 and np.corrcoef(c[:30], c_true[:30])[0, 1] > 0.7
    # kappa = within / between variance: (1 + the slopes' share) / the drawn offsets' variance
    assert twins.kappa_ == pytest.approx((1 + np.mean(c_true ** 2)) / np.var(a_true), rel=0.35)
    # a person keeps about n / (n + kappa) of their own mean residual: little with 3 answers, most with 80
    raw = np.bincount(wi, weights=r) / np.bincount(wi)
    kept = [np.sum(a[s] * raw[s]) / np.sum(raw[s] ** 2) for s in (slice(30, 60), slice(0, 30))]
    assert kept[0] == pytest.approx(3 / (3 + twins.kappa_), abs=0.15) and kept[1] > 0.85
    assert twins.terms(np.array(["nobody"]), np.array([1.0])).tolist() == [0.0]


def test_who_rated_a_task_no_longer_moves_its_calibration_target() -> None:
    """Harsh raters rate the first half of the tasks more often: raw task means mix up the task with its
    raters; less each person's offset (:func:`person_offsets`) they recover the task."""
    rng = np.random.default_rng(1)
    n_tasks, n_people = 200, 60
    t_true, a_true = rng.normal(0, 0.5, n_tasks), np.where(np.arange(n_people) < 20, 1.0, -0.5)
    ti, wi = [], []
    for t in range(n_tasks):  # 8 raters per task: mostly harsh on the first half, mostly lenient after
        p = np.where(np.arange(n_people) < 20, 3.0 if t < n_tasks // 2 else 0.5, 1.0)
        ti += [t] * 8
        wi += rng.choice(n_people, 8, replace=False, p=p / p.sum()).tolist()
    ti, wi = np.array(ti), np.array(wi)
    z = t_true[ti] + a_true[wi] + rng.normal(0, 0.7, len(ti))

    def error(values: np.ndarray) -> float:
        means = np.bincount(ti, weights=values) / np.bincount(ti)
        return float(np.abs((means - means.mean()) - (t_true - t_true.mean())).mean())

    a = person_offsets(z, ti, wi, n_tasks)
    assert np.corrcoef(a, a_true[wi])[0, 1] > 0.95 and abs(a.mean()) < 1e-9
    # measured: error 0.37 raw, 0.21 with the offsets removed (the rating noise alone leaves ~0.2)
    assert error(z - a) < 0.6 * error(z)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="kappa"):
        PersonTwins(kappa=-1).fit(np.zeros(2), np.zeros(2), np.array([0, 1]), pd.Index(["a", "b"]))
    with pytest.raises(ConfigError, match="one residual"):
        PersonTwins().fit(np.zeros(3), np.zeros(2), np.array([0, 1]), pd.Index(["a", "b"]))
    with pytest.raises(ConfigError, match="not fitted"):
        PersonTwins().terms(np.array(["a"]), np.zeros(1))


@pytest.fixture(scope="module")
def harsh_crowd():
    """A synthetic crowd in which five people rate everything 1.5 points higher than their profile says."""
    ds = make_synthetic_crowd(n_tasks=60, n_workers=40, random_state=0).dataset
    harsh = ds.workers["worker"].iloc[:5].tolist()
    resp = ds.responses.copy()
    up = resp["worker"].isin(harsh)
    resp.loc[up, "label"] = np.clip(resp.loc[up, "label"] + 1.5, 1, 5).round()
    return replace(ds, responses=resp), harsh


def test_known_people_answer_like_themselves_strangers_like_their_profile(harsh_crowd, tmp_path) -> None:
    ds, harsh = harsh_crowd
    crowd = DigitalCrowd(embedder="hashing", epochs=15, random_state=0).fit(ds)
    assert crowd.twins_ is not None and crowd.twins_.coef_.loc[harsh, "a"].min() > 0
    people = ds.workers[ds.workers["worker"].isin(harsh)]
    strangers = people.assign(worker=people["worker"] + "-stranger")  # same profiles, never seen
    own = crowd.sample(ds.tasks, profiles=people, random_state=1)["label"].mean()
    other = crowd.sample(ds.tasks, profiles=strangers, random_state=1)["label"].mean()
    # measured: 0.85 points apart (the five pull the profile model up a little, so less than 1.5)
    assert own - other > 0.6
    # a known person's answers are less noisy than a stranger's: their habits are no longer noise
    assert 0 < crowd.twins_.noise_factor_ < 1
    back = DigitalCrowd.load(crowd.save(tmp_path / "c"))
    again = back.sample(ds.tasks, profiles=people, random_state=1)["label"]
    assert again.tolist() == crowd.sample(ds.tasks, profiles=people, random_state=1)["label"].tolist()
    off = DigitalCrowd(embedder="hashing", epochs=15, random_state=0, person_twins=False).fit(ds)
    assert off.twins_ is None
    gap_off = (off.sample(ds.tasks, profiles=people, random_state=1)["label"].mean()
               - off.sample(ds.tasks, profiles=strangers, random_state=1)["label"].mean())
    assert abs(gap_off) < 0.1  # without twins the same profile is the same person


def test_twin_settings_travel_flat_and_in_the_saved_hyper_parameters() -> None:
    crowd = DigitalCrowd(twin_kappa=2.0, twin_slope_kappa=7.0)
    assert crowd.twins.get_params() == {"kappa": 2.0, "slope_kappa": 7.0}
    hyper = crowd._hyper()
    assert hyper["twin_kappa"] == 2.0 and hyper["twin_slope_kappa"] == 7.0 and "twins" not in hyper
    assert DigitalCrowd(**hyper).twins.get_params() == crowd.twins.get_params()
