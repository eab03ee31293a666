"""Digital twins of known people: a person's own habits, learned from their answers, shrunk by count."""

from __future__ import annotations

import copy
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
    # measured: 0.85-0.91 points apart (the five pull the profile model up a little, so less than 1.5)
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
    crowd = DigitalCrowd(twin_kappa=2.0, twin_slope_kappa=7.0, twin_noise_kappa=30.0, twin_curve_kappa=None)
    assert crowd.twins.get_params() == {"kappa": 2.0, "slope_kappa": 7.0, "noise_kappa": 30.0, "curve_kappa": None}
    hyper = crowd._hyper()
    assert hyper["twin_kappa"] == 2.0 and hyper["twin_slope_kappa"] == 7.0 and "twins" not in hyper
    assert hyper["twin_noise_kappa"] == 30.0 and hyper["twin_curve_kappa"] is None
    assert DigitalCrowd(**hyper).twins.get_params() == crowd.twins.get_params()
    with pytest.raises(ConfigError, match="noise_kappa"):
        PersonTwins(noise_kappa=-1.0).fit(np.zeros(2), np.zeros(2), np.array([0, 1]), pd.Index(["a", "b"]))
    # from a command line (--crowd-param twin_curve_kappa=none) the word none is None: the line alone
    assert DigitalCrowd(twin_curve_kappa="none").twins.curve_kappa is None
    with pytest.raises(ConfigError, match=r"curve_kappa='flat': give a number of pseudo-answers >= 0 or None"):
        DigitalCrowd(twin_curve_kappa="flat").twins.fit(np.zeros(2), np.zeros(2), np.array([0, 1]),
                                                         pd.Index(["a", "b"]))
    PersonTwins(kappa=np.int64(3)).fit(np.zeros(2), np.zeros(2), np.array([0, 1]), pd.Index(["a", "b"]))


def test_a_persons_curve_follows_a_floor_the_line_cannot() -> None:
    """Half the people answer like the crowd only above a floor (below it they give the lowest answer):
    their residual is ``max(f - x, 0)``, convex in the crowd's prediction ``x``; the other half are
    plain offsets."""
    rng = np.random.default_rng(2)
    workers = pd.Index([f"w{i}" for i in range(40)])
    wi = np.repeat(np.arange(40), 60)  # 60 answers each (POPQUORN: about 50)
    pred = rng.normal(0, 1, len(wi))
    floor = rng.uniform(-0.5, 0.5, 40)
    offset = rng.normal(0, 0.3, 40)
    truth = np.where(wi < 20, np.maximum(floor[wi] - pred, 0.0), offset[wi])
    r = truth + rng.normal(0, 0.3, len(wi))
    curve, line = PersonTwins(curve_kappa=5.0).fit(r, pred, wi, workers), PersonTwins(curve_kappa=None).fit(r, pred, wi, workers)
    x = np.linspace(-1.5, 1.5, 31)  # where most predictions lie
    err = np.array([[np.abs(t.terms(np.full(len(x), f"w{w}"), x) - np.maximum(floor[w] - x, 0.0)).mean()
                     for t in (curve, line)] for w in range(20)])
    # measured (data seeds 0-4): the curve 0.10-0.11 off the floors on average, the line 0.19-0.20, and
    # the curve closer for every one of the 20 (a parabola cannot follow the kink exactly)
    assert err[:, 0].mean() < 0.7 * err[:, 1].mean() and (err[:, 0] < err[:, 1]).all()
    assert (curve.coef_["q"].iloc[:20] > 0).all()  # every floor bends upwards
    # the plain offsets hardly bend: measured largest |q| 0.05-0.08, the floors' smallest q 0.10-0.13
    assert curve.coef_["q"].iloc[20:].abs().max() < 0.15
    assert (line.coef_["q"] == 0).all() and line.terms(np.array(["w0"]), np.array([3.0])).tolist() == \
        pytest.approx([line.coef_["a"].iloc[0] + line.coef_["c"].iloc[0] * (3.0 - line.x_mean_) / line.x_sd_])
    # no curve is the line: a stiff curve (1e12 pseudo-answers) leaves the offset and slope unchanged
    stiff = PersonTwins(curve_kappa=1e12).fit(r, pred, wi, workers)
    assert np.allclose(stiff.coef_[["a", "c"]].to_numpy(), line.coef_[["a", "c"]].to_numpy(), atol=1e-8)


def test_twins_saved_before_the_curve_and_own_noise_load_as_they_sampled() -> None:
    rng = np.random.default_rng(3)
    wi = np.repeat(np.arange(5), 10)
    twins = PersonTwins().fit(rng.normal(size=50), rng.normal(size=50), wi, pd.Index(list("abcde")))
    twins.noise_factor_ = 0.8
    twins.coef_["s"] = [0.5, 0.6, 0.7, 0.8, 0.9]
    back = PersonTwins.from_dict(twins.to_dict())
    pd.testing.assert_frame_equal(back.coef_, twins.coef_)
    assert back.get_params() == twins.get_params()
    old = {k: v for k, v in twins.to_dict().items() if k not in ("q", "s", "curve_kappa", "noise_kappa")}
    old_twins = PersonTwins.from_dict(old)  # format 6: a line per person, one noise factor for all
    assert old_twins.curve_kappa is None and (old_twins.coef_["q"] == 0).all()
    x = rng.normal(size=5)
    rows = old_twins.rows(np.array(list("abcde")))
    assert old_twins.terms_at(rows, x) == pytest.approx(
        twins.coef_["a"].to_numpy() + twins.coef_["c"].to_numpy() * (x - twins.x_mean_) / twins.x_sd_)
    assert old_twins.noise_at(np.array([0, 4, -1])).tolist() == [0.8, 0.8, 1.0]


@pytest.fixture(scope="module")
def steady_crowd():
    """A synthetic crowd in which eight people give the rounded mean of the task's other raters: nearly
    no spread around what the crowd predicts, while everyone else has the generator's noise."""
    ds = make_synthetic_crowd(n_tasks=80, n_workers=40, random_state=0).dataset
    steady = ds.workers["worker"].iloc[:8].tolist()
    resp = ds.responses.copy()
    is_steady = resp["worker"].isin(steady)
    others = resp[~is_steady].groupby("task")["label"].mean()
    resp.loc[is_steady, "label"] = others.reindex(resp.loc[is_steady, "task"]).round().clip(1, 5).to_numpy()
    return replace(ds, responses=resp.dropna()), steady


def _gap(crowd: DigitalCrowd, ds, who: list[str]) -> float:
    """Mean absolute gap between each of ``who``'s real answers and their twin's sampled one (10 draws)."""
    real = ds.responses[ds.responses["worker"].isin(who)]
    pairs = pd.concat([real[["task", "worker"]]] * 10, ignore_index=True)
    twin = crowd.sample(ds.tasks, profiles=ds.workers, pairs=pairs, random_state=1)
    return float(np.abs(twin["label"].to_numpy(float) - np.tile(real["label"].to_numpy(float), 10)).mean())


def test_people_with_a_tiny_spread_keep_it_with_their_own_noise(steady_crowd, tmp_path) -> None:
    ds, steady = steady_crowd
    own = DigitalCrowd(embedder="hashing", epochs=15, random_state=0, twin_noise_kappa=5.0).fit(ds)
    one = DigitalCrowd(embedder="hashing", epochs=15, random_state=0).fit(ds)  # one noise for all known people
    s = own.twins_.coef_["s"]
    rest = s.drop(steady)
    # measured (synthetic seeds 0-2 x crowd seeds 0-1): the steady eight's noise factor 0.06-0.08, the
    # others' median 0.67-0.78 (one factor for all: 0.61-0.70)
    assert s[steady].max() < 0.3 * rest.median()
    assert one.twins_.coef_["s"].nunique() == 1 and one.twins_.coef_["s"].iloc[0] == one.twins_.noise_factor_
    # their twins answer what they answered more often: measured (as above) mean gap 0.18-0.19 with their
    # own noise vs 0.26-0.28 with the one factor (ratio 0.66-0.73)
    assert _gap(own, ds, steady) < 0.8 * _gap(one, ds, steady)
    # everyone else keeps about the same spread (measured 0.47-0.48 vs 0.45-0.46)
    others = [w for w in ds.workers["worker"] if w not in steady]
    assert _gap(own, ds, others) == pytest.approx(_gap(one, ds, others), rel=0.1)
    # strangers (never seen) get the blender's one noise: the same answers as without own noise
    strangers = ds.workers.assign(worker=ds.workers["worker"] + "-new")
    a = own.sample(ds.tasks, profiles=strangers, random_state=2)["label"]
    own_off = copy.copy(own)  # the same crowd with one noise factor for all known people
    own_off.state_ = replace(own.state_, twins=copy.deepcopy(own.state_.twins))
    own_off.state_.twins.coef_["s"] = own.twins_.noise_factor_
    assert a.tolist() == own_off.sample(ds.tasks, profiles=strangers, random_state=2)["label"].tolist()
    back = DigitalCrowd.load(own.save(tmp_path / "c"))
    assert back.twins_.coef_["s"].tolist() == s.tolist() and back.twins_.coef_.index.equals(s.index)
    people = ds.workers[ds.workers["worker"].isin(steady)]
    assert back.sample(ds.tasks, profiles=people, random_state=3)["label"].tolist() == \
        own.sample(ds.tasks, profiles=people, random_state=3)["label"].tolist()


# ---------------------------------------------------------------------------------------------------
# categorical (binary too) twins: crowdllm.crowd.choice_twins -- each known person's own answer shares

from crowdllm.crowd.choice_twins import ChoiceTwins  # noqa: E402
from crowdllm.crowd.kinds import crowd_kind  # noqa: E402
from crowdllm.crowd.state import CrowdState  # noqa: E402
from crowdllm.data.dataset import CrowdDataset, LabelSpec  # noqa: E402

YES_NO = LabelSpec("categorical", categories=("no", "yes"))


def test_choice_twins_recover_each_persons_shares_shrunk_by_count() -> None:
    rng = np.random.default_rng(0)
    n_each = np.where(np.arange(80) < 40, 100, 3)  # half the people answered 100 times, half 3 times
    p_true = rng.uniform(0.2, 0.8, 80)  # each person's share of "yes"; the model says 0.5 to everyone
    wi = np.repeat(np.arange(80), n_each)
    y = (rng.random(len(wi)) < p_true[wi]).astype(np.int64)
    workers = pd.Index([f"w{i}" for i in range(80)])
    state = CrowdState(YES_NO)
    twins = ChoiceTwins().fit(crowd_kind(YES_NO), state, np.zeros((len(wi), 2)), y, wi, workers)
    # kappa = within / between variance of the residuals: E[p(1-p)] / Var(p) = 0.22 / 0.03 = 7.3 for
    # p ~ U(0.2, 0.8); the estimate from 80 people varies by ~25 % between draws (seeds 0-4: 5.8-8.6)
    assert twins.kappa_ == pytest.approx(0.22 / 0.03, rel=0.35)
    shares = 0.5 * np.exp(twins.terms(workers.to_numpy()))  # the person's own answer shares
    assert np.allclose(shares.sum(axis=1), 1.0)
    # 100 answers: the share is known to ~0.05, so it follows the true one closely
    assert np.corrcoef(shares[:40, 1], p_true[:40])[0, 1] > 0.9
    # a person keeps n / (n + kappa) of their own deviation from the model: little with 3 answers
    raw = np.bincount(wi, weights=y) / np.bincount(wi) - 0.5
    kept = [np.sum((shares[s, 1] - 0.5) * raw[s]) / np.sum(raw[s] ** 2) for s in (slice(40, 80), slice(0, 40))]
    assert kept[0] == pytest.approx(3 / (3 + twins.kappa_), abs=0.02) and kept[1] > 0.9
    assert twins.terms(np.array(["nobody"])).tolist() == [[0.0, 0.0]]
    assert twins.known(np.array(["w0", "nobody"])).tolist() == [True, False]


def test_choice_twins_refuse_bad_settings() -> None:
    kind, state = crowd_kind(YES_NO), CrowdState(YES_NO)
    with pytest.raises(ConfigError, match="kappa"):
        ChoiceTwins(kappa=-1).fit(kind, state, np.zeros((2, 2)), np.array([0, 1]), np.array([0, 1]), pd.Index(["a", "b"]))
    with pytest.raises(ConfigError, match="one decision and label"):
        ChoiceTwins().fit(kind, state, np.zeros((3, 2)), np.array([0, 1]), np.array([0, 1]), pd.Index(["a", "b"]))
    with pytest.raises(ConfigError, match="not fitted"):
        ChoiceTwins().terms(np.array(["a"]))


@pytest.fixture(scope="module")
def nay_sayers():
    """A yes/no crowd (a rating of 3 or more is "yes": 67 % of answers) in which six people say "no" to 90 %
    of texts."""
    ds = make_synthetic_crowd(n_tasks=60, n_workers=40, random_state=0).dataset
    rng = np.random.default_rng(1)
    resp = ds.responses.assign(label=np.where(ds.responses["label"] >= 3, "yes", "no"))
    keen = ds.workers["worker"].iloc[:6].tolist()
    up = resp["worker"].isin(keen).to_numpy()
    resp.loc[up, "label"] = np.where(rng.random(up.sum()) < 0.9, "no", "yes")
    cat = CrowdDataset(resp, ds.tasks, ds.workers, YES_NO, ordered_attributes=ds.ordered_attributes).validate()
    return cat, keen


def _yes_share(crowd: DigitalCrowd, ds: CrowdDataset, people: pd.DataFrame) -> float:
    return float((crowd.sample(ds.tasks, profiles=people, random_state=1)["label"] == "yes").mean())


def test_known_people_choose_like_themselves_strangers_like_their_profile(nay_sayers, tmp_path) -> None:
    ds, keen = nay_sayers
    real = ds.responses.assign(yes=ds.responses["label"] == "yes").groupby(
        ds.responses["worker"].isin(keen))["yes"].mean()  # 0.09 "yes" for the six, 0.67 for the rest
    crowd = DigitalCrowd(embedder="hashing", epochs=15, random_state=0).fit(ds)
    assert isinstance(crowd.twins_, ChoiceTwins) and np.isfinite(crowd.twins_.kappa_)
    people = ds.workers[ds.workers["worker"].isin(keen)]
    strangers = people.assign(worker=people["worker"] + "-stranger")  # same profiles, never seen
    own, other = _yes_share(crowd, ds, people), _yes_share(crowd, ds, strangers)
    # measured (synthetic seeds 0-2 x crowd seeds 0-1): the six themselves say "yes" 13-18 % of the time,
    # strangers with their profiles 45-55 % (the profile model, which the six pull down a little); 360
    # sampled answers each, so a share is known to ~0.025
    assert own < real[True] + 0.12 and other - own > 0.2
    back = DigitalCrowd.load(crowd.save(tmp_path / "c"))
    assert isinstance(back.twins_, ChoiceTwins) and back.twins_.kappa_ == crowd.twins_.kappa_
    again = back.sample(ds.tasks, profiles=people, random_state=1)["label"]
    assert again.tolist() == crowd.sample(ds.tasks, profiles=people, random_state=1)["label"].tolist()
    off = DigitalCrowd(embedder="hashing", epochs=15, random_state=0, person_twins=False).fit(ds)
    assert off.twins_ is None
    assert abs(_yes_share(off, ds, people) - _yes_share(off, ds, strangers)) < 0.05


def test_choice_twins_kappa_is_the_crowds_twin_kappa() -> None:
    ds = make_synthetic_crowd(n_tasks=20, n_workers=15, random_state=0).dataset
    resp = ds.responses.assign(label=np.where(ds.responses["label"] >= 3, "yes", "no"))
    cat = CrowdDataset(resp, ds.tasks, ds.workers, YES_NO, ordered_attributes=ds.ordered_attributes).validate()
    crowd = DigitalCrowd(embedder="hashing", epochs=2, random_state=0, twin_kappa=3.0).fit(cat)
    assert crowd.twins_.kappa == 3.0 and crowd.twins_.kappa_ == 3.0
