"""Who votes for what: a conditional-logit model of each voter's top-k ballot from their profile.

A voter ``v`` picks ``k`` of the items by Gumbel-top-k (Plackett-Luce) on the utilities ::

    u_vi = b_i + sum_f w_f x_f(v, i)

``b_i`` is the item's intercept (its popularity) and the features ``x_f`` are built from any dataset's
profile and task columns, never from their names:

- **same value**: a profile column and a task column with the same name (case-insensitive) that share
  values (a voter's district and the project's district) give ``same_vi = 1`` when they agree, and
  ``same_vi`` times each numeric or ordinal profile attribute (standardised; ordinal levels coded
  0..L-1 in ``ordered_attributes`` order);
- **attribute x task column**: each numeric/ordinal profile attribute times each categorical task
  column's one-hot (a voter's nature score with the project's category being Nature) and times each
  numeric task column (standardised; cost importance with the cost).

The weights maximise the exact Plackett-Luce log-likelihood of each voter's *set* (summed over the
orders it could have been drawn in; the blender samples the same way) with an L2 penalty ``alpha``
on all weights. Which feature groups enter is decided on validation voters: ``folds``-fold
cross-validation over the voters given to ``fit`` keeps a group only when it raises the held-out set
log-likelihood over the intercepts alone; ``alpha=None`` then chooses it from ``grid`` by the same
held-out log-likelihood. Unknown profile values count as the training mean; a new item gets the mean
intercept. The digital crowd uses it for top-k labels (:mod:`crowdllm.crowd.model`).

Measured (Zurich participatory budget, top-5 of 24, split by voter, 5 seeds; ``crowdllm reproduce voting
--seeds 5 --virtual-per-answer 30``): see docs/crowd.md, "The voter model".

>>> import numpy as np
>>> import pandas as pd
>>> rng = np.random.default_rng(0)
>>> tasks = pd.DataFrame({"task": [f"i{j}" for j in range(6)], "District": list("AABBCC")})
>>> workers = pd.DataFrame({"worker": [f"v{j}" for j in range(90)], "District": list("ABC") * 30})
>>> same = (workers["District"].to_numpy()[:, None] == tasks["District"].to_numpy()[None, :])
>>> keys = 2.0 * same + rng.gumbel(size=same.shape)  # voters like their own district's items
>>> chosen = (keys >= np.sort(keys, axis=1)[:, [-2]]).astype(int)  # top 2
>>> model = VoterChoice(alpha=1e-3).fit(tasks, workers, chosen)
>>> [g for g in model.groups_ if g.startswith("same")]
['same:District']
>>> round(float(model.coef_["same:District"]), 1)
1.9
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp

from crowdllm._params import Params
from crowdllm.errors import ConfigError

DEFAULT_GRID: tuple[float, ...] = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
MAX_ORDERS = 120  # exact set likelihood up to 5! orders, else this many random ones


def _key(value: Any) -> str:
    return str(value).strip().casefold()


def _orders(m: int) -> np.ndarray:
    if math.factorial(m) <= MAX_ORDERS:
        return np.array(list(itertools.permutations(range(m))), dtype=np.int64)
    return np.random.default_rng(0).permuted(np.tile(np.arange(m), (MAX_ORDERS, 1)), axis=1)


def set_log_likelihood(U: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per voter, the Plackett-Luce log-probability of the chosen set (any order) under utilities ``U``
    (voters x items), and its gradient with respect to ``U``. ``chosen``: a 0/1 matrix of the same
    shape; a voter who chose nothing (or everything) adds 0."""
    U = np.asarray(U, dtype=np.float64)
    mask = np.asarray(chosen) > 0.5
    ll, grad = np.zeros(len(U)), np.zeros_like(U)
    sizes = mask.sum(axis=1)
    for m in np.unique(sizes[(sizes > 0) & (sizes < U.shape[1])]):
        rows = np.flatnonzero(sizes == m)
        u, C = U[rows], np.argsort(~mask[rows], axis=1, kind="stable")[:, :m]
        E = np.exp(u - u.max(axis=1, keepdims=True))
        Ec = np.take_along_axis(E, C, axis=1)
        rest = E.sum(axis=1) - Ec.sum(axis=1)
        orders = _orders(int(m))
        Eo = Ec[:, orders]  # (V, O, m): the chosen items in each order
        D = rest[:, None, None] + np.flip(np.cumsum(np.flip(Eo, -1), -1), -1)
        logp = np.log(Eo).sum(-1) - np.log(D).sum(-1)
        total = logsumexp(logp, axis=1)
        pi = np.exp(logp - total[:, None])
        S = np.cumsum(1.0 / D, axis=-1)
        g_pos = pi[..., None] * (1.0 - Eo * S)
        g_chosen = np.zeros_like(Ec)
        for o, perm in enumerate(orders):
            g_chosen[:, perm] += g_pos[:, o]
        g = -(pi * S[..., -1]).sum(axis=1)[:, None] * E
        np.put_along_axis(g, C, g_chosen, axis=1)
        if len(orders) < math.factorial(int(m)):
            total = total - np.log(len(orders)) + math.lgamma(m + 1)
        ll[rows], grad[rows] = total, g
    return ll, grad


class VoterChoice(Params):
    """A conditional logit of top-k ballots on profile x item features (see the module docs).

    Fitted: ``intercepts_`` (a Series by item id), ``coef_`` (a Series by feature name), ``groups_``
    (the feature groups kept), ``alpha_``, ``validation_ll_`` (held-out set log-likelihood per voter
    by alpha) and the feature encoding (``attributes_``, ``task_levels_``, ``task_numbers_``,
    ``matches_``)."""

    def __init__(self, alpha: float | None = None, grid: Sequence[float] = DEFAULT_GRID, folds: int = 5,
                 screen: bool = True, groups: Sequence[str] | None = None, max_levels: int = 12,
                 random_state: int = 0) -> None:
        self.alpha = alpha
        self.grid = grid
        self.folds = folds
        self.screen = screen
        self.groups = groups
        self.max_levels = max_levels
        self.random_state = random_state

    def _check(self) -> None:
        if self.alpha is not None and not float(self.alpha) >= 0:
            raise ConfigError(f"alpha={self.alpha!r}: give an L2 strength >= 0, or None to choose it")
        if not len(self.grid) or any(not float(a) >= 0 for a in self.grid):
            raise ConfigError(f"grid={tuple(self.grid)!r}: give L2 strengths >= 0")
        if int(self.folds) < 2:
            raise ConfigError(f"folds={self.folds!r}: cross-validation needs at least 2 folds")

    # ------------------------------------------------------------------ features
    def _encode_spec(self, tasks: pd.DataFrame, workers: pd.DataFrame,
                     ordered: Mapping[str, Sequence[Any]], text_column: str) -> None:
        """Which columns enter and how they are coded (learned from the training frames)."""
        self.attributes_: dict[str, dict[str, Any]] = {}
        categorical: dict[str, list[str]] = {}
        for col in (c for c in workers.columns if c != "worker"):
            values = workers[col]
            if col in ordered:
                codes = values.map({v: float(i) for i, v in enumerate(ordered[col])}).astype(float)
                self.attributes_[col] = {"levels": [str(v) for v in ordered[col]], **_moments(codes)}
            elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                self.attributes_[col] = {"levels": None, **_moments(values.astype(float))}
            elif 2 <= values.nunique() <= self.max_levels:
                categorical[col] = sorted({_key(v) for v in values.dropna()})
        self.attributes_ = {c: a for c, a in self.attributes_.items() if a["sd"] > 0}
        self.task_levels_: dict[str, list[str]] = {}
        self.task_numbers_: dict[str, dict[str, float]] = {}
        for col in (c for c in tasks.columns if c not in ("task", text_column)):
            values = tasks[col]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                if values.nunique() >= 2:
                    self.task_numbers_[col] = _moments(values.astype(float))
            elif 2 <= values.nunique() <= self.max_levels:
                self.task_levels_[col] = sorted({_key(v) for v in values.dropna()})
        self.matches_ = [(p, t) for p, levels in categorical.items() for t in tasks.columns
                         if t not in ("task", text_column) and _key(t) == _key(p)
                         and set(levels) & {_key(v) for v in tasks[t].dropna()}]

    def _profile_z(self, workers: pd.DataFrame) -> np.ndarray:
        """Standardised numeric/ordinal attributes (voters x attributes); unknown values are 0."""
        cols = []
        for col, a in self.attributes_.items():
            values = workers[col] if col in workers.columns else pd.Series(np.nan, index=workers.index)
            if a["levels"] is not None:
                values = values.map(lambda v, lv=a["levels"]: float(lv.index(str(v))) if str(v) in lv else np.nan)
            z = (pd.to_numeric(values, errors="coerce").to_numpy(dtype=float) - a["mean"]) / a["sd"]
            cols.append(np.nan_to_num(z))
        return np.stack(cols, axis=1) if cols else np.zeros((len(workers), 0))

    def _all_features(self, tasks: pd.DataFrame, workers: pd.DataFrame) -> dict[str, list[tuple[str, np.ndarray]]]:
        """Feature groups: name -> [(feature name, voters x items values)]."""
        Z, names = self._profile_z(workers), list(self.attributes_)
        groups: dict[str, list[tuple[str, np.ndarray]]] = {}
        for p, t in self.matches_:
            same = (workers[p].map(_key).to_numpy()[:, None] == tasks[t].map(_key).to_numpy()[None, :]).astype(float)
            groups[f"same:{t}"] = [(f"same:{t}", same)]
            for j, a in enumerate(names):
                groups[f"same:{t} x {a}"] = [(f"same:{t} x {a}", same * Z[:, [j]])]
        for j, a in enumerate(names):
            for t, levels in self.task_levels_.items():
                onehot = tasks[t].map(_key).to_numpy()[None, :]
                groups[f"{a} x {t}"] = [(f"{a} x {t}={lv}", Z[:, [j]] * (onehot == lv)) for lv in levels]
            for t, mom in self.task_numbers_.items():
                x = np.nan_to_num((pd.to_numeric(tasks[t], errors="coerce").to_numpy(float) - mom["mean"]) / mom["sd"])
                groups[f"{a} x {t}"] = [(f"{a} x {t}", Z[:, [j]] * x[None, :])]
        return groups

    def _design(self, tasks: pd.DataFrame, workers: pd.DataFrame, groups: Sequence[str] | None = None
                ) -> tuple[np.ndarray, list[str], dict[str, str]]:
        """(voters x items x features) for the feature groups ``groups`` (None: all), the feature names
        and each one's group."""
        found = self._all_features(tasks, workers)
        groups = list(found) if groups is None else groups
        group_of = {n: g for g in groups for n, _ in found[g]}
        feats = [f for g in groups for f in found[g]]
        if not feats:
            return np.zeros((len(workers), len(tasks), 0)), [], group_of
        return np.stack([v for _, v in feats], axis=2), [n for n, _ in feats], group_of

    # ------------------------------------------------------------------ fitting
    def fit(self, tasks: pd.DataFrame, workers: pd.DataFrame, chosen: np.ndarray, *,
            ordered_attributes: Mapping[str, Sequence[Any]] | None = None, text_column: str = "text"
            ) -> VoterChoice:
        """Fit on ``chosen`` (voters x items 0/1: row ``v`` is ``workers`` row ``v``'s ballot over the
        ``tasks`` rows). ``ordered_attributes``: profile columns whose levels are ordered (lowest first)."""
        self._check()
        chosen = np.asarray(chosen, dtype=float)
        if chosen.shape != (len(workers), len(tasks)):
            raise ConfigError(f"chosen has shape {chosen.shape}; expected (voters, items) = "
                              f"({len(workers)}, {len(tasks)})")
        tasks, workers = tasks.reset_index(drop=True), workers.reset_index(drop=True)
        self._encode_spec(tasks, workers, dict(ordered_attributes or {}), text_column)
        X_all, names_all, group_of = self._design(tasks, workers)
        folds = np.random.default_rng(self.random_state).permutation(len(workers)) % int(self.folds)
        self.groups_ = list(dict.fromkeys(group_of.values()))
        if self.groups is not None:
            self.groups_ = [g for g in self.groups_ if g in set(self.groups)]
        elif self.screen and len(workers) >= 2 * int(self.folds):
            self.groups_ = self._screen(X_all, names_all, group_of, chosen, folds)
        keep = [i for i, n in enumerate(names_all) if group_of[n] in self.groups_]
        X = X_all[:, :, keep]
        self.validation_ll_: dict[float, float] = {}
        if self.alpha is None and len(workers) >= 2 * int(self.folds):
            self.validation_ll_ = {float(a): _cv_ll(X, chosen, folds, float(a)) for a in self.grid}
            self.alpha_ = max(self.validation_ll_, key=lambda a: self.validation_ll_[a])
        else:
            self.alpha_ = float(self.alpha) if self.alpha is not None else float(np.median(self.grid))
        b, w = _fit(X, chosen, self.alpha_)
        self.intercepts_ = pd.Series(b - b.mean(), index=tasks["task"].astype(str).to_numpy())
        self.coef_ = pd.Series(w, index=[names_all[i] for i in keep], dtype=float)
        return self

    def _screen(self, X: np.ndarray, names: list[str], group_of: dict[str, str], chosen: np.ndarray,
                folds: np.ndarray) -> list[str]:
        """The feature groups that, alone with the intercepts, raise the held-out log-likelihood."""
        alpha = float(self.alpha) if self.alpha is not None else float(np.median(self.grid))
        base = _cv_ll(X[:, :, :0], chosen, folds, alpha)
        kept = []
        for g in dict.fromkeys(group_of.values()):
            cols = [i for i, n in enumerate(names) if group_of[n] == g]
            if _cv_ll(X[:, :, cols], chosen, folds, alpha) > base:
                kept.append(g)
        return kept

    # ------------------------------------------------------------------ using it
    def utilities(self, tasks: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        """Utilities (voters x items) of ``workers`` rows for ``tasks`` rows (a new item: mean intercept 0)."""
        if not hasattr(self, "coef_"):
            raise ConfigError("this VoterChoice is not fitted yet: call fit(tasks, workers, chosen) first")
        tasks, workers = tasks.reset_index(drop=True), workers.reset_index(drop=True)
        b = self.intercepts_.reindex(tasks["task"].astype(str).to_numpy()).fillna(0.0).to_numpy(dtype=float)
        X, _, _ = self._design(tasks, workers, self.groups_)
        return b[None, :] + X @ self.coef_.to_numpy(dtype=float)

    def log_likelihood(self, tasks: pd.DataFrame, workers: pd.DataFrame, chosen: np.ndarray) -> float:
        """Mean set log-likelihood per voter of the ballots ``chosen`` (voters x items)."""
        return float(set_log_likelihood(self.utilities(tasks, workers), chosen)[0].mean())

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        return {**self.get_params(), "grid": list(self.grid), "alpha_": self.alpha_, "groups_": self.groups_,
                "attributes": self.attributes_, "task_levels": self.task_levels_,
                "task_numbers": self.task_numbers_, "matches": [list(m) for m in self.matches_],
                "items": self.intercepts_.index.tolist(), "intercepts": self.intercepts_.tolist(),
                "features": self.coef_.index.tolist(), "coef": self.coef_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VoterChoice:
        model = cls(**{k: d[k] for k in ("alpha", "folds", "screen", "groups", "max_levels", "random_state")},
                    grid=tuple(d["grid"]))
        model.alpha_, model.groups_ = float(d["alpha_"]), list(d["groups_"])
        model.attributes_, model.task_levels_ = dict(d["attributes"]), dict(d["task_levels"])
        model.task_numbers_ = dict(d["task_numbers"])
        model.matches_ = [(str(p), str(t)) for p, t in d["matches"]]
        model.intercepts_ = pd.Series(np.asarray(d["intercepts"], dtype=float), index=[str(i) for i in d["items"]])
        model.coef_ = pd.Series(np.asarray(d["coef"], dtype=float), index=list(d["features"]), dtype=float)
        return model


def _moments(values: pd.Series) -> dict[str, float]:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if len(v) else 0.0, "sd": float(v.std()) if len(v) > 1 else 0.0}


def _fit(X: np.ndarray, chosen: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(item intercepts, feature weights) maximising the mean set log-likelihood - alpha * L2."""
    V, N, d = X.shape

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        b, w = theta[:N], theta[N:]
        ll, G = set_log_likelihood(b[None, :] + X @ w, chosen)
        loss = -ll.sum() / V + alpha * float(theta @ theta)
        grad = np.concatenate([-G.sum(axis=0), -np.einsum("vn,vnd->d", G, X)]) / V + 2 * alpha * theta
        return loss, grad

    res = minimize(f, np.zeros(N + d), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:N], res.x[N:]


def _cv_ll(X: np.ndarray, chosen: np.ndarray, folds: np.ndarray, alpha: float) -> float:
    """Mean held-out set log-likelihood per voter, each fold fitted on the others."""
    total = 0.0
    for f in np.unique(folds):
        test = folds == f
        b, w = _fit(X[~test], chosen[~test], alpha)
        total += float(set_log_likelihood(b[None, :] + X[test] @ w, chosen[test])[0].sum())
    return total / len(folds)


# ---------------------------------------------------------------------------------- in the digital crowd
WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def fit_voters(model: VoterChoice, st: Any, kind: Any, mu: np.ndarray, y: np.ndarray, ti: np.ndarray,
               wi: np.ndarray, valid: np.ndarray, *, ordered: Mapping[str, Sequence[Any]],
               text_column: str) -> tuple[VoterChoice, dict[str, Any]]:
    """The crowd's voter model and how its utilities are combined with the belief model's decisions.

    ``mu``: the training decisions (logits) of the answers ``y`` by ``st.pool`` row ``wi`` on ``st.tasks``
    row ``ti``; ``valid``: the rows the belief model did not train on. The *validation voters* (all
    their rows held out) choose the weight ``w`` of ``w * u + (1 - w) * mu / beta`` from :data:`WEIGHTS`
    by their ballots' set log-likelihood, ``u`` from a voter model fitted on the other voters (which
    also fixes ``alpha`` and the feature groups); then the voter model is refitted on every voter.
    Without validation voters ``w`` is 1 (the voter model decides)."""
    tasks, workers = st.tasks, st.pool.reset_index(drop=True)
    U, chosen = kind.blender_data(mu, y, ti, wi, len(tasks), len(workers))
    n = np.bincount(wi, minlength=len(workers))
    held = (n > 0) & (np.bincount(wi, weights=valid.astype(float), minlength=len(workers)) == n)
    beta = st.blender.noise() / getattr(st.blender, "factor", 1.0)
    mix: dict[str, Any] = {"weight": 1.0, "scale": beta, "validation_ll": {}}
    params = model.get_params()
    if held.any() and (~held).sum() >= 2 * int(model.folds):
        first = VoterChoice(**params).fit(tasks, workers[~held], chosen[~held], ordered_attributes=ordered,
                                          text_column=text_column)
        u = first.utilities(tasks, workers[held])
        ll = {w: float(set_log_likelihood(w * u + (1 - w) * U[held] / beta, chosen[held])[0].mean())
              for w in WEIGHTS}
        mix.update(weight=max(ll, key=lambda w: ll[w]), validation_ll=ll)
        params.update(alpha=first.alpha_, groups=first.groups_)
    final = VoterChoice(**params).fit(tasks, workers, chosen, ordered_attributes=ordered, text_column=text_column)
    return final, mix


def crowd_decisions(st: Any, tasks: pd.DataFrame, profiles: pd.DataFrame, ti: np.ndarray, wi: np.ndarray,
                    mu: np.ndarray, mean: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The decisions (logits, ``(pairs, 1)``) the top-k blender gets, sampled (``mu``) and at the prior
    mean (``mean``, if any): ``(1 - w) mu + w beta u`` with the voter model's utility ``u`` of profile
    ``wi`` for task ``ti``; unchanged without a voter model."""
    if st.voters is None:
        return mu, mean
    w, scale = float(st.voter_mix["weight"]), float(st.voter_mix["scale"])
    u = (w * scale * st.voters.utilities(tasks, profiles)[wi, ti])[:, None]
    return (1 - w) * mu + u, None if mean is None else (1 - w) * mean + u
