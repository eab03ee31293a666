"""Baselines without a language model, behind the one interface every method shares.

A method learns from the training crowd and then answers as a *digital twin*: for each requested
(task, worker) pair it gives one virtual response, knowing the task (text, metadata) and the worker's
profile, never the worker's real answer::

    method = GlobalDistribution().fit(train)                  # train: CrowdDataset
    virtual = method.sample(tasks, workers, pairs=pairs, random_state=0)   # task, worker, label

``pairs`` is a frame with ``task`` and ``worker``; without it every worker answers every task. The
result has one row per pair, in the order of ``pairs``. A method that cannot answer a pair returns a
NaN label for it (the metrics drop such rows and report ``coverage``).

Label kinds: ordinal and categorical labels are sampled from distributions over the scale's levels
(categories). Continuous labels use at most 100 levels: the distinct training values, or 100 training
quantiles when there are more. Top-k votes: each voter selects ``k`` distinct items among the items of
its pairs (label 1 for chosen items, 0 for the others), drawn without replacement with probability
proportional to a per-item weight (uniform, popularity, popularity in the voter's group).

Baselines (all seeded by ``random_state``):

- :class:`UniformRandom` (``random``): every level equally likely (continuous: uniform over the scale).
- :class:`GlobalDistribution` (``global``): the label distribution of all training responses; top-k:
  item popularity.
- :class:`PerTaskEmpirical` (``per-task``): the training workers' label distribution for that task.
  Seen tasks only: an unseen task gets NaN labels; not defined for top-k votes.
- :class:`ProfileGroup` (``profile-group``): see its docstring.
- :class:`LinearText` (``text-ridge``; with the LLM reference as extra inputs ``text+reference``): a
  ridge regression from the task's text embedding (+ structured attributes, + the reference) to its
  answer histogram, the strength chosen on held-out training tasks. The honest "why not just a
  regression?" baseline: CrowdLLM reads the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

from crowdllm._io import rng as make_rng
from crowdllm._params import Params
from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.errors import ConfigError
from crowdllm.evaluate.metrics import distribution_wasserstein

_MAX_CONTINUOUS_LEVELS = 100
#: Ridge strengths :class:`LinearText` chooses from (on held-out training tasks; its inputs are
#: standardised, so with a text embedding and 1,536 hidden dimensions the choice is often 10^3).
RIDGE_ALPHAS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


@runtime_checkable
class Method(Protocol):
    """What the experiment runner needs from a method (baseline, LLM prompting, CrowdLLM)."""

    name: str

    def fit(self, train: CrowdDataset) -> Self: ...

    def sample(self, tasks: pd.DataFrame, workers: pd.DataFrame, *, pairs: pd.DataFrame | None = None,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame: ...


def all_pairs(tasks: pd.DataFrame, workers: pd.DataFrame) -> pd.DataFrame:
    """Every worker x every task (worker-major order)."""
    w = workers["worker"].astype(str).to_numpy()
    t = tasks["task"].astype(str).to_numpy()
    return pd.DataFrame({"task": np.tile(t, len(w)), "worker": np.repeat(w, len(t))})


def draw_levels(probs: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """One level index per row of a (rows x levels) probability matrix (inverse-CDF sampling)."""
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    u = generator.random(len(probs))
    return np.minimum((cdf < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def top_k_without_replacement(weights: np.ndarray, k: int, generator: np.random.Generator) -> np.ndarray:
    """Boolean (voters x items) mask of ``k`` items per row, drawn one after another without replacement
    with probability proportional to ``weights`` (the Gumbel-top-k trick gives exactly that law)."""
    with np.errstate(divide="ignore"):
        keys = np.log(weights) + generator.gumbel(size=weights.shape)
    chosen = np.argsort(-keys, axis=1, kind="stable")[:, :k]
    mask = np.zeros(weights.shape, dtype=bool)
    np.put_along_axis(mask, chosen, True, axis=1)
    return mask


class DistributionBaseline(Params):
    """Shared machinery: levels of the label, per-pair probabilities, sampling, top-k ballots.

    Subclasses implement ``_fit`` and ``_probabilities(pairs) -> (n_pairs x n_levels)`` (rows of NaN
    mean "cannot predict"); for top-k votes ``_item_weights(pairs) -> (n_pairs,)`` weights."""

    name = "baseline"
    supports_topk = True

    def fit(self, train: CrowdDataset) -> Self:
        label = train.label
        if label.kind_.free_text:
            raise ConfigError(f"the '{self.name}' baseline cannot write free text (label kind 'text')")
        if label.kind_.votes and not self.supports_topk:
            raise ConfigError(f"the '{self.name}' baseline is not defined for top-k votes")
        self.label_ = label
        self.levels_ = _levels(train)
        resp = train.responses
        self.train_tasks_ = resp["task"].astype(str).to_numpy()
        self.train_workers_ = resp["worker"].astype(str).to_numpy()
        if label.kind_.votes:
            self.train_codes_ = pd.to_numeric(resp["label"]).to_numpy(dtype=float)  # 0/1 votes
        else:
            self.train_codes_ = _level_codes(train.label_codes(), self.levels_, label)
        counts = np.bincount(self.train_codes_.astype(int), minlength=len(self.levels_)).astype(float) \
            if not label.kind_.votes else np.ones(2)
        self.global_ = counts / counts.sum()
        self._fit(train)
        return self

    def _fit(self, train: CrowdDataset) -> None:
        pass

    def sample(self, tasks: pd.DataFrame, workers: pd.DataFrame, *, pairs: pd.DataFrame | None = None,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        if not hasattr(self, "label_"):
            raise ConfigError(f"the '{self.name}' method must be fitted before it can sample")
        generator = make_rng(random_state)
        pairs = all_pairs(tasks, workers) if pairs is None else pairs
        missing = [c for c in ("task", "worker") if c not in pairs.columns]
        if missing:
            raise ConfigError(f"pairs need the columns task and worker (missing: {', '.join(missing)})")
        out = pd.DataFrame({"task": pairs["task"].astype(str).to_numpy(),
                            "worker": pairs["worker"].astype(str).to_numpy()})
        if self.label_.kind_.votes:
            out["label"] = self._ballots(out, workers, generator)
            return out
        probs = self._probabilities(out, tasks, workers)
        unknown = np.isnan(probs).any(axis=1)
        codes = draw_levels(np.where(unknown[:, None], 1.0, probs), generator)
        values = self.levels_[codes]
        if self.label_.kind_.nominal:
            assert self.label_.categories is not None
            labels = pd.Series(np.asarray(self.label_.categories, dtype=object)[codes.astype(int)], dtype=object)
            labels[unknown] = np.nan
            out["label"] = labels.to_numpy()
        else:
            out["label"] = np.where(unknown, np.nan, values)
        return out

    # ------------------------------------------------------------------ hooks
    def _probabilities(self, pairs: pd.DataFrame, tasks: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _item_weights(self, pairs: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _ballots(self, pairs: pd.DataFrame, workers: pd.DataFrame, generator: np.random.Generator) -> np.ndarray:
        k = int(self.label_.k or 1)
        weights = self._item_weights(pairs, workers)
        labels = np.zeros(len(pairs), dtype=int)
        voters = pd.Index(pd.unique(pairs["worker"]))
        v = voters.get_indexer(pairs["worker"])
        order = np.argsort(v, kind="stable")
        sizes = np.bincount(v, minlength=len(voters))
        if (sizes < k).any():
            bad = voters[int(np.flatnonzero(sizes < k)[0])]
            raise ConfigError(f"voter '{bad}' has {int(sizes.min())} candidate items in the pairs; "
                              f"a top-k ballot needs at least k={k}")
        ends = np.cumsum(sizes)
        for size in np.unique(sizes):  # voters with the same number of candidates form one matrix
            rows = np.flatnonzero(sizes == size)
            idx = order[(ends[rows] - size)[:, None] + np.arange(size)[None, :]]
            mask = top_k_without_replacement(weights[idx], k, generator)
            labels[idx[mask]] = 1
        return labels


# ---------------------------------------------------------------- helpers
def _levels(train: CrowdDataset) -> np.ndarray:
    label = train.label
    if label.kind_.on_levels:
        return label.levels
    values = np.unique(train.label_codes())
    if len(values) > _MAX_CONTINUOUS_LEVELS:
        values = np.quantile(train.label_codes(), (np.arange(_MAX_CONTINUOUS_LEVELS) + 0.5) / _MAX_CONTINUOUS_LEVELS)
    return np.asarray(values, dtype=float)


def _level_codes(values: np.ndarray, levels: np.ndarray, label: LabelSpec) -> np.ndarray:
    """Index of each value's level (nearest level for continuous labels)."""
    if not label.kind_.on_levels:
        mids = (levels[:-1] + levels[1:]) / 2
        return np.searchsorted(mids, values)
    return np.searchsorted(levels, values)


def _counts_by(keys: np.ndarray, codes: np.ndarray, n_levels: int) -> tuple[pd.Index, np.ndarray]:
    """Distinct keys and their (n_keys x n_levels) label counts."""
    index = pd.Index(pd.unique(keys))
    k = index.get_indexer(keys)
    flat = np.bincount(k * n_levels + codes.astype(int), minlength=len(index) * n_levels)
    return index, flat.reshape(len(index), n_levels).astype(float)


# ---------------------------------------------------------------- the baselines
class UniformRandom(DistributionBaseline):
    """Every level of the scale equally likely (continuous labels: uniform over the scale, else over
    the training range); top-k: ``k`` items uniformly at random."""

    name = "random"

    def _fit(self, train: CrowdDataset) -> None:
        values = train.label_codes()
        lo, hi = (train.label.scale if train.label.scale is not None else (values.min(), values.max()))
        self.range_ = (float(lo), float(hi))

    def sample(self, tasks: pd.DataFrame, workers: pd.DataFrame, *, pairs: pd.DataFrame | None = None,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        if getattr(self, "label_", None) is not None and not self.label_.kind_.on_levels:
            generator = make_rng(random_state)
            pairs = all_pairs(tasks, workers) if pairs is None else pairs
            out = pd.DataFrame({"task": pairs["task"].astype(str).to_numpy(),
                                "worker": pairs["worker"].astype(str).to_numpy()})
            out["label"] = generator.uniform(*self.range_, size=len(out))
            return out
        return super().sample(tasks, workers, pairs=pairs, random_state=random_state)

    def _probabilities(self, pairs: pd.DataFrame, tasks: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        return np.full((len(pairs), len(self.levels_)), 1.0 / len(self.levels_))

    def _item_weights(self, pairs: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        return np.ones(len(pairs))


class GlobalDistribution(DistributionBaseline):
    """``P(y) = share of training responses with label y``, the same for every task and worker.
    Top-k: item ``i`` is picked with weight ``votes_i + smoothing`` (its training popularity; an item
    never seen in training gets the mean weight)."""

    name = "global"

    def __init__(self, smoothing: float = 1.0) -> None:
        self.smoothing = smoothing

    def _fit(self, train: CrowdDataset) -> None:
        if train.label.kind_.votes:
            votes = pd.Series(self.train_codes_, index=self.train_tasks_).groupby(level=0).sum()
            self.popularity_ = votes + self.smoothing

    def _probabilities(self, pairs: pd.DataFrame, tasks: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        return np.tile(self.global_, (len(pairs), 1))

    def _item_weights(self, pairs: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        w = self.popularity_.reindex(pairs["task"].to_numpy()).to_numpy(dtype=float)
        return np.where(np.isnan(w), float(self.popularity_.mean()), w)


class PerTaskEmpirical(DistributionBaseline):
    """``P(y | t) = share of the training workers' responses to task t with label y``.

    Seen tasks only: a task without training responses gets a NaN label (the metrics then leave it
    out and report the coverage); the runner skips this method on task and both splits. Not defined
    for top-k votes (an item's only statistic is its popularity: use ``global``)."""

    name = "per-task"
    supports_topk = False

    def _fit(self, train: CrowdDataset) -> None:
        self.tasks_, counts = _counts_by(self.train_tasks_, self.train_codes_, len(self.levels_))
        self.task_probs_ = counts / counts.sum(axis=1, keepdims=True)

    def _probabilities(self, pairs: pd.DataFrame, tasks: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        idx = self.tasks_.get_indexer(pairs["task"].to_numpy())
        probs = np.full((len(pairs), len(self.levels_)), np.nan)
        seen = idx >= 0
        probs[seen] = self.task_probs_[idx[seen]]
        return probs


class ProfileGroup(DistributionBaseline):
    """The label distribution of people like the worker, combined with the task's on seen tasks.

    Group distribution ``P(y | x)`` for a worker with profile ``x`` over ``attributes`` (default: every
    profile column with at most ``max_levels`` distinct values, so free-text descriptions and
    continuous scores are left out):

    1. the training workers with exactly the same values on every attribute, if their responses number
       at least ``min_support``;
    2. else the average over attributes ``a`` of ``P(y | x_a)`` (training workers sharing value ``x_a``),
       using only values with at least ``min_support`` responses;
    3. else the global distribution ``P(y)``.

    Every distribution is shrunk toward ``P(y)`` with ``smoothing`` pseudo-responses:
    ``(n_y + smoothing * P(y)) / (n + smoothing)``. A missing profile value never matches.

    With ``use_task`` (default) and a task seen in training, the answer distribution is
    ``P(y | t, x) ∝ P(y | t) P(y | x) / P(y)`` (task and group as independent evidence about the label,
    a naive-Bayes combination), with ``P(y | t)`` the task's smoothed training distribution; an unseen
    task gets ``P(y | x)``. Top-k votes: ``y`` is the item voted for, so the item weights are the
    group's (smoothed) shares of votes per item, with the same back-off and ``min_support`` counted in
    votes; the task part does not apply."""

    name = "profile-group"

    def __init__(self, attributes: Sequence[str] | None = None, min_support: int = 30,
                 smoothing: float = 1.0, use_task: bool = True, max_levels: int = 20) -> None:
        self.attributes = attributes
        self.min_support = min_support
        self.smoothing = smoothing
        self.use_task = use_task
        self.max_levels = max_levels

    def _fit(self, train: CrowdDataset) -> None:
        if self.attributes is not None:
            attrs = list(self.attributes)
        else:
            attrs = [c for c in train.profile_columns if train.workers[c].nunique() <= self.max_levels]
        missing = [a for a in attrs if a not in train.workers.columns]
        if missing:
            raise ConfigError(f"profile-group: attribute '{missing[0]}' is not a worker column "
                              f"(have: {', '.join(train.profile_columns) or 'none'})")
        self.attributes_ = attrs
        profiles = train.workers.set_index(train.workers["worker"].astype(str))[attrs]
        resp_profiles = profiles.reindex(self.train_workers_)
        topk = self.label_.kind_.votes
        # target: label codes (ratings) or items (votes)
        if topk:
            self.items_ = pd.Index(pd.unique(self.train_tasks_))
            chosen = self.train_codes_ > 0
            target = self.items_.get_indexer(self.train_tasks_)[chosen]
            resp_profiles = resp_profiles[chosen]
            n_cols = len(self.items_)
            base = np.bincount(target, minlength=n_cols).astype(float)
            self.base_ = (base + self.smoothing) / (base.sum() + self.smoothing * n_cols)
        else:
            target = self.train_codes_.astype(int)
            n_cols = len(self.levels_)
            self.base_ = self.global_
        self.n_cols_ = n_cols
        self.full_table_ = self._table(self._profile_keys(resp_profiles, attrs), target, n_cols)
        self.attr_tables_ = {a: self._table(resp_profiles[a].astype(object).where(resp_profiles[a].notna(), None)
                                            .to_numpy(), target, n_cols) for a in attrs}
        if not topk:
            index, counts = _counts_by(self.train_tasks_, self.train_codes_, n_cols)
            n = counts.sum(axis=1, keepdims=True)
            self.tasks_ = index
            self.task_probs_ = (counts + self.smoothing * self.global_) / (n + self.smoothing)

    @staticmethod
    def _profile_keys(frame: pd.DataFrame, attrs: list[str]) -> np.ndarray:
        if not attrs:
            return np.full(len(frame), None, dtype=object)
        complete = frame.notna().all(axis=1).to_numpy()
        columns = [frame[a].to_numpy(dtype=object) for a in attrs]
        keys = np.array(["\x1f".join(map(str, row)) for row in zip(*columns, strict=True)], dtype=object)
        keys[~complete] = None
        return keys

    def _table(self, keys: np.ndarray, target: np.ndarray, n_cols: int) -> dict[Any, np.ndarray]:
        """Smoothed distributions of the groups with enough support (key None = missing, skipped)."""
        ok = np.array([k is not None for k in keys], dtype=bool)
        if not ok.any():
            return {}
        index, counts = _counts_by(keys[ok], target[ok], n_cols)
        n = counts.sum(axis=1)
        table = {}
        for key, row, size in zip(index, counts, n, strict=True):
            if size >= self.min_support:
                table[key] = (row + self.smoothing * self.base_) / (size + self.smoothing)
        return table

    def group_distribution(self, profile: pd.Series) -> np.ndarray:
        """``P(y | x)`` (ratings) or the item weights (votes) for one worker profile, with back-off."""
        values = [profile.get(a) for a in self.attributes_]
        if self.attributes_ and all(pd.notna(v) for v in values):
            key = "\x1f".join(str(v) for v in values)
            if key in self.full_table_:
                return self.full_table_[key]
        parts = [self.attr_tables_[a][profile.get(a)] for a in self.attributes_
                 if pd.notna(profile.get(a)) and profile.get(a) in self.attr_tables_[a]]
        if parts:
            return np.mean(parts, axis=0)
        return self.base_

    def _worker_distributions(self, workers_in_pairs: np.ndarray, workers: pd.DataFrame) -> np.ndarray:
        table = workers.assign(worker=workers["worker"].astype(str)).drop_duplicates("worker").set_index("worker")
        uniq, inverse = np.unique(workers_in_pairs, return_inverse=True)
        dists = []
        for w in uniq:
            profile = table.loc[w] if w in table.index else pd.Series(dtype=object)
            dists.append(self.group_distribution(profile))
        return np.asarray(dists)[inverse]

    def _probabilities(self, pairs: pd.DataFrame, tasks: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        group = self._worker_distributions(pairs["worker"].to_numpy(), workers)
        if not self.use_task:
            return group
        idx = self.tasks_.get_indexer(pairs["task"].to_numpy())
        seen = idx >= 0
        probs = group.copy()
        combined = self.task_probs_[idx[seen]] * group[seen] / np.clip(self.global_, 1e-12, None)
        probs[seen] = combined / combined.sum(axis=1, keepdims=True)
        return probs

    def _item_weights(self, pairs: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        shares = self._worker_distributions(pairs["worker"].to_numpy(), workers)
        col = self.items_.get_indexer(pairs["task"].to_numpy())
        w = np.where(col >= 0, shares[np.arange(len(pairs)), np.maximum(col, 0)], np.nan)
        return np.where(np.isnan(w), np.nanmean(self.base_), w)


# ---------------------------------------------------------------- a linear model of the answer histogram
def reference_features(reference: pd.DataFrame | None, tasks: Sequence[str]) -> np.ndarray:
    """The numeric columns of an LLM reference table (``y_ref``, the answer distribution ``p_*`` and the
    hidden state ``h_*`` when it has one; index or column ``task``) for ``tasks``, in that order; NaN
    where a task has no reference."""
    from crowdllm.crowd.reference import hidden_columns

    if reference is None:
        return np.zeros((len(tasks), 0))
    frame = reference.set_index("task") if "task" in reference.columns else reference
    frame = frame[~frame.index.astype(str).duplicated(keep="first")]
    frame.index = frame.index.astype(str)
    cols = ["y_ref", *[c for c in frame.columns if str(c).startswith("p_")]] if "y_ref" in frame.columns \
        else [c for c in frame.columns if str(c).startswith("p_")]
    if not cols:
        raise ConfigError("the reference needs a y_ref column or p_* columns")
    cols += hidden_columns(frame)
    values = frame[cols].apply(pd.to_numeric, errors="coerce").reindex([str(t) for t in tasks])
    return values.to_numpy(dtype=float)


class LinearText(DistributionBaseline):
    """Per-task answer distribution by ridge regression from what is known about the task.

    Inputs ``x_t``: the text embedding (``embedder``), the structured attributes, and with
    ``reference`` the LLM reference's ``y_ref``, answer distribution ``p_*`` and hidden state ``h_*``
    (its whole state, or with ``hidden_components`` its first principal components; a task without a
    reference gets the training mean and a missing flag; the reference's numbers are standardised).
    ``scaling_``: the inputs are either all standardised over the training tasks (one ridge strength
    then suits an embedding and a probability alike) or used as given (the embedding's small numbers
    then cost more than the reference's: a strong reference wins on little data), whichever scores
    better on the held-out training tasks, together with ``alpha``. On POPQUORN's inner validation task
    splits (5 seeds, population MAE / WD of text+reference) standardised with the whole state scored 0.432
    / 0.494, with 32 components 0.446 / 0.508, as given with 32 components (the code before) 0.443 /
    0.503; text-ridge 0.482 / 0.542 vs 0.485 / 0.545. Target: the task's share of answers on
    each level (top-k: the share of voters choosing the item), each training task weighted by its
    number of answers. ``W = argmin sum_t n_t |h_t - [x_t, 1] W|^2 + alpha |W|^2`` (the intercept
    is not penalised). ``alpha`` is chosen from ``alphas`` by the mean 1-Wasserstein distance between
    prediction and histogram on ``valid_fraction`` of the training tasks (absolute error of the
    vote share for top-k), then refitted on all of them. A prediction is clipped at ``floor`` and
    renormalised. Ignores who answers.

    ``reference``: a frame indexed by task (or with a ``task`` column) covering the tasks to be
    predicted, or a callable ``tasks -> frame`` asked for the tasks it is given."""

    name = "text-ridge"

    def __init__(self, embedder: Any = "auto", reference: Any = None, alphas: Sequence[float] = RIDGE_ALPHAS,
                 valid_fraction: float = 0.2, floor: float = 1e-3, random_state: int = 0,
                 hidden_components: int | None = None) -> None:
        self.embedder = embedder
        self.reference = reference
        self.hidden_components = hidden_components
        self.alphas = alphas
        self.valid_fraction = valid_fraction
        self.floor = floor
        self.random_state = random_state

    # ------------------------------------------------------------------ inputs
    def _reference_for(self, tasks: pd.DataFrame) -> pd.DataFrame | None:
        if self.reference is None:
            return None
        ref = self.reference(tasks) if callable(self.reference) else self.reference
        if not isinstance(ref, pd.DataFrame):
            raise ConfigError("reference must be a frame (y_ref, p_* columns) or a function returning one")
        return ref

    def _inputs(self, tasks: pd.DataFrame) -> np.ndarray:
        emb, meta = self.featurizer_.transform(tasks)
        parts = [np.asarray(emb, float), np.asarray(meta, float)]
        if self.reference is not None:
            r = self._reduced(reference_features(self._reference_for(tasks), tasks["task"].astype(str).tolist()))
            if r.shape[1] != len(self.ref_mean_):
                raise ConfigError(f"the reference has {r.shape[1]} numeric columns here but had "
                                  f"{len(self.ref_mean_)} when the baseline was fitted")
            missing = np.isnan(r).any(axis=1, keepdims=True)
            r = np.where(np.isnan(r), self.ref_mean_, r)
            parts += [(r - self.ref_mean_) / self.ref_scale_, missing.astype(float)]
        X = np.concatenate(parts, axis=1)
        if not hasattr(self, "x_mean_"):  # fitting: learn the standardisation on the training tasks
            return X
        return (X - self.x_mean_) / self.x_scale_

    def _fit_hidden(self, ref: pd.DataFrame, r: np.ndarray) -> None:
        """The LLM's hidden states (the reference's last ``h_*`` columns): the whole state, or with
        ``hidden_components`` its first principal components over the training tasks."""
        from crowdllm.crowd.reference import fit_hidden_basis, hidden_columns

        self.n_hidden_ = len(hidden_columns(ref))
        self.hidden_basis_ = (fit_hidden_basis(r[:, -self.n_hidden_:], self.hidden_components)
                              if self.n_hidden_ and self.hidden_components is not None else None)

    def _reduced(self, r: np.ndarray) -> np.ndarray:
        if not getattr(self, "n_hidden_", 0) or self.hidden_basis_ is None:
            return r
        from crowdllm.crowd.reference import project_hidden

        h = project_hidden(r[:, -self.n_hidden_:], self.hidden_basis_, missing_as_mean=False)  # NaN: flagged later
        return np.concatenate([r[:, :-self.n_hidden_], h], axis=1)

    # ------------------------------------------------------------------ fitting
    @staticmethod
    def _solve(X: np.ndarray, H: np.ndarray, w: np.ndarray, alphas: Sequence[float]
               ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Weighted ridge with an unpenalised intercept, one ``(W, b)`` per alpha (alpha per average task)."""
        from crowdllm.belief.calibration import weighted_ridge

        return weighted_ridge(X, H, w, tuple(float(a) * float(np.mean(w)) for a in alphas))

    def _predict(self, X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        P = X @ W + b
        if self.label_.kind_.votes:
            return np.clip(P[:, 0], self.floor, 1.0)
        P = np.clip(P, self.floor, None)
        return P / P.sum(axis=1, keepdims=True)

    def _loss(self, P: np.ndarray, H: np.ndarray, w: np.ndarray) -> float:
        if self.label_.kind_.votes:
            return float(np.average(np.abs(P - H[:, 0]), weights=w))
        if self.label_.kind_.nominal:
            return float(np.average(0.5 * np.abs(P - H).sum(axis=1), weights=w))
        return float(np.average(distribution_wasserstein(P, H, self.levels_), weights=w))

    def _fit(self, train: CrowdDataset) -> None:
        from crowdllm.belief.embeddings import TaskFeaturizer, TextEmbedder

        tasks = train.tasks.reset_index(drop=True).assign(task=lambda f: f["task"].astype(str))
        embedder = TextEmbedder(self.embedder) if isinstance(self.embedder, str) else self.embedder
        self.featurizer_ = TaskFeaturizer(embedder).fit(tasks)
        ti = pd.Index(tasks["task"]).get_indexer(self.train_tasks_)
        if self.label_.kind_.votes:
            n_voters = max(len(set(self.train_workers_)), 1)
            votes = np.bincount(ti, weights=self.train_codes_, minlength=len(tasks))
            H, n = (votes / n_voters)[:, None], np.full(len(tasks), float(n_voters))
        else:
            C = np.zeros((len(tasks), len(self.levels_)))
            np.add.at(C, (ti, self.train_codes_.astype(int)), 1.0)
            n = C.sum(axis=1)
            H = C / np.maximum(n, 1)[:, None]
        keep = n > 0
        if self.reference is not None:
            r = reference_features(self._reference_for(tasks), tasks["task"].tolist())
            if r.shape[1] == 0:
                raise ConfigError("the reference has no numeric columns (y_ref, p_*)")
            self._fit_hidden(self._reference_for(tasks), r[keep])
            r = self._reduced(r)
            self.ref_mean_ = np.nanmean(np.where(np.isnan(r[keep]), np.nan, r[keep]), axis=0)
            self.ref_mean_ = np.where(np.isnan(self.ref_mean_), 0.0, self.ref_mean_)
            sd = np.nanstd(r[keep], axis=0)
            self.ref_scale_ = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        for attr in ("x_mean_", "x_scale_"):
            self.__dict__.pop(attr, None)
        raw, H, n = self._inputs(tasks)[keep], H[keep], n[keep]
        sd = raw.std(axis=0)
        scalings = {"standardised": (raw.mean(axis=0), np.where(sd > 1e-12, sd, 1.0)),
                    "as given": (np.zeros(raw.shape[1]), np.ones(raw.shape[1]))}
        alphas = [float(a) for a in self.alphas]
        if not alphas or min(alphas) < 0:
            raise ConfigError(f"alphas={self.alphas!r}: give ridge strengths >= 0")
        held = np.random.default_rng(self.random_state).random(len(raw)) < self.valid_fraction
        self.validation_loss_: dict[str, dict[float, float]] = {}
        self.scaling_, self.alpha_ = "standardised", alphas[len(alphas) // 2]
        if len(alphas) > 1 and held.sum() >= 5 and (~held).sum() >= 5:
            for name, (mean, scale) in scalings.items():
                X = (raw - mean) / scale
                self.validation_loss_[name] = {a: self._loss(self._predict(X[held], W, b), H[held], n[held])
                                               for a, (W, b) in zip(alphas, self._solve(X[~held], H[~held], n[~held],
                                                                                        alphas), strict=True)}
            self.scaling_, self.alpha_ = min(((name, a) for name, d in self.validation_loss_.items() for a in d),
                                             key=lambda na: self.validation_loss_[na[0]][na[1]])
        self.x_mean_, self.x_scale_ = scalings[self.scaling_]
        X = (raw - self.x_mean_) / self.x_scale_
        self.coef_, self.intercept_ = self._solve(X, H, n, [self.alpha_])[0]

    # ------------------------------------------------------------------ predicting
    def predict_proba(self, tasks: pd.DataFrame) -> pd.DataFrame:
        """Expected answer distribution per task (index task, one column per level); top-k: one column,
        the share of voters choosing the item."""
        if not hasattr(self, "coef_"):
            raise ConfigError(f"the '{self.name}' method must be fitted before it can predict")
        frame = tasks.drop_duplicates("task").reset_index(drop=True).assign(task=lambda f: f["task"].astype(str))
        P = self._predict(self._inputs(frame), self.coef_, self.intercept_)
        cols = ["share"] if self.label_.kind_.votes else list(self.levels_)
        return pd.DataFrame(P.reshape(len(frame), -1), index=pd.Index(frame["task"], name="task"), columns=cols)

    def sample(self, tasks: pd.DataFrame, workers: pd.DataFrame, *, pairs: pd.DataFrame | None = None,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        self._probs_now = self.predict_proba(tasks) if hasattr(self, "coef_") else None
        try:
            return super().sample(tasks, workers, pairs=pairs, random_state=random_state)
        finally:
            self._probs_now = None

    def _probabilities(self, pairs: pd.DataFrame, tasks: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        assert self._probs_now is not None
        return self._probs_now.reindex(pairs["task"].astype(str)).to_numpy(dtype=float)

    def _item_weights(self, pairs: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        assert self._probs_now is not None
        return self._probs_now["share"].reindex(pairs["task"].astype(str)).to_numpy(dtype=float)
