"""How close a predicted (virtual) crowd is to the real one, task by task.

Inputs are two response frames (``task``, ``worker``, ``label``) for the same test tasks: ``pred``,
the virtual responses (one per held-out real response), and ``gold``, the held-out real responses;
plus the :class:`~crowdllm.data.LabelSpec`. docs/metrics.md has every formula; in short, with ``T``
the scored tasks (tasks in gold that have at least one predicted label), ``P_t`` / ``G_t`` the
predicted / gold labels of task ``t``, and ``A`` an aggregator (mean, median, MV, DS, GLAD):

- ``a_t = A(pred)[t]``, ``g_t = A(gold)[t]``: the *same* aggregator is fitted separately on the
  predicted and on the gold responses of the test tasks (DS and GLAD see all test tasks at once).
- ``mae_A  = mean_{t in T} |a_t - g_t|``; ``rmse_A = sqrt(mean_{t in T} (a_t - g_t)^2)``
- ``cs_raw_A = <a, g> / (|a| |g|)`` over the vectors of per-task aggregates;
  ``cs_centered_A`` = the same after subtracting each vector's mean (the Pearson correlation).
- ``cs_dist = mean_t <h(P_t), h(G_t)> / (|h(P_t)| |h(G_t)|)`` with ``h`` the histogram over the
  scale's levels (not aggregator dependent; reported with aggregator ``"-"``).
- ``avg_wd = mean_t W1(P_t, G_t)``, the 1-Wasserstein distance between the two samples of labels
  (``scipy.stats.wasserstein_distance``; computed from the CDFs over the levels when every label is
  a level, which gives the same number faster).
- ``coverage = |T| / |tasks in gold|``: a method that cannot predict some tasks returns NaN labels
  for them; those rows are dropped and the tasks left out of every other metric.

Top-k votes (``label.kind_.votes``): the per-item vote count ``c_i = sum of 0/1 labels`` replaces
the per-task aggregate (aggregator ``"count"``): ``mae``, ``rmse``, ``cs_raw``, ``cs_centered`` over
items, and ``wd = W1({c_i^pred}, {c_i^gold})`` between the two *sets* of per-item counts (our reading
of the paper's Table 5 WD, which the paper does not define). The predicted crowd must have as many
voters as the gold one.

Two protocols (column ``protocol`` where a table holds both):

- ``matched`` (:data:`MATCHED`, the paper's): one virtual answer per held-out real answer, so each
  score includes the virtual crowd's own sampling noise at gold size (about 9 answers per text). Its
  floor is the *sampling oracle* (:func:`crowdllm.evaluate.noise.sampling_oracle`): the task's
  population distribution itself, sampled at gold size.
- ``population`` (:data:`POPULATION`): each method's per-task answer distribution scored against
  gold, either by a large virtual crowd (``per_answer`` virtual answers per real one,
  :func:`replicate_pairs` + :func:`evaluate_population`) or from the method's expected distribution
  (:func:`evaluate_distributions`). Its floor is the noise ceiling (the population distribution
  scored against gold-sized samples).

Categorical labels: the numeric scores make no sense for unordered categories, so each categorical
aggregator (MV, DS, GLAD) gets ``error_rate = mean_t [a_t != g_t]``, and the distribution metrics are
``cs_dist`` and ``avg_tvd = mean_t TV(P_t, G_t)`` (total variation distance of the two label shares).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from crowdllm.aggregate import NUMERIC_ONLY, get_aggregator
from crowdllm.aggregate._base import check_responses
from crowdllm.data.dataset import LabelSpec, category_text
from crowdllm.errors import ConfigError, CrowdDataError

#: Aggregator column value for metrics that do not depend on an aggregator.
NO_AGGREGATOR = "-"
#: Aggregator column value of the top-k vote metrics.
COUNT = "count"
DEFAULT_AGGREGATORS: tuple[str, ...] = ("mean", "median", "mv", "ds", "glad")
AGGREGATE_METRICS: tuple[str, ...] = ("mae", "rmse", "cs_raw", "cs_centered")
DISTRIBUTION_METRICS: tuple[str, ...] = ("cs_dist", "avg_wd")
VOTE_METRICS: tuple[str, ...] = ("mae", "rmse", "cs_raw", "cs_centered", "wd")
RESULT_COLUMNS: tuple[str, ...] = ("aggregator", "metric", "value")
#: The protocols a score can be measured under (see the module docstring).
MATCHED = "matched"
POPULATION = "population"
PROTOCOLS: tuple[str, ...] = (MATCHED, POPULATION)
_CONTINUOUS_BINS = 10


# ---------------------------------------------------------------- vector scores
def mae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference; NaN for empty input."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.mean(np.abs(a - b))) if a.size else float("nan")


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    """Root mean squared difference; NaN for empty input."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.sqrt(np.mean((a - b) ** 2))) if a.size else float("nan")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """``<a, b> / (|a| |b|)``; NaN when either vector is all zeros (or empty)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a, b) / norm) if norm > 0 else float("nan")


def centered_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine after subtracting each vector's mean (= Pearson's r); NaN if either is constant."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0:
        return float("nan")
    return cosine(a - a.mean(), b - b.mean())


def _rowwise_cosine(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(h1, axis=1) * np.linalg.norm(h2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, np.sum(h1 * h2, axis=1) / np.where(norm > 0, norm, 1.0), np.nan)


# ---------------------------------------------------------------- labels on the metric axis
def label_values(labels: pd.Series, label: LabelSpec) -> np.ndarray:
    """Labels as floats: numbers for numeric kinds, category index for categorical labels.

    Categories are matched as :func:`~crowdllm.data.dataset.category_text` reads them, as the loader
    does: numbers used as codes (``--categories=-1,1`` on answers read as ``-1.0``/``1.0``) match."""
    if label.kind_.free_text:
        raise ConfigError("free-text labels are not scored by the numeric metrics (label kind 'text')")
    if label.kind_.nominal:
        assert label.categories is not None
        lookup = {category_text(c): float(i) for i, c in enumerate(label.categories)}
        codes = labels.map(category_text).map(lookup)
        if codes.isna().any():
            bad = labels[codes.isna()].iloc[0]
            raise CrowdDataError(f"label '{bad}' is not one of the categories {list(label.categories)}",
                                 column="label")
        return codes.to_numpy(dtype=float)
    values = pd.to_numeric(labels, errors="coerce")
    if values.isna().any():
        bad = labels[values.isna()].iloc[0]
        raise CrowdDataError(f"label '{bad}' is not a number", column="label")
    return values.to_numpy(dtype=float)


def histogram_levels(label: LabelSpec, *samples: np.ndarray) -> np.ndarray:
    """Bin centres of the histograms of ``cs_dist``: the scale's levels, or for continuous labels
    ``10`` equal bins over the scale (over the pooled samples' range when there is no scale)."""
    if label.kind_.on_levels:
        return label.levels
    if label.scale is not None:
        lo, hi = label.scale
    else:
        pooled = np.concatenate([np.asarray(s, float) for s in samples]) if samples else np.zeros(1)
        lo, hi = float(pooled.min()), float(pooled.max())
        if hi <= lo:
            hi = lo + 1.0
    edges = np.linspace(lo, hi, _CONTINUOUS_BINS + 1)
    return (edges[:-1] + edges[1:]) / 2


def level_index(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest level for each value (values between levels go to the nearer one)."""
    if len(levels) == 1:
        return np.zeros(len(values), dtype=int)
    mids = (levels[:-1] + levels[1:]) / 2
    return np.searchsorted(mids, values, side="left")


def task_histograms(task_idx: np.ndarray, values: np.ndarray, n_tasks: int, levels: np.ndarray) -> np.ndarray:
    """``(n_tasks, n_levels)`` label counts per task (values snapped to the nearest level)."""
    k = level_index(values, levels)
    flat = np.bincount(task_idx * len(levels) + k, minlength=n_tasks * len(levels))
    return flat.reshape(n_tasks, len(levels)).astype(float)


# ---------------------------------------------------------------- distribution metrics
def distribution_wasserstein(p: np.ndarray, q: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Row-wise ``W1`` between two distributions over the same ``levels`` (rows of ``p`` and ``q`` sum
    to 1): ``sum_j |F_p(l_j) - F_q(l_j)| (l_{j+1} - l_j)``."""
    return np.abs(np.cumsum(p, axis=1) - np.cumsum(q, axis=1))[:, :-1] @ np.diff(levels)


def per_task_wasserstein(pred_t: np.ndarray, pred_v: np.ndarray, gold_t: np.ndarray, gold_v: np.ndarray,
                         n_tasks: int, levels: np.ndarray | None = None) -> np.ndarray:
    """``W1`` between the predicted and gold label samples of each task (NaN where either is empty).

    With ``levels`` and every value on a level, ``W1 = sum_j |F_P(l_j) - F_G(l_j)| (l_{j+1} - l_j)``
    from the two empirical CDFs, vectorised over tasks; otherwise scipy's function task by task."""
    if levels is not None and np.isin(pred_v, levels).all() and np.isin(gold_v, levels).all():
        hp = task_histograms(pred_t, pred_v, n_tasks, levels)
        hg = task_histograms(gold_t, gold_v, n_tasks, levels)
        np_, ng = hp.sum(axis=1, keepdims=True), hg.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            cdf_gap = np.abs(np.cumsum(hp, axis=1) / np_ - np.cumsum(hg, axis=1) / ng)[:, :-1]
        out = cdf_gap @ np.diff(levels)
        out[(np_[:, 0] == 0) | (ng[:, 0] == 0)] = np.nan
        return out
    out = np.full(n_tasks, np.nan)
    p_order, g_order = np.argsort(pred_t, kind="stable"), np.argsort(gold_t, kind="stable")
    p_split = np.split(pred_v[p_order], np.cumsum(np.bincount(pred_t, minlength=n_tasks))[:-1])
    g_split = np.split(gold_v[g_order], np.cumsum(np.bincount(gold_t, minlength=n_tasks))[:-1])
    for t in range(n_tasks):
        if len(p_split[t]) and len(g_split[t]):
            out[t] = wasserstein_distance(p_split[t], g_split[t])
    return out


def avg_wasserstein(pred: pd.DataFrame, gold: pd.DataFrame, label: LabelSpec) -> float:
    """``mean_t W1(P_t, G_t)`` over tasks present in both frames."""
    sp = _Scored.build(pred, gold, label)
    return float(np.nanmean(sp.wasserstein())) if sp.n_tasks else float("nan")


def cs_dist(pred: pd.DataFrame, gold: pd.DataFrame, label: LabelSpec) -> float:
    """``mean_t cos(h(P_t), h(G_t))`` over tasks present in both frames (h: histogram over levels)."""
    sp = _Scored.build(pred, gold, label)
    return float(np.nanmean(sp.cs_dist_per_task())) if sp.n_tasks else float("nan")


# ---------------------------------------------------------------- the scored pair of crowds
class _Scored:
    """Predicted and gold responses restricted to the scored tasks, integer-coded once."""

    def __init__(self, pred: pd.DataFrame, gold: pd.DataFrame, label: LabelSpec, tasks: pd.Index,
                 n_gold_tasks: int) -> None:
        self.pred, self.gold, self.label, self.tasks = pred, gold, label, tasks
        self.n_gold_tasks = n_gold_tasks
        self.pred_t = tasks.get_indexer(pred["task"])
        self.gold_t = tasks.get_indexer(gold["task"])
        self.pred_v = label_values(pred["label"], label)
        self.gold_v = label_values(gold["label"], label)

    @classmethod
    def build(cls, pred: pd.DataFrame, gold: pd.DataFrame, label: LabelSpec) -> _Scored:
        if label.kind_.free_text:
            raise ConfigError("free-text labels are not scored by the numeric metrics (label kind 'text')")
        gold = check_responses(gold)
        pred = _drop_unpredicted(pred)
        gold_tasks = pd.Index(np.unique(gold["task"].to_numpy().astype(str)))
        tasks = gold_tasks.intersection(pd.Index(pred["task"].unique())).sort_values()
        pred = pred[pred["task"].isin(tasks)].reset_index(drop=True)
        gold = gold[gold["task"].isin(tasks)].reset_index(drop=True)
        return cls(pred, gold, label, tasks, len(gold_tasks))

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def coverage(self) -> float:
        return self.n_tasks / self.n_gold_tasks if self.n_gold_tasks else float("nan")

    def levels(self) -> np.ndarray:
        return histogram_levels(self.label, self.pred_v, self.gold_v)

    def cs_dist_per_task(self) -> np.ndarray:
        levels = self.levels()
        hp = task_histograms(self.pred_t, self.pred_v, self.n_tasks, levels)
        hg = task_histograms(self.gold_t, self.gold_v, self.n_tasks, levels)
        return _rowwise_cosine(hp, hg)

    def tvd_per_task(self) -> np.ndarray:
        levels = self.levels()
        hp = task_histograms(self.pred_t, self.pred_v, self.n_tasks, levels)
        hg = task_histograms(self.gold_t, self.gold_v, self.n_tasks, levels)
        return 0.5 * np.abs(hp / hp.sum(axis=1, keepdims=True) - hg / hg.sum(axis=1, keepdims=True)).sum(axis=1)

    def wasserstein(self) -> np.ndarray:
        levels = self.label.levels if self.label.kind_.on_levels else None
        return per_task_wasserstein(self.pred_t, self.pred_v, self.gold_t, self.gold_v, self.n_tasks, levels)

    def aggregates(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The aggregator fitted on pred and on gold, both as floats on the metric axis, task-aligned."""
        a = get_aggregator(name).fit_predict(self.pred).reindex(self.tasks)
        g = get_aggregator(name).fit_predict(self.gold).reindex(self.tasks)
        if self.label.kind_.nominal:
            return label_values(a, self.label), label_values(g, self.label)
        return a.to_numpy(dtype=float), g.to_numpy(dtype=float)


def _drop_unpredicted(pred: pd.DataFrame) -> pd.DataFrame:
    """Predicted responses with a NaN label mean "cannot predict this"; they are dropped."""
    if "label" in pred.columns:
        pred = pred[pred["label"].notna()]
    return check_responses(pred)


def check_aggregators(aggregators: Sequence[str], label: LabelSpec) -> list[str]:
    """Normalise names; refuse mean/median for categorical labels (one line naming the setting)."""
    names = [str(a).strip().lower() for a in aggregators]
    for name in names:
        get_aggregator(name)  # unknown name -> ConfigError
    if label.kind_.nominal:
        bad = [n for n in names if n in NUMERIC_ONLY]
        if bad:
            raise ConfigError(f"aggregator {', '.join(bad)} needs numeric labels; categorical labels can use "
                              "mv, ds, glad")
    return names


# ---------------------------------------------------------------- top-k votes
def vote_counts(responses: pd.DataFrame, items: Sequence[str] | None = None) -> pd.Series:
    """Per-item vote count ``c_i = sum of the 0/1 labels`` (items with no row count 0)."""
    resp = _drop_unpredicted(responses)
    counts = pd.to_numeric(resp["label"]).groupby(resp["task"]).sum()
    if items is not None:
        counts = counts.reindex(pd.Index(list(items), dtype=object), fill_value=0)
    return counts.astype(float).rename("votes")


def evaluate_votes(pred: pd.DataFrame, gold: pd.DataFrame, *, per_answer: int = 1) -> pd.DataFrame:
    """MAE, RMSE, cosine (raw, centred) of predicted vs gold per-item counts, and WD between the two
    sets of counts. Items are those in gold; the predicted crowd must have ``per_answer`` times as many
    voters as the gold one (its counts are divided by ``per_answer``: the population protocol)."""
    gold = check_responses(gold)
    pred = _drop_unpredicted(pred)
    per_answer = _check_per_answer(per_answer)
    n_gold, n_pred = gold["worker"].nunique(), pred["worker"].nunique()
    if n_gold * per_answer != n_pred:
        raise ConfigError(f"the predicted crowd has {n_pred} voters but the real one has {n_gold}"
                          + (f" (x {per_answer} per real voter)" if per_answer > 1 else "")
                          + "; vote counts are only comparable for crowds of the same size")
    items = sorted(set(gold["task"]))
    c_pred = vote_counts(pred, items).to_numpy() / per_answer
    c_gold = vote_counts(gold, items).to_numpy()
    rows = [
        (COUNT, "mae", mae(c_pred, c_gold)),
        (COUNT, "rmse", rmse(c_pred, c_gold)),
        (COUNT, "cs_raw", cosine(c_pred, c_gold)),
        (COUNT, "cs_centered", centered_cosine(c_pred, c_gold)),
        (COUNT, "wd", float(wasserstein_distance(c_pred, c_gold)) if len(items) else float("nan")),
    ]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


# ---------------------------------------------------------------- everything at once
def evaluate_predictions(pred: pd.DataFrame, gold: pd.DataFrame, label: LabelSpec,
                         aggregators: Sequence[str] = DEFAULT_AGGREGATORS) -> pd.DataFrame:
    """All metrics of a predicted crowd against the real one, as a long frame ``[aggregator, metric, value]``.

    Numeric labels: for each aggregator ``mae``, ``rmse``, ``cs_raw``, ``cs_centered``; then (aggregator
    ``"-"``) ``cs_dist``, ``avg_wd`` and ``coverage``. Categorical labels: ``error_rate``, ``cs_raw`` ...
    per aggregator is replaced by ``error_rate`` only, and ``avg_wd`` by ``avg_tvd``. Top-k votes: see
    :func:`evaluate_votes` (``aggregators`` is ignored)."""
    if label.kind_.free_text:
        raise ConfigError("free-text labels are not scored by the numeric metrics (label kind 'text')")
    if label.kind_.votes:
        return evaluate_votes(pred, gold)
    names = check_aggregators(aggregators, label)
    sp = _Scored.build(pred, gold, label)
    rows: list[tuple[str, str, float]] = []
    nan = float("nan")
    for name in names:
        if sp.n_tasks == 0:
            a = g = np.array([])
        else:
            a, g = sp.aggregates(name)
        if label.kind_.nominal:
            rows.append((name, "error_rate", float(np.mean(a != g)) if a.size else nan))
            continue
        rows += [(name, "mae", mae(a, g)), (name, "rmse", rmse(a, g)),
                 (name, "cs_raw", cosine(a, g)), (name, "cs_centered", centered_cosine(a, g))]
    empty = sp.n_tasks == 0
    rows.append((NO_AGGREGATOR, "cs_dist", nan if empty else float(np.nanmean(sp.cs_dist_per_task()))))
    if label.kind_.nominal:
        rows.append((NO_AGGREGATOR, "avg_tvd", nan if empty else float(np.mean(sp.tvd_per_task()))))
    else:
        rows.append((NO_AGGREGATOR, "avg_wd", nan if empty else float(np.mean(sp.wasserstein()))))
    rows.append((NO_AGGREGATOR, "coverage", sp.coverage))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


# ---------------------------------------------------------------- the population protocol
def _check_per_answer(per_answer: int) -> int:
    if isinstance(per_answer, bool) or not isinstance(per_answer, (int, np.integer)) or per_answer < 1:
        raise ConfigError(f"per_answer={per_answer!r}: give a whole number of virtual answers per real one (>= 1)")
    return int(per_answer)


def replicate_pairs(pairs: pd.DataFrame, workers: pd.DataFrame | None = None, *, per_answer: int,
                    label: LabelSpec | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The requests of the population protocol: every (task, worker) pair ``per_answer`` times.

    Ratings and categories: the pairs are repeated block by block (copy 0 of every pair, then copy 1,
    ...), keeping the worker ids, so a method that knows the person (a digital twin) still recognises
    them; ``workers`` is returned unchanged. Top-k votes: a ballot is one voter's, so each voter becomes
    ``per_answer`` virtual voters ``"<worker>#<j>"`` with the same profile (pairs and ``workers`` both
    renamed). Returns ``(pairs, workers)``."""
    per_answer = _check_per_answer(per_answer)
    base = pairs[["task", "worker"]].astype(str).reset_index(drop=True)
    if label is not None and label.kind_.votes:
        copies = [base.assign(worker=base["worker"] + f"#{j}") for j in range(per_answer)]
        out_workers = None
        if workers is not None:
            w = workers.assign(worker=workers["worker"].astype(str)).reset_index(drop=True)
            out_workers = pd.concat([w.assign(worker=w["worker"] + f"#{j}") for j in range(per_answer)],
                                    ignore_index=True)
        return pd.concat(copies, ignore_index=True), out_workers
    return pd.concat([base] * per_answer, ignore_index=True), workers


def evaluate_population(pred: pd.DataFrame, gold: pd.DataFrame, label: LabelSpec,
                        aggregators: Sequence[str] = DEFAULT_AGGREGATORS, *, per_answer: int) -> pd.DataFrame:
    """Score a large virtual crowd (``per_answer`` virtual answers per held-out real answer, e.g. from
    :func:`replicate_pairs`) against gold with the same metrics as :func:`evaluate_predictions`.

    Histogram cosine and Wasserstein distance compare normalised distributions and every aggregator
    is fitted on the whole virtual crowd, so only the crowd's size changes; repeated (task, worker)
    pairs become distinct virtual people ``"<worker>#<copy>"`` for the aggregators that model workers
    (DS, GLAD). Top-k: vote counts divided by ``per_answer``."""
    per_answer = _check_per_answer(per_answer)
    if label.kind_.votes:
        return evaluate_votes(pred, gold, per_answer=per_answer)
    pred = _drop_unpredicted(pred)
    copy = pred.groupby(["task", "worker"], sort=False).cumcount().astype(str)
    pred = pred.assign(worker=pred["worker"] + "#" + copy)
    return evaluate_predictions(pred, gold, label, aggregators)


def evaluate_distributions(probs: pd.DataFrame, gold: pd.DataFrame, label: LabelSpec,
                           aggregators: Sequence[str] = ("mean", "median", "mv")) -> pd.DataFrame:
    """Score each task's *expected* answer distribution against the gold answers (population protocol
    without sampling noise).

    ``probs``: index = task, one column per level of the scale (``label.levels`` order; rows are
    normalised, rows with a NaN are "cannot predict"). Aggregates of a distribution: ``mean`` its
    expectation, ``median`` its lower median level, ``mv`` its most likely level; DS and GLAD model
    workers and have no meaning here. ``cs_dist`` is the cosine of the distribution with the gold
    histogram, ``avg_wd`` the 1-Wasserstein distance between the distribution and the gold labels.
    Categorical labels: ``error_rate`` of the most likely category, ``cs_dist`` and ``avg_tvd``."""
    if not label.kind_.on_levels or label.kind_.votes:
        raise ConfigError(f"expected distributions are scored for ordinal and categorical labels, not "
                          f"'{label.kind}' (use a large virtual crowd: evaluate_population)")
    names = [str(a).strip().lower() for a in aggregators]
    bad = [n for n in names if n not in ("mean", "median", "mv")]
    if bad:
        raise ConfigError(f"aggregator {', '.join(bad)} has no meaning for an expected distribution; "
                          "use mean, median, mv")
    if label.kind_.nominal:
        names = [n for n in names if n == "mv"]
    levels = np.asarray(label.levels, dtype=float)
    if probs.shape[1] != len(levels):
        raise ConfigError(f"probs has {probs.shape[1]} columns but the scale has {len(levels)} levels")
    gold = check_responses(gold)
    gold_tasks = pd.Index(np.unique(gold["task"].to_numpy().astype(str)))
    P = probs.copy()
    P.index = P.index.astype(str)
    P = P[~P.isna().any(axis=1)]
    tasks = gold_tasks.intersection(P.index).sort_values()
    p = P.reindex(tasks).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = p / p.sum(axis=1, keepdims=True)
    gold = gold[gold["task"].isin(tasks)].reset_index(drop=True)
    gt = tasks.get_indexer(gold["task"])
    gv = label_values(gold["label"], label)
    hg = task_histograms(gt, gv, len(tasks), levels)
    qg = hg / np.maximum(hg.sum(axis=1, keepdims=True), 1)
    rows: list[tuple[str, str, float]] = []
    nan = float("nan")
    for name in names:
        if name == "mean":
            a, g = p @ levels, hg @ levels / np.maximum(hg.sum(axis=1), 1)
        elif name == "median":
            a = levels[np.minimum((np.cumsum(p, axis=1) < 0.5).sum(axis=1), len(levels) - 1)]
            g = get_aggregator("median").fit_predict(gold).reindex(tasks).to_numpy(dtype=float)
        else:
            a = levels[np.argmax(p, axis=1)]
            g_lab = get_aggregator("mv").fit_predict(gold).reindex(tasks)
            g = label_values(g_lab, label) if label.kind_.nominal else g_lab.to_numpy(dtype=float)
            if label.kind_.nominal:
                a = np.argmax(p, axis=1).astype(float)
        if label.kind_.nominal:
            rows.append((name, "error_rate", float(np.mean(a != g)) if a.size else nan))
            continue
        rows += [(name, "mae", mae(a, g)), (name, "rmse", rmse(a, g)),
                 (name, "cs_raw", cosine(a, g)), (name, "cs_centered", centered_cosine(a, g))]
    empty = len(tasks) == 0
    rows.append((NO_AGGREGATOR, "cs_dist", nan if empty else float(np.nanmean(_rowwise_cosine(p, hg)))))
    if label.kind_.nominal:
        rows.append((NO_AGGREGATOR, "avg_tvd", nan if empty else float(np.mean(0.5 * np.abs(p - qg).sum(axis=1)))))
    else:
        rows.append((NO_AGGREGATOR, "avg_wd",
                     nan if empty else float(np.mean(distribution_wasserstein(p, qg, levels)))))
    rows.append((NO_AGGREGATOR, "coverage", len(tasks) / len(gold_tasks) if len(gold_tasks) else nan))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
