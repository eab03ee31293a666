"""The blender: a reference decision plus a belief deviation -> one person's answer (paper Eq. 2).

``y~ ~ F(y_ref + delta, sigma^2)`` where the location ``mu = y_ref + delta`` is the person's *expected
decision* (the deviation averaged over J belief samples, see :mod:`crowdllm.belief.cvae`) and ``F``
depends on the label kind:

- ``normal`` (continuous): ``mu + sigma * eps``, clipped to the scale when there is one.
- ``ordinal`` (default for ordinal labels): an ordered-probit likelihood. A latent
  ``N(loc, sigma^2)`` is cut at the midpoints between levels; ``loc`` is chosen so that the *mean of
  the resulting label distribution equals* ``mu`` (a monotone 1-D inversion, tabulated once). So the
  crowd mean keeps the value the model predicted, and near the ends of the scale the distribution
  piles up on the end level instead of being shifted inwards.
- ``round``: rounding + clipping of ``N(mu, sigma^2)`` -- the same cut-points but ``loc = mu``. Near
  the ends clipping biases the mean (a predicted 1.2 on a 1-5 scale samples to a mean well above 1.2),
  which is why ``ordinal`` is the default; both are kept so the difference can be measured.
- ``softmax`` (categorical): ``mu`` is a vector of logits (reference log-probabilities + delta);
  a category is drawn from ``softmax(mu / T)`` (Gumbel-max trick).
- ``topk`` (top-k votes): per voter, utilities ``mu`` over the items (reference logit + delta) are
  perturbed by Gumbel noise of scale ``beta`` and the ``k`` largest are chosen (Gumbel-top-k, i.e. a
  Plackett-Luce draw of k items without order).

Every blender has the same contract: the constructor's noise (``sigma`` / ``temperature`` / ``beta``)
is a fixed value or None; ``fit(mu, y)`` learns the noise it samples with into ``scale_`` -- the
constructor's value if one was given, else the maximum-likelihood estimate from the training residuals
(``normal``: the root-mean-square residual) -- times ``factor``. ``fit`` never overwrites a
constructor argument. ``mu`` and ``y`` have the shapes ``sample`` takes and returns (top-k: voters x
items utilities and 0/1 choices). Everything is vectorised numpy.

>>> import numpy as np
>>> b = NormalBlender().fit(np.zeros(4), np.array([0.5, -0.5, 0.5, -0.5]))
>>> b.scale_, b.sigma
(0.5, None)
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from scipy.special import log_ndtr, logsumexp, ndtr

from crowdllm.data.dataset import LabelSpec
from crowdllm.errors import ConfigError

BLENDERS = ("normal", "ordinal", "round", "softmax", "topk")
_SIGMA_GRID = np.geomspace(0.03, 6.0, 120)


class Blender(ABC):
    """A noise model ``F(mu, scale)``: ``fit`` learns ``scale_``, ``sample`` draws answers."""

    name: str = "abstract"

    def __init__(self, noise: float | None = None, factor: float = 1.0) -> None:
        self._fixed = noise
        self.factor = factor

    def fit(self, mu: np.ndarray, y: np.ndarray) -> Blender:
        """Learn ``scale_``: the fixed noise if the constructor got one, else maximum likelihood."""
        if self._fixed is not None:
            self.scale_ = float(self._fixed) * self.factor if self.factor != 1.0 else float(self._fixed)
            return self
        estimate = self._estimate(mu, y)
        self.scale_ = estimate * self.factor if self.factor != 1.0 else estimate
        return self

    @abstractmethod
    def _estimate(self, mu: np.ndarray, y: np.ndarray) -> float:
        ...

    @abstractmethod
    def sample(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ...

    @abstractmethod
    def _params(self) -> dict[str, Any]:
        ...

    def noise(self) -> float:
        """The noise used to sample: the fitted ``scale_``, else the constructor's fixed value."""
        value = getattr(self, "scale_", None)
        if value is None:
            value = self._fixed
        if value is None:
            raise ConfigError(f"blender '{self.name}': its noise is not set; call fit() or pass it")
        return float(value)

    def to_dict(self) -> dict[str, Any]:
        """``name``, the noise to sample with (under its constructor name) and the other parameters."""
        return {"name": self.name, **self._params()}


# ---------------------------------------------------------------------------------------- continuous
class NormalBlender(Blender):
    name = "normal"

    def __init__(self, sigma: float | None = None, scale: tuple[float, float] | None = None,
                 factor: float = 1.0) -> None:
        super().__init__(sigma, factor)
        self.sigma = sigma
        self.scale = scale  # the label's (low, high) bounds: samples are clipped to them

    def _estimate(self, mu: np.ndarray, y: np.ndarray) -> float:
        return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(mu, float)) ** 2)))

    def sample(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        sigma = self.noise()
        out = np.asarray(mu, dtype=np.float64) + sigma * rng.standard_normal(np.shape(mu))
        if self.scale is not None:
            out = np.clip(out, self.scale[0], self.scale[1])
        return out

    def _params(self) -> dict[str, Any]:
        return {"sigma": getattr(self, "scale_", self.sigma), "scale": list(self.scale) if self.scale else None}


# ---------------------------------------------------------------------------------------- ordinal
class OrdinalBlender(Blender):
    """Ordered probit on ``levels`` with cut-points at the midpoints; ``mean_matching`` picks the
    latent location whose label mean equals ``mu`` (``ordinal``) or uses ``mu`` itself (``round``)."""

    def __init__(self, levels: np.ndarray | list[float], sigma: float | None = None, *,
                 mean_matching: bool = True, factor: float = 1.0) -> None:
        super().__init__(sigma, factor)
        self.levels = np.asarray(levels, dtype=np.float64)
        if self.levels.ndim != 1 or len(self.levels) < 2 or np.any(np.diff(self.levels) <= 0):
            raise ConfigError("ordinal blender needs at least two increasing levels")
        self.sigma = sigma
        self.mean_matching = mean_matching
        self.name = "ordinal" if mean_matching else "round"
        self.cuts = (self.levels[:-1] + self.levels[1:]) / 2.0
        self._tables: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    # location ----------------------------------------------------------------
    def _table(self, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        key = round(float(sigma), 12)
        if key not in self._tables:
            lo, hi = self.levels[0], self.levels[-1]
            grid = np.linspace(lo - 8 * sigma - 1, hi + 8 * sigma + 1, 4001)
            steps = np.diff(self.levels)
            mean = lo + (steps[None, :] * ndtr((grid[:, None] - self.cuts[None, :]) / sigma)).sum(axis=1)
            mean = np.maximum.accumulate(mean)  # guard against float ties
            if len(self._tables) > 8:
                self._tables.clear()
            self._tables[key] = (mean, grid)
        return self._tables[key]

    def location(self, mu: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """The latent location for expected decisions ``mu``."""
        s = self.noise() if sigma is None else float(sigma)
        mu = np.asarray(mu, dtype=np.float64)
        if not self.mean_matching:
            return mu
        mean, grid = self._table(s)
        return np.interp(mu, mean, grid)

    def probs(self, mu: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """``(n, n_levels)`` probability of each level."""
        s = self.noise() if sigma is None else float(sigma)
        loc = self.location(mu, s)
        cdf = ndtr((self.cuts[None, :] - loc[:, None]) / s)
        cdf = np.concatenate([np.zeros((len(loc), 1)), cdf, np.ones((len(loc), 1))], axis=1)
        return np.diff(cdf, axis=1)

    def _nll(self, mu: np.ndarray, codes: np.ndarray, sigma: float) -> float:
        loc = self.location(mu, sigma)
        upper = np.append(self.cuts, np.inf)[codes]
        lower = np.insert(self.cuts, 0, -np.inf)[codes]
        a, b = (lower - loc) / sigma, (upper - loc) / sigma
        # log(Phi(b) - Phi(a)), computed on the side of the distribution where it is accurate
        flip = a > 0
        a2, b2 = np.where(flip, -b, a), np.where(flip, -a, b)
        lb, la = log_ndtr(b2), log_ndtr(a2)
        ll = lb + np.log1p(-np.exp(np.minimum(la - lb, -1e-12)))
        return float(-np.mean(ll))

    def codes(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        idx = np.searchsorted(self.cuts, y)
        if not np.allclose(self.levels[idx], y):
            raise ConfigError("ordinal blender: labels must be on the levels of the scale")
        return idx

    def _estimate(self, mu: np.ndarray, y: np.ndarray) -> float:
        """Maximum-likelihood ``sigma`` (grid of 120 values from 0.03 to 6, log-spaced)."""
        mu = np.asarray(mu, dtype=np.float64)
        codes = self.codes(y)
        nll = np.array([self._nll(mu, codes, s) for s in _SIGMA_GRID])
        self.nll_ = float(nll.min())
        return float(_SIGMA_GRID[int(np.argmin(nll))])

    def sample(self, mu: np.ndarray, rng: np.random.Generator, sigma: np.ndarray | None = None) -> np.ndarray:
        """One label per ``mu``; ``sigma`` (optional, one per row) overrides the fitted noise row by row."""
        s = self.noise()
        mu = np.asarray(mu, dtype=np.float64)
        if sigma is None:
            loc = self.location(mu, s)
            scale: np.ndarray | float = s
        else:
            sig = np.asarray(sigma, dtype=np.float64)
            loc = np.empty_like(mu)
            for value in np.unique(sig):  # per-task noise takes values on the fitting grid
                rows = sig == value
                loc[rows] = self.location(mu[rows], float(value))
            scale = sig
        latent = loc + scale * rng.standard_normal(loc.shape)
        return self.levels[np.searchsorted(self.cuts, latent)]

    def group_sigmas(self, mu: np.ndarray, y: np.ndarray, groups: np.ndarray, n_groups: int,
                     kappa: float) -> np.ndarray:
        """Per-group noise (e.g. per task): each group's maximum-likelihood sigma on the grid, shrunk in
        log space towards the fitted global sigma with ``kappa`` pseudo-answers, snapped to the grid.
        Groups without answers get the global sigma."""
        s = self.noise()
        mu = np.asarray(mu, dtype=np.float64)
        codes = self.codes(y)
        nll = np.empty((len(_SIGMA_GRID), n_groups))
        n = np.bincount(groups, minlength=n_groups).astype(float)
        for i, sig in enumerate(_SIGMA_GRID):
            loc = self.location(mu, sig)
            upper = np.append(self.cuts, np.inf)[codes]
            lower = np.insert(self.cuts, 0, -np.inf)[codes]
            a, b = (lower - loc) / sig, (upper - loc) / sig
            flip = a > 0
            a2, b2 = np.where(flip, -b, a), np.where(flip, -a, b)
            lb, la = log_ndtr(b2), log_ndtr(a2)
            ll = lb + np.log1p(-np.exp(np.minimum(la - lb, -1e-12)))
            nll[i] = -np.bincount(groups, weights=ll, minlength=n_groups)
        best = np.log(_SIGMA_GRID[np.argmin(nll, axis=0)])
        shrunk = np.exp((n * best + kappa * np.log(s)) / (n + kappa))
        shrunk = np.where(n > 0, shrunk, s)
        idx = np.abs(np.log(_SIGMA_GRID)[None, :] - np.log(shrunk)[:, None]).argmin(axis=1)
        return _SIGMA_GRID[idx]

    def _params(self) -> dict[str, Any]:
        return {"sigma": getattr(self, "scale_", self.sigma), "levels": self.levels.tolist()}


# ---------------------------------------------------------------------------------------- categorical
def _gumbel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    u = rng.random(shape)
    return -np.log(-np.log(np.clip(u, 1e-300, 1.0 - 1e-16)))


class SoftmaxBlender(Blender):
    """``mu``: (n, C) logits; a category is drawn from ``softmax(mu / temperature)``."""

    name = "softmax"

    def __init__(self, categories: tuple[str, ...] | list[str], temperature: float | None = None,
                 factor: float = 1.0) -> None:
        super().__init__(temperature, factor)
        self.categories = tuple(categories)
        self.temperature = temperature

    def _estimate(self, mu: np.ndarray, y: np.ndarray) -> float:
        """Maximum-likelihood temperature; ``y`` are category indices."""
        mu = np.asarray(mu, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        best = (np.inf, 1.0)
        for t in _SIGMA_GRID:
            z = mu / t
            nll = float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y]))
            best = min(best, (nll, float(t)))
        self.nll_ = best[0]
        return best[1]

    def sample(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t = self.noise()
        mu = np.asarray(mu, dtype=np.float64)
        idx = np.argmax(mu / t + _gumbel(rng, mu.shape), axis=1)
        return np.asarray(self.categories, dtype=object)[idx]

    def _params(self) -> dict[str, Any]:
        return {"temperature": getattr(self, "scale_", self.temperature), "categories": list(self.categories)}


# ---------------------------------------------------------------------------------------- top-k votes
class TopKBlender(Blender):
    """Each voter chooses ``k`` items: the top ``k`` of ``utility / beta + Gumbel``."""

    name = "topk"

    def __init__(self, k: int, beta: float | None = None, factor: float = 1.0) -> None:
        super().__init__(beta, factor)
        self.k = int(k)
        self.beta = beta

    def set_log_likelihood(self, utilities: np.ndarray, chosen: np.ndarray, beta: float,
                           max_orders: int = 120) -> float:
        """Mean log-probability of each voter's chosen set under Gumbel-top-k (Plackett-Luce, any
        order): exact over all k! orders when k! <= ``max_orders``, else averaged over random orders."""
        u = np.asarray(utilities, dtype=np.float64) / beta  # (V, N)
        chosen = np.asarray(chosen, dtype=np.int64)  # (V, k)
        k = chosen.shape[1]
        if math.factorial(k) <= max_orders:
            orders = np.array(list(itertools.permutations(range(k))))
        else:
            orders = np.random.default_rng(0).permuted(np.tile(np.arange(k), (max_orders, 1)), axis=1)
        us = np.take_along_axis(u, chosen, axis=1)  # (V, k)
        m = us.max(axis=1, keepdims=True)
        mask = np.ones(u.shape, dtype=bool)
        np.put_along_axis(mask, chosen, False, axis=1)
        # mass of the items never chosen, relative to the largest chosen utility (no cancellation)
        rest = np.where(mask, np.exp(np.minimum(u - m, 700.0)), 0.0).sum(axis=1, keepdims=True)
        log_ws = us - m
        per_order = []
        for perm in orders:
            lw = log_ws[:, perm]  # (V, k) in choice order
            # denominator at step j: unchosen mass + chosen items not yet taken (j..k-1)
            tail = np.flip(np.cumsum(np.flip(np.exp(lw), axis=1), axis=1), axis=1)
            per_order.append(np.sum(lw - np.log(rest + tail), axis=1))
        ll = logsumexp(np.stack(per_order, axis=1), axis=1)
        if math.factorial(k) > max_orders:
            ll = ll - np.log(len(orders)) + math.lgamma(k + 1)
        return float(np.mean(ll))

    def _estimate(self, mu: np.ndarray, y: np.ndarray) -> float:
        """Maximum-likelihood ``beta`` from (voters, items) utilities and 0/1 choices; voters who did
        not choose exactly ``k`` items are left out."""
        mask = np.asarray(y) > 0.5
        ok = mask.sum(axis=1) == self.k
        chosen = np.argsort(~mask[ok], axis=1, kind="stable")[:, :self.k]
        utilities = np.asarray(mu)[ok]
        ll = np.array([self.set_log_likelihood(utilities, chosen, b) for b in _SIGMA_GRID])
        self.nll_ = float(-ll.max())
        return float(_SIGMA_GRID[int(np.argmax(ll))])

    def sample(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``mu``: (V, N) utilities -> (V, N) 0/1 selections, exactly ``k`` ones per row."""
        beta = self.noise()
        mu = np.asarray(mu, dtype=np.float64)
        if self.k > mu.shape[1]:
            raise ConfigError(f"top-k blender: k={self.k} but only {mu.shape[1]} items to choose from")
        noisy = mu / beta + _gumbel(rng, mu.shape)
        top = np.argpartition(-noisy, self.k - 1, axis=1)[:, :self.k]
        out = np.zeros(mu.shape, dtype=np.int64)
        np.put_along_axis(out, top, 1, axis=1)
        return out

    def _params(self) -> dict[str, Any]:
        return {"beta": getattr(self, "scale_", self.beta), "k": self.k}


# ---------------------------------------------------------------------------------------- factory
def make_blender(name: str, label: LabelSpec, noise: float | None = None, factor: float = 1.0) -> Blender:
    """The blender called ``name`` for the levels/categories/k of ``label`` (which blender suits which
    label kind is the kind's business: :mod:`crowdllm.crowd.kinds`)."""
    if name == "normal":
        return NormalBlender(noise, scale=label.scale, factor=factor)
    if name in ("ordinal", "round"):
        return OrdinalBlender(label.levels, noise, mean_matching=name == "ordinal", factor=factor)
    if name == "softmax":
        assert label.categories is not None
        return SoftmaxBlender(label.categories, noise, factor=factor)
    if name == "topk":
        assert label.k is not None
        return TopKBlender(label.k, noise, factor=factor)
    raise ConfigError(f"unknown blender '{name}' (known: {', '.join(BLENDERS)})")


def blender_from_dict(d: dict[str, Any]) -> Blender:
    """A fitted blender from :meth:`Blender.to_dict` (its noise becomes ``scale_``)."""
    name = d.get("name")
    if name == "normal":
        b: Blender = NormalBlender(scale=tuple(d["scale"]) if d.get("scale") else None)  # type: ignore[arg-type]
        noise = d.get("sigma")
    elif name in ("ordinal", "round"):
        b, noise = OrdinalBlender(d["levels"], mean_matching=name == "ordinal"), d.get("sigma")
    elif name == "softmax":
        b, noise = SoftmaxBlender(d["categories"]), d.get("temperature")
    elif name == "topk":
        b, noise = TopKBlender(int(d["k"])), d.get("beta")
    else:
        raise ConfigError(f"unknown blender '{name}' in saved config (known: {', '.join(BLENDERS)})")
    if noise is not None:
        b.scale_ = float(noise)
    return b
