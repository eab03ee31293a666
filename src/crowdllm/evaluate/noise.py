"""The noise ceiling: how well can anyone do, when gold is a small sample of people?

Gold for task ``t`` is ``n_t`` held-out human responses, a finite sample of the population's answers,
so even a method that knows each task's population distribution exactly keeps some error. Two
estimates, both returned as rows of the same long frame as the methods' results:

``method = "noise-ceiling"`` (an oracle that knows the population):
    ``P_t``, the population distribution of task ``t``, is estimated by *all* responses to ``t`` in the
    full data set (``full``; when it is not given, by the gold responses themselves, which is said in
    the frame's ``attrs["variance_source"]``). Gold is modelled as ``n_t`` independent draws from
    ``P_t``.

    - mean aggregator, analytic: ``E|mean(G_t) - mu_t| ≈ sqrt(2/pi) s_t / sqrt(n_t)`` (normal
      approximation), so ``mae = mean_t sqrt(2/pi) s_t / sqrt(n_t)`` and
      ``rmse = sqrt(mean_t s_t^2 / n_t)`` (exact in expectation), with ``s_t^2`` the unbiased variance
      of the task's responses (``ddof=1``; a task with one response gets the mean of the others' ``s_t^2``).
    - everything else by simulation (``n_sim`` rounds, seeded): draw ``n_t`` responses per task with
      replacement from the task's full responses (worker ids kept, so DS and GLAD can run) and score them
      against the oracle: the aggregator fitted on the full responses of the test tasks for
      ``mae``/``rmse``/``cs_raw``/``cs_centered``; ``cs_dist = cos(h(sample), h(full))`` and
      ``avg_wd = W1(sample, full)`` per task. Scores are averaged over rounds.
    - top-k votes: the oracle count of item ``i`` is ``n p_i`` (``n`` gold voters, ``p_i`` the share of
      all voters who chose ``i``); gold is ``n`` ballots drawn with replacement from all voters, so an
      item's gold count is ``Binomial(n, p_i)``: ``mae = mean_i E|Binomial(n, p_i) - n p_i|`` and
      ``rmse = sqrt(mean_i n p_i (1 - p_i))`` exactly, the other metrics by simulation (``n_sim`` rounds).
      (Ten simulated rounds put Zurich's MAE floor 0.07 too low: 1.73 at seeds 0-4 against the exact 1.81.)

``method = "sampling-oracle"`` (the floor of the *matched* protocol, :func:`sampling_oracle`):
    a method that knows every task's population distribution ``P_t`` exactly but, like every method
    in the matched protocol, answers once per held-out real answer. As for the noise ceiling, ``P_t``
    is all responses to ``t`` and gold is simulated (``n_t`` draws from ``P_t``, so the oracle is not
    scored against the very answers it was estimated from); the oracle's crowd is ``n_t`` further
    independent draws, scored with :func:`crowdllm.evaluate.metrics.evaluate_predictions`, averaged
    over ``n_sim`` rounds. With ``per_answer = k`` it draws ``k n_t`` answers (the population
    protocol's large virtual crowd; as ``k`` grows it approaches the noise ceiling). Top-k: ``n`` (or
    ``k n``) ballots drawn from all voters against ``n`` drawn gold ballots; its count MAE and RMSE are
    exact (two independent binomial counts, ``E|Y/k - X|``), the other metrics simulated. The noise ceiling above is the floor of
    the population protocol (no sampling noise of its own); a method scored in the matched protocol
    can only reach the sampling oracle.

``method = "split-half"`` (humans against humans):
    the full responses of each test task with at least 4 responses are split at random into two halves
    (sizes ``floor(N_t/2)`` and ``ceil(N_t/2)``) and one half is scored as the prediction of the other
    with :func:`crowdllm.evaluate.metrics.evaluate_predictions`, averaged over ``n_splits`` seeded
    splits. For top-k votes two disjoint random groups of voters, each as large as the gold crowd (at most
    half of all voters), are compared, since raw counts only compare between crowds of one size.
    The halves are usually larger than the gold sample, so this is an *optimistic* floor: another crowd
    of real people of that size scores this well.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import binom, wasserstein_distance

from crowdllm._io import rng as make_rng
from crowdllm.aggregate import get_aggregator
from crowdllm.aggregate._base import check_responses
from crowdllm.data.dataset import LabelSpec
from crowdllm.errors import ConfigError
from crowdllm.evaluate.metrics import (
    COUNT,
    DEFAULT_AGGREGATORS,
    NO_AGGREGATOR,
    _rowwise_cosine,
    centered_cosine,
    check_aggregators,
    cosine,
    evaluate_population,
    evaluate_predictions,
    histogram_levels,
    label_values,
    mae,
    per_task_wasserstein,
    rmse,
    task_histograms,
)

NOISE_CEILING = "noise-ceiling"
SPLIT_HALF = "split-half"
SAMPLING_ORACLE = "sampling-oracle"
CEILING_METHODS: tuple[str, ...] = (NOISE_CEILING, SAMPLING_ORACLE, SPLIT_HALF)
_COLUMNS = ["method", "aggregator", "metric", "value"]


def noise_ceiling(gold: pd.DataFrame, label: LabelSpec, *, full: pd.DataFrame | None = None,
                  aggregators: Sequence[str] = DEFAULT_AGGREGATORS, n_sim: int = 10, n_splits: int = 3,
                  random_state: int | np.random.Generator | None = 0, with_sampling_oracle: bool = False,
                  ) -> pd.DataFrame:
    """Both ceiling estimates for the gold responses of a test set, as ``[method, aggregator, metric, value]``.

    ``full``: every response of the data set (only the gold tasks' rows are used); default: ``gold``.
    ``with_sampling_oracle``: add the matched protocol's floor (:func:`sampling_oracle`, ``n_sim`` rounds)."""
    if label.kind_.free_text:
        raise ConfigError("free-text labels are not scored by the numeric metrics (label kind 'text')")
    if n_sim < 1 or n_splits < 1:
        raise ConfigError(f"n_sim={n_sim} and n_splits={n_splits} must both be at least 1")
    gold = check_responses(gold)
    source = "full data" if full is not None else "gold only"
    full = gold if full is None else check_responses(full)
    generator = make_rng(random_state)
    if label.kind_.votes:
        oracle = _vote_oracle(gold, full, n_sim, generator)
    else:
        names = check_aggregators(aggregators, label)
        oracle = _oracle(gold, full, label, names, n_sim, generator)
    halves = split_half(full[full["task"].isin(set(gold["task"]))], label, aggregators=aggregators,
                        n_splits=n_splits, n_voters=gold["worker"].nunique() if label.kind_.votes else None,
                        random_state=generator)
    parts = [oracle, halves]
    if with_sampling_oracle:
        parts.insert(1, sampling_oracle(gold, label, full=full, aggregators=aggregators, n_sim=n_sim,
                                        random_state=generator))
    out = pd.concat(parts, ignore_index=True)[_COLUMNS]
    out.attrs["variance_source"] = source
    return out


def sampling_oracle(gold: pd.DataFrame, label: LabelSpec, *, full: pd.DataFrame | None = None,
                    aggregators: Sequence[str] = DEFAULT_AGGREGATORS, per_answer: int = 1, n_sim: int = 5,
                    random_state: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """The population distribution of each gold task sampled at gold size (``per_answer`` answers per
    gold answer) and scored against gold; ``[method, aggregator, metric, value]`` with method
    ``"sampling-oracle"``, averaged over ``n_sim`` seeded rounds (see the module docstring)."""
    if label.kind_.free_text:
        raise ConfigError("free-text labels are not scored by the numeric metrics (label kind 'text')")
    if n_sim < 1:
        raise ConfigError(f"n_sim={n_sim} must be at least 1")
    gold = check_responses(gold)
    full = gold if full is None else check_responses(full)
    generator = make_rng(random_state)
    per_answer = int(per_answer)
    frames = []
    if label.kind_.votes:
        items, ballots = _ballots(full)
        n = gold["worker"].nunique()
        for _ in range(n_sim):
            sim_gold = _ballot_frame(items, ballots[generator.integers(0, len(ballots), size=n)], "g")
            sim_pred = _ballot_frame(items, ballots[generator.integers(0, len(ballots), size=n * per_answer)], "v")
            frames.append(evaluate_population(sim_pred, sim_gold, label, per_answer=per_answer))
    else:
        names = check_aggregators(aggregators, label)
        tasks = pd.Index(sorted(set(gold["task"])))
        full = full[full["task"].isin(tasks)].reset_index(drop=True)
        missing = tasks.difference(pd.Index(full["task"].unique()))
        if len(missing):
            raise ConfigError(f"task '{missing[0]}' has gold responses but none in the full data")
        full = full.iloc[np.argsort(tasks.get_indexer(full["task"]), kind="stable")].reset_index(drop=True)
        counts = np.bincount(tasks.get_indexer(full["task"]), minlength=len(tasks))
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        n_t = gold["task"].value_counts().reindex(tasks).to_numpy()
        labels = full["label"].to_numpy()
        workers = full["worker"].to_numpy()

        def draw(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            t = np.repeat(np.arange(len(tasks)), sizes)
            return t, starts[t] + (generator.random(len(t)) * counts[t]).astype(int)

        for _ in range(n_sim):
            gt, gpick = draw(n_t)  # the gold crowd, drawn again from the population (real worker ids)
            sim_gold = pd.DataFrame({"task": tasks[gt], "worker": workers[gpick], "label": labels[gpick]})
            sim_gold = sim_gold.assign(worker=sim_gold["worker"] + "#"
                                       + sim_gold.groupby(["task", "worker"]).cumcount().astype(str))
            pt, ppick = draw(n_t * per_answer)
            sim_pred = pd.DataFrame({"task": tasks[pt], "worker": [f"v{j}" for j in range(len(ppick))],
                                     "label": labels[ppick]})
            frames.append(evaluate_predictions(sim_pred, sim_gold, label, names))
    scores = pd.concat(frames, ignore_index=True)
    scores = scores[scores["metric"] != "coverage"]
    mean = scores.groupby(["aggregator", "metric"], sort=False)["value"].agg(_nanmean_series).reset_index()
    if label.kind_.votes:  # MAE and RMSE exactly (module docstring), the rest as simulated
        exact = _exact_count_errors(n, ballots.mean(axis=0), per_answer)
        mean["value"] = [exact.get(m, v) if a == COUNT else v
                         for a, m, v in zip(mean["aggregator"], mean["metric"], mean["value"], strict=True)]
    mean.insert(0, "method", SAMPLING_ORACLE)
    return mean[_COLUMNS]


def _ballot_frame(items: list[str], ballots: np.ndarray, prefix: str) -> pd.DataFrame:
    v, i = np.nonzero(np.ones_like(ballots))
    return pd.DataFrame({"task": np.asarray(items, dtype=object)[i], "worker": [f"{prefix}{x}" for x in v],
                         "label": ballots[v, i].astype(int)})


def _nanmean_series(values: pd.Series) -> float:
    return _nanmean(values.tolist())


# ---------------------------------------------------------------- ratings and labels
def _oracle(gold: pd.DataFrame, full: pd.DataFrame, label: LabelSpec, names: list[str], n_sim: int,
            generator: np.random.Generator) -> pd.DataFrame:
    tasks = pd.Index(sorted(set(gold["task"])))
    full = full[full["task"].isin(tasks)].reset_index(drop=True)
    missing = tasks.difference(pd.Index(full["task"].unique()))
    if len(missing):
        raise ConfigError(f"task '{missing[0]}' has gold responses but none in the full data")
    n_t = gold["task"].value_counts().reindex(tasks).to_numpy()
    full_t = tasks.get_indexer(full["task"])
    full_v = label_values(full["label"], label)
    order = np.argsort(full_t, kind="stable")
    full = full.iloc[order].reset_index(drop=True)
    full_t, full_v = full_t[order], full_v[order]
    counts = np.bincount(full_t, minlength=len(tasks))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))

    rows: list[tuple[str, str, str, float]] = []
    numeric = not label.kind_.nominal
    if numeric and "mean" in names:
        var = _task_variances(full_t, full_v, len(tasks))
        rows += [(NOISE_CEILING, "mean", "mae", float(np.mean(np.sqrt(2 / np.pi) * np.sqrt(var / n_t)))),
                 (NOISE_CEILING, "mean", "rmse", float(np.sqrt(np.mean(var / n_t))))]

    oracle_agg = {name: _as_values(get_aggregator(name).fit_predict(full).reindex(tasks), label)
                  for name in names}
    levels = histogram_levels(label, full_v)
    full_hist = task_histograms(full_t, full_v, len(tasks), levels)
    wd_levels = label.levels if label.kind_.on_levels else None
    sim: dict[tuple[str, str], list[float]] = {}
    sample_t = np.repeat(np.arange(len(tasks)), n_t)
    for _ in range(n_sim):
        # n_t draws with replacement from the task's full responses
        pick = starts[sample_t] + (generator.random(len(sample_t)) * counts[sample_t]).astype(int)
        sample = full.iloc[pick]
        sample_v = full_v[pick]
        for name in names:
            a = _as_values(get_aggregator(name).fit_predict(sample).reindex(tasks), label)
            o = oracle_agg[name]
            if not numeric:
                sim.setdefault((name, "error_rate"), []).append(float(np.mean(a != o)))
                continue
            for metric, fn in (("mae", mae), ("rmse", rmse), ("cs_raw", cosine), ("cs_centered", centered_cosine)):
                if name == "mean" and metric in ("mae", "rmse"):
                    continue  # analytic above
                sim.setdefault((name, metric), []).append(fn(a, o))
        hist = task_histograms(sample_t, sample_v, len(tasks), levels)
        sim.setdefault((NO_AGGREGATOR, "cs_dist"), []).append(float(np.nanmean(_rowwise_cosine(hist, full_hist))))
        if numeric:
            wd = per_task_wasserstein(sample_t, sample_v, full_t, full_v, len(tasks), wd_levels)
            sim.setdefault((NO_AGGREGATOR, "avg_wd"), []).append(float(np.mean(wd)))
        else:
            p = hist / hist.sum(axis=1, keepdims=True)
            q = full_hist / full_hist.sum(axis=1, keepdims=True)
            sim.setdefault((NO_AGGREGATOR, "avg_tvd"), []).append(float(np.mean(0.5 * np.abs(p - q).sum(axis=1))))
    rows += [(NOISE_CEILING, agg, metric, _nanmean(v)) for (agg, metric), v in sim.items()]
    return _ordered(pd.DataFrame(rows, columns=_COLUMNS), names)


def _task_variances(task_idx: np.ndarray, values: np.ndarray, n_tasks: int) -> np.ndarray:
    """Unbiased within-task variance ``s_t^2``; tasks with a single response get the mean of the others."""
    n = np.bincount(task_idx, minlength=n_tasks).astype(float)
    s1 = np.bincount(task_idx, weights=values, minlength=n_tasks)
    s2 = np.bincount(task_idx, weights=values ** 2, minlength=n_tasks)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1 ** 2 / n) / (n - 1)
    var = np.where(n >= 2, np.maximum(var, 0.0), np.nan)
    pooled = float(np.nanmean(var)) if np.isfinite(var).any() else 0.0
    return np.where(np.isnan(var), pooled, var)


def _as_values(labels: pd.Series, label: LabelSpec) -> np.ndarray:
    return label_values(labels, label) if label.kind_.nominal else labels.to_numpy(dtype=float)


def _ordered(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Rows in the same order as evaluate_predictions: aggregators in the given order, then '-'."""
    metric_order = ["mae", "rmse", "cs_raw", "cs_centered", "error_rate", "wd", "cs_dist", "avg_wd", "avg_tvd",
                    "coverage"]
    agg_order = [*names, COUNT, NO_AGGREGATOR]
    key = frame["aggregator"].map({a: i for i, a in enumerate(agg_order)}) * 100 + frame["metric"].map(
        {m: i for i, m in enumerate(metric_order)})
    return frame.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


# ---------------------------------------------------------------- top-k votes
def _ballots(responses: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Items and the 0/1 voter x item matrix."""
    items = sorted(set(responses["task"]))
    voters = sorted(set(responses["worker"]))
    mat = np.zeros((len(voters), len(items)))
    vi = pd.Index(voters).get_indexer(responses["worker"])
    ii = pd.Index(items).get_indexer(responses["task"])
    mat[vi, ii] = pd.to_numeric(responses["label"]).to_numpy(dtype=float)
    return items, mat


def _vote_scores(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    return {"mae": mae(pred, gold), "rmse": rmse(pred, gold), "cs_raw": cosine(pred, gold),
            "cs_centered": centered_cosine(pred, gold), "wd": float(wasserstein_distance(pred, gold))}


def _vote_oracle(gold: pd.DataFrame, full: pd.DataFrame, n_sim: int, generator: np.random.Generator) -> pd.DataFrame:
    items, ballots = _ballots(full)
    n_gold = gold["worker"].nunique()
    share = ballots.mean(axis=0)
    expected = n_gold * share
    scores: dict[str, list[float]] = {}
    for _ in range(n_sim):
        counts = ballots[generator.integers(0, len(ballots), size=n_gold)].sum(axis=0)
        for metric, value in _vote_scores(expected, counts).items():
            scores.setdefault(metric, []).append(value)
    exact = _exact_count_errors(n_gold, share)
    return pd.DataFrame([(NOISE_CEILING, COUNT, m, exact.get(m, _nanmean(v))) for m, v in scores.items()],
                        columns=_COLUMNS)


def _exact_count_errors(n: int, share: np.ndarray, per_answer: int | None = None) -> dict[str, float]:
    """Count MAE and RMSE, in expectation, of a predictor against ``n`` gold ballots drawn with replacement
    from voters of whom a share ``share[i]`` chose item ``i`` (the gold count is ``X ~ Binomial(n, p)``).
    ``per_answer=None``: the predictor is the exact ``n p``; ``per_answer=k``: it is ``Y / k`` with
    ``Y ~ Binomial(k n, p)`` independent of ``X`` (the sampling oracle). Finite sums, no simulation."""
    p = np.asarray(share, dtype=float).reshape(-1, 1)
    if not len(p):
        return {"mae": float("nan"), "rmse": float("nan")}
    x = np.arange(n + 1, dtype=float)
    px = binom.pmf(x, n, p)
    var = n * p * (1 - p)
    if per_answer is None:
        dev = (px * np.abs(x - n * p)).sum(axis=1)
    else:
        y = np.arange(n * per_answer + 1, dtype=float)
        py = binom.pmf(y, n * per_answer, p)
        dev = np.einsum("ix,xy,iy->i", px, np.abs(y[None, :] / per_answer - x[:, None]), py)
        var = var * (1 + 1 / per_answer)
    return {"mae": float(dev.mean()), "rmse": float(np.sqrt(var.mean()))}


# ---------------------------------------------------------------- split-half
def split_half(responses: pd.DataFrame, label: LabelSpec, *, aggregators: Sequence[str] = DEFAULT_AGGREGATORS,
               n_splits: int = 3, min_responses: int = 4, n_voters: int | None = None,
               random_state: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Score one random half of each task's responses against the other half (tasks with at least
    ``min_responses`` responses), averaged over ``n_splits`` splits; ``[method, aggregator, metric, value]``
    with method ``"split-half"``. Top-k votes: two disjoint random groups of voters, each of
    ``min(n_voters, N // 2)`` voters (default ``N // 2``), so counts compare like a test crowd's."""
    resp = check_responses(responses)
    generator = make_rng(random_state)
    frames = []
    if label.kind_.votes:
        voters = np.array(sorted(set(resp["worker"])), dtype=object)
        half = len(voters) // 2 if n_voters is None else min(int(n_voters), len(voters) // 2)
        if half < 1:
            return pd.DataFrame(columns=_COLUMNS)
        items, ballots = _ballots(resp)
        for _ in range(n_splits):
            perm = generator.permutation(len(voters))
            a, b = ballots[perm[:half]].sum(axis=0), ballots[perm[half:2 * half]].sum(axis=0)
            frames.append(pd.DataFrame([(COUNT, m, v) for m, v in _vote_scores(a, b).items()],
                                       columns=["aggregator", "metric", "value"]))
    else:
        sizes = resp["task"].value_counts()
        resp = resp[resp["task"].isin(sizes.index[sizes >= min_responses])]
        if resp.empty:
            return pd.DataFrame(columns=_COLUMNS)
        resp = resp.sort_values(["task", "worker"]).reset_index(drop=True)
        for _ in range(n_splits):
            key = generator.random(len(resp))
            rank = pd.Series(key).groupby(resp["task"].to_numpy()).rank(method="first").to_numpy()
            n_task = resp["task"].map(sizes).to_numpy()
            first = rank <= n_task // 2
            frames.append(evaluate_predictions(resp[first], resp[~first], label, aggregators))
    scores = pd.concat(frames, ignore_index=True)
    scores = scores[scores["metric"] != "coverage"]
    mean = scores.groupby(["aggregator", "metric"], sort=False)["value"].mean().reset_index()
    mean.insert(0, "method", SPLIT_HALF)
    return mean[_COLUMNS]


def _nanmean(values: list[float]) -> float:
    """Mean over the finite values (NaN when there are none, e.g. a centred cosine of constant vectors)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")
