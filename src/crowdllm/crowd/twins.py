"""Digital twins of known people: what a person's own training answers say beyond their profile.

The belief model knows a person only by their profile, so two people with the same profile get the
same belief. A person who answered in training also has a record. Their residuals ``r`` (label minus
the crowd's decision for them, task memory included, model units) are fitted by a small per-person
curve in the crowd's prediction ``x`` (standardised over the training answers)::

    r  ~  a_w + c_w * x + q_w * (x^2 - 1)     (ridge: a_w shrunk by ``kappa``, c_w by ``slope_kappa``,
                                                q_w by ``curve_kappa`` pseudo-answers)

``a_w`` is the person's offset (a lenient or a harsh rater), ``c_w`` how much of the scale they use
(some spread their ratings, some answer 1 to almost everything) and ``q_w`` where they bend: a person
who answers 1 to every text that is not clearly offensive, and then rates like everyone else, has a
convex curve, which a line can follow only on average. All are shrunk towards 0 -- towards what the
profile predicts -- by how much the person answered: with ``n_w`` answers and a centred ``x``,
``a_w = sum(r) / (n_w + kappa)``. ``kappa=None`` estimates it as the within-person over the
between-person variance of the residuals; ``curve_kappa=None`` fits the line alone (as crowds saved
before format version 7 do). A known person (a training worker id) answering any task gets
``y_ref + offset_t + a_w + c_w x + q_w (x^2 - 1) + delta``, and their answers are blended with the
smaller noise ``noise_factor_`` x sigma left once their own habits are known -- or, with
``noise_kappa`` set, with their own noise: each known person's maximum-likelihood ordinal noise around
their twin's decisions, shrunk in log space towards ``noise_factor_`` x sigma with ``noise_kappa``
pseudo-answers (``coef_["s"]``, a factor on the blender's sigma). Anyone else is the profile's
prediction with the full noise. Numeric labels (ratings) only.

Measured on validation tasks of the training part (POPQUORN offensiveness, task split, VAE only, 3
seeds): population MAE 0.495 -> 0.474 with the offset, 0.468 with offset + slope (Avg WD 0.550 ->
0.522); matched MAE 0.558 -> 0.518. With the LLM reference (two wordings), inner validation tasks of
10 outer task splits: the curve (``curve_kappa=5``) population MAE 0.3904 -> 0.3871, Avg WD 0.4475 ->
0.4430 (better on 9 / 10 splits); the own noise (``noise_kappa=30``) leaves the MAE (the ordinal
blender keeps each decision's mean) and moves Avg WD 0.4430 -> 0.4419 (docs/crowd.md).

>>> import numpy as np
>>> import pandas as pd
>>> twins = PersonTwins(kappa=1.0, slope_kappa=1e9, curve_kappa=None).fit(
...     np.array([1.0, 1.0, 1.0, -1.0]), np.array([0.0, 1.0, 2.0, 1.0]), np.array([0, 0, 0, 1]),
...     pd.Index(["ann", "bob", "cy"]))
>>> twins.terms(np.array(["ann", "bob", "cy", "new"]), np.ones(4)).round(3).tolist()
[0.75, -0.5, 0.0, 0.0]
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._params import Params
from crowdllm.crowd.memory import group_means, within_over_between
from crowdllm.errors import ConfigError


class PersonTwins(Params):
    """Per-person offset, slope and curve (``coef_``: a frame by worker id with ``a``, ``c``, ``q``, ``n``
    and ``s``, the person's noise factor), the standardisation of the prediction (``x_mean_``, ``x_sd_``)
    and the offset's shrinkage ``kappa_``. ``curve_kappa``: None -- no curve, the line alone.
    ``noise_kappa``: None -- every known person gets the one noise factor ``noise_factor_``; a number --
    each their own, shrunk towards it with that many pseudo-answers."""

    def __init__(self, kappa: float | None = None, slope_kappa: float = 5.0, noise_kappa: float | None = None,
                 curve_kappa: float | None = 5.0) -> None:
        self.kappa = kappa
        self.slope_kappa = slope_kappa
        self.noise_kappa = noise_kappa
        self.curve_kappa = curve_kappa

    def fit(self, r: np.ndarray, pred: np.ndarray, wi: np.ndarray, workers: pd.Index) -> PersonTwins:
        """Fit from one residual ``r`` and prediction ``pred`` (model units) per training answer, given
        by person ``workers[wi]``."""
        r, pred = np.asarray(r, float).reshape(-1), np.asarray(pred, float).reshape(-1)
        wi = np.asarray(wi, dtype=np.int64)
        if not len(r) == len(pred) == len(wi):
            raise ConfigError(f"twins need one residual and prediction per answer ({len(r)}, {len(pred)}, {len(wi)})")
        for name in ("kappa", "slope_kappa", "noise_kappa", "curve_kappa"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, Real) and float(value) >= 0):
                what = "" if name == "slope_kappa" else " or None"
                raise ConfigError(f"{name}={value!r}: give a number of pseudo-answers >= 0{what}")
        self.x_mean_, self.x_sd_ = float(pred.mean()), float(pred.std()) or 1.0
        x = (pred - self.x_mean_) / self.x_sd_
        n = np.bincount(wi, minlength=len(workers)).astype(float)
        self.kappa_ = float(self.kappa) if self.kappa is not None else within_over_between(r, wi, n)
        a = np.zeros(len(workers))
        c = np.zeros(len(workers))
        q = np.zeros(len(workers))
        if np.isfinite(self.kappa_) and self.curve_kappa is not None:
            # per person the 3x3 ridge system in (1, x, x^2 - 1)
            X = np.stack([np.ones_like(x), x, x * x - 1.0], axis=1)
            G = np.zeros((len(workers), 3, 3))
            np.add.at(G, wi, X[:, :, None] * X[:, None, :])
            rhs = np.zeros((len(workers), 3))
            np.add.at(rhs, wi, X * r[:, None])
            G += np.diag([self.kappa_, float(self.slope_kappa), float(self.curve_kappa)]) + 1e-9 * np.eye(3)
            a, c, q = np.linalg.solve(G, rhs[:, :, None])[:, :, 0].T
        elif np.isfinite(self.kappa_):
            # per person the 2x2 ridge system [[n + ka, sx], [sx, sxx + kc]] [a, c] = [sr, sxr]
            sx, sxx = (np.bincount(wi, weights=v, minlength=len(workers)) for v in (x, x * x))
            sr, sxr = (np.bincount(wi, weights=v, minlength=len(workers)) for v in (r, x * r))
            kc = float(self.slope_kappa)
            det = (n + self.kappa_) * (sxx + kc) - sx ** 2
            ok = det > 1e-12
            a[ok] = ((sxx + kc) * sr - sx * sxr)[ok] / det[ok]
            c[ok] = ((n + self.kappa_) * sxr - sx * sr)[ok] / det[ok]
        self.coef_ = pd.DataFrame({"a": a, "c": c, "q": q, "n": n, "s": 1.0}, index=pd.Index(workers).astype(str))
        self.noise_factor_ = 1.0
        return self

    def rows(self, workers: np.ndarray) -> np.ndarray:
        """Each worker id's row among the known people (``-1``: a person not seen in training). Resolve
        each person once and index the result by the answers' person index: ``terms_at(rows[wi], ...)``."""
        if not hasattr(self, "coef_"):
            raise ConfigError("these twins are not fitted yet")
        return self.coef_.index.get_indexer(pd.Index(np.asarray(workers, dtype=object).astype(str)))

    def terms_at(self, rows: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """``a_w + c_w x + q_w (x^2 - 1)`` for each (row of :meth:`rows`, prediction) pair; 0 for row ``-1``."""
        a, c, q = (np.append(self.coef_[k].fillna(0.0).to_numpy(dtype=float), 0.0)  # row -1: 0
                   for k in ("a", "c", "q"))
        x = (np.asarray(pred, float).reshape(-1) - self.x_mean_) / self.x_sd_
        out = a[rows] + c[rows] * x
        return out + q[rows] * (x * x - 1.0) if self.curve_kappa is not None else out

    def noise_at(self, rows: np.ndarray) -> np.ndarray:
        """Each row's noise factor (of :meth:`rows`; 1 for row ``-1``, a person not seen in training)."""
        return np.append(self.coef_["s"].to_numpy(dtype=float), 1.0)[np.asarray(rows, dtype=np.int64)]

    def terms(self, workers: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """The twin's term for each (worker id, prediction) row; 0 for a person not seen in training."""
        return self.terms_at(self.rows(workers), pred)

    def known(self, workers: np.ndarray) -> np.ndarray:
        """Whether each worker id is a person seen in training."""
        return self.rows(workers) >= 0

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        return {**self.get_params(), "kappa_": self.kappa_ if np.isfinite(self.kappa_) else None,
                "x_mean": self.x_mean_, "x_sd": self.x_sd_, "noise_factor": self.noise_factor_,
                "workers": self.coef_.index.tolist(), "a": self.coef_["a"].tolist(), "c": self.coef_["c"].tolist(),
                "n": self.coef_["n"].tolist(), "s": self.coef_["s"].tolist(),
                "q": self.coef_["q"].tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PersonTwins:
        twins = cls(kappa=d["kappa"], slope_kappa=float(d["slope_kappa"]), noise_kappa=d.get("noise_kappa"),
                    curve_kappa=d.get("curve_kappa"))
        twins.kappa_ = float(d["kappa_"]) if d.get("kappa_") is not None else float("inf")
        twins.x_mean_, twins.x_sd_ = float(d["x_mean"]), float(d["x_sd"])
        twins.noise_factor_ = float(d.get("noise_factor", 1.0))
        old = {"q": 0.0, "s": twins.noise_factor_}  # before format 7: a line, one noise factor for all
        twins.coef_ = pd.DataFrame({k: np.asarray(d[k], dtype=float) if k in d else old[k]
                                    for k in ("a", "c", "q", "n", "s")}, index=pd.Index([str(w) for w in d["workers"]]))
        return twins


def person_offsets(z: np.ndarray, ti: np.ndarray, wi: np.ndarray, n_tasks: int, iterations: int = 20) -> np.ndarray:
    """Each answer's person offset in the two-way model ``z = t_task + a_person + noise`` (least squares
    by alternating the two means; the offsets average 0 over the answers). The reference calibration
    learns each task's level from ``z`` less these: on POPQUORN's inner validation task splits (5 seeds)
    the crowd's population MAE 0.4121 -> 0.4090."""
    z = np.asarray(z, float)
    ti, wi = np.asarray(ti, dtype=np.int64), np.asarray(wi, dtype=np.int64)
    n_people = int(wi.max()) + 1 if len(wi) else 0
    a = np.zeros(n_people)
    for _ in range(iterations):
        t = group_means(ti, z - a[wi], n_tasks)
        a = group_means(wi, z - t[ti], n_people)
        a -= a[wi].mean()
    return a[wi]


def fit_twins(twins: PersonTwins, kind: Any, st: Any, pred: np.ndarray, y: np.ndarray, mu: np.ndarray,
              ti: np.ndarray, wi: np.ndarray, n_tasks: int, worker_ids: pd.Index) -> PersonTwins:
    """Fit ``twins`` on the training residuals left after the task memory (``pred``: base + prior-mean
    deviation + task offset, model units), then the share of the ordinal noise left for a known person:
    the blender refitted with the twins' terms added to the training decisions ``mu`` (label units);
    with ``noise_kappa`` set, each person's own share (the blender's per-group noise over each person's
    answers, shrunk towards that share; not when the crowd's sigma is fixed)."""
    from copy import deepcopy

    from crowdllm.blend import OrdinalBlender

    r, _ = kind.residuals(st, pred, y)
    twins.fit(r[:, 0], pred[:, 0], wi, worker_ids)
    if isinstance(st.blender, OrdinalBlender):
        known = mu + (twins.terms_at(twins.rows(worker_ids)[wi], pred[:, 0]) * st.scale)[:, None]
        again = deepcopy(st.blender).fit(*kind.blender_data(known, y, ti, wi, n_tasks, len(worker_ids)))
        twins.noise_factor_ = float(min(again.noise() / st.blender.noise(), 1.0))
        twins.coef_["s"] = twins.noise_factor_
        if twins.noise_kappa is not None and again.sigma is None:  # each person's own noise, shrunk
            sig = again.group_sigmas(known[:, 0], y, wi, len(worker_ids), float(twins.noise_kappa))
            twins.coef_["s"] = sig * (twins.noise_factor_ / again.noise())
    return twins
