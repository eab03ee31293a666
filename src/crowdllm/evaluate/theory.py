"""The paper's theory as numbers: Theorem 5 confidence intervals and the Theorem 2 risk decomposition.

Both need a fitted :class:`~crowdllm.crowd.DigitalCrowd` and a train/test split with numeric labels.

**Theorem 5** (interval for the population mean of a task, additive blender). For a task ``x`` with a
virtual crowd of ``N`` people whose answers are ``y~_i = y_ref + delta_i`` and ``n`` real training
answers ``y_1..y_n`` with digital twins ``y~'_1..y~'_n`` (same people, residuals ``r_i = y_i - y~'_i``)::

    |y* - mean(y~)| <= eps0 + z_{1-alpha/2} * sqrt(eta / N + sigma_delta^2 / N + sigma_r^2 / n)

with ``eps0^2`` = the mean squared training residual (the theorem's training-error bound),
``sigma_delta^2`` = the variance of the virtual answers around ``y_ref`` across the crowd (here
``delta_i`` includes the blender's noise, so ``sigma_delta^2 / N`` is the standard error of the crowd
mean), ``sigma_r^2`` = the variance of the residuals and ``eta`` = the variance of the LLM's answer
behind ``y_ref``: 0 for the deterministic log-prob expected value CrowdLLM uses here (every virtual
person shares it); pass ``eta="answer"`` to use the variance of the LLM's answer distribution instead
(the randomness of one *sampled* LLM answer). A held-out task has no training answers, so its
``eps0``, ``sigma_r`` and ``n`` are pooled over the training tasks (``n`` = their median count).

Coverage is measured against the held-out real crowd: its mean ``ybar`` is itself a sample of ``m``
people, so the interval for ``ybar`` adds ``s^2 / m`` (the held-out answers' variance) inside the square
root. We report the coverage of the theorem's interval and of a *sharp* variant that replaces the bound
``eps0`` by the mean residual ``|mean(r)|`` it bounds in the proof.

**Split-conformal interval** (:class:`SplitConformal`, :func:`conformal_intervals`): an interval for a
task's real-crowd mean that a user can act on. For task ``t`` the crowd predicts the mean ``m_t`` and
the variance ``v_t`` of one answer (its virtual crowd's), and the real crowd that will answer has ``n_t``
people. Score ``s_t = |ybar_t - m_t| / sqrt(tau^2 + v_t / n_t)``: the error of the crowd mean scaled by
what it should be if the model's error on the mean were ``tau`` and the real crowd's own sampling noise
``v_t / n_t`` (so the width grows as the crowd gets smaller). ``tau^2 = max(mean_t (ybar_t - m_t)^2 -
v_t / n_t, tau_min^2)`` and the quantile ``q = `` the ``ceil((n + 1)(1 - alpha))``-th smallest score are
both learned on *calibration* tasks: tasks of the training part that a crowd fitted on the rest of
the training part never saw (validation tasks for a task split, validation people on the training
tasks for a worker split). The interval is ``m_t +- q sqrt(tau^2 + v_t / n_t)``; split-conformal
theory gives coverage >= ``1 - alpha`` when calibration and test tasks are exchangeable.

**Theorem 2** (risk decomposition, squared loss). For each held-out pair (a real person ``i`` and their
digital twin) with the task's real mean ``y*``, the five terms are

- L1 average human bias ``mean_i (y* - E y_i)^2``,
- L2 human individual noise ``mean_i Var(y_i)``,
- L3 twin discrepancy ``mean_i (E y_i - E y~_i)^2``,
- L4 allowed individual uncertainty ``mean_i Var(y~_i)``,
- L5 digital population diversity ``mean_i (mean(y~) - y~_i)^2``,

The risk of the digital crowd's mean as a prediction of a real person's (noisy) answer,
``L = mean_i (y_i - mean(y~))^2``, splits exactly as ``mean_i (y_i - y*)^2 + mean_i (y* - y~_i)^2 -
mean_i (y~_i - mean(y~))^2`` (``y*`` is the mean of the ``y_i``; the last step is the ambiguity
decomposition: the crowd mean is better than its average member by exactly its diversity L5). In
expectation over the twins' draws that is ``L = (L1 + L2) + (L1 + L3) + L4 - L5``: the human bias counts
twice, once in how far the real person is from the crowd's mean and once in how far each twin is. (The
paper's statement, ``L1 + L2 + L3 + L4 - L5``, misses the direct risk by L1; on a crowd whose twins know
their person's bias, bias = noise = 1, it is 0.84 short of a direct risk of 1.8,
tests/analyses/test_analysis_theory.py.) With one real answer per (person, task) ``E y_i`` is not
observed; we solve three observable second moments (cross terms assumed to vanish, i.e. what a twin
gets wrong is unrelated to its person's bias):
``a = mean (y* - y_i)^2 = L1 + L2``, ``b = mean (y_i - E y~_i)^2 = L2 + L3`` and
``c = mean (y* - E y~_i)^2 = L1 + L3``. ``E y~_i`` and ``Var(y~_i)`` come from ``R`` fresh draws of each
twin (``b`` and ``c`` net of the ``Var(y~_i) / R`` that the mean of R draws adds). The direct estimate of
``L`` (one more draw) is printed next to the sum of the terms, ``L_terms = 2 L1 + L2 + L3 + L4 - L5``;
``a + c`` fixes ``2 L1 + L2 + L3`` whatever the cross terms, so the two agree up to sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from crowdllm.data.dataset import CrowdDataset
from crowdllm.errors import ConfigError


def _numeric(ds: CrowdDataset) -> None:
    if not ds.label.kind_.rating:
        raise ConfigError(f"the theory numbers need numeric labels; '{ds.name}' has {ds.label.kind} labels")


@dataclass
class IntervalReport:
    per_task: pd.DataFrame
    summary: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        s = self.summary
        return (f"Theorem 5 intervals on {int(s['tasks'])} held-out tasks (nominal {s['nominal']:.0%}, N = {int(s['N'])} "
                f"virtual people per task): coverage {s['coverage']:.1%} (mean half-width {s['half_width']:.2f}); "
                f"sharp variant (|mean residual| for eps0) {s['coverage_sharp']:.1%} (half-width "
                f"{s['half_width_sharp']:.2f}). Terms (means): eps0 {s['eps0']:.3f}, eta/N {s['eta_term']:.4f}, "
                f"sigma_delta^2/N {s['delta_term']:.4f}, sigma_r^2/n {s['resid_term']:.4f}, gold s^2/m {s['gold_term']:.4f}.")


def theorem5_intervals(crowd: Any, train: CrowdDataset, test: CrowdDataset, *, n_virtual: int = 200,
                       alpha: float = 0.05, eta: str = "reference", reference: Any = None,
                       random_state: int = 0) -> IntervalReport:
    """Theorem 5 intervals for every task of ``test``, their terms, and their coverage of the held-out
    real crowd mean (see the module docstring). ``n_virtual`` virtual people are drawn from the
    training pool for each task."""
    _numeric(train)
    if eta not in ("reference", "answer"):
        raise ConfigError(f"eta '{eta}' is not one of reference, answer")
    from crowdllm.profiles.pool import PoolProfiles

    rng = np.random.default_rng(random_state)
    test_tasks = test.tasks[test.tasks["task"].isin(set(test.responses["task"]))].reset_index(drop=True)
    # virtual crowd per task
    people = PoolProfiles(train.workers).sample(n_virtual, rng)
    virtual = crowd.sample(test_tasks, profiles=people, reference=reference, random_state=rng, include_profile=False)
    virtual["task"] = virtual["task"].astype(str)
    vstats = virtual.groupby("task")["label"].agg(["mean", "var", "count"])
    # twins of the training answers -> residuals
    tr = train.responses[["task", "worker", "label"]].astype({"task": str, "worker": str})
    twins = crowd.sample(train.tasks, profiles=train.workers, pairs=tr[["task", "worker"]], random_state=rng,
                         include_profile=False)
    resid = tr["label"].to_numpy(float) - twins["label"].to_numpy(float)
    r = pd.DataFrame({"task": tr["task"].to_numpy(), "r": resid})
    per = r.groupby("task")["r"].agg(mean="mean", var=lambda v: float(np.var(v)), ms=lambda v: float(np.mean(v ** 2)),
                                     n="count")
    pooled = {"mean": float(r["r"].mean()), "var": float(r["r"].var(ddof=0)), "ms": float(np.mean(resid ** 2)),
              "n": float(per["n"].median())}
    # gold
    gold = test.responses.astype({"task": str}).groupby("task")["label"].agg(["mean", "var", "count"])
    ids = test_tasks["task"].astype(str).tolist()
    ref = crowd.expected_decisions(test_tasks, people.head(1), reference=reference)
    y_ref = ref.set_index("task")["y_ref"].reindex(ids).to_numpy(float)
    if eta == "answer":
        eta_v = _answer_variance(crowd, ids, reference)
    else:
        eta_v = np.zeros(len(ids))
    rows = []
    z = float(norm.ppf(1 - alpha / 2))
    for j, t in enumerate(ids):
        seen = t in per.index and per.loc[t, "n"] >= 2
        src = per.loc[t] if seen else pooled
        n = float(src["n"])
        N = float(vstats.loc[t, "count"])
        vmean = float(vstats.loc[t, "mean"])
        sd2 = float(np.var(virtual.loc[virtual["task"] == t, "label"].to_numpy(float) - y_ref[j]))
        eps0 = float(np.sqrt(src["ms"]))
        g_mean, g_var, m = float(gold.loc[t, "mean"]), float(gold.loc[t, "var"]), float(gold.loc[t, "count"])
        g_term = (g_var if np.isfinite(g_var) else 0.0) / m
        core = eta_v[j] / N + sd2 / N + float(src["var"]) / n
        half = eps0 + z * np.sqrt(core + g_term)
        half_sharp = abs(float(src["mean"])) + z * np.sqrt(core + g_term)
        err = abs(g_mean - vmean)
        rows.append({"task": t, "seen": bool(seen), "virtual_mean": vmean, "gold_mean": g_mean, "gold_n": m,
                     "y_ref": y_ref[j], "eps0": eps0, "eta_term": eta_v[j] / N, "delta_term": sd2 / N,
                     "resid_term": float(src["var"]) / n, "gold_term": g_term, "half_width": half,
                     "half_width_sharp": half_sharp, "error": err, "covered": err <= half,
                     "covered_sharp": err <= half_sharp})
    frame = pd.DataFrame(rows)
    summary = {
        "tasks": float(len(frame)), "N": float(n_virtual), "nominal": 1 - alpha,
        "coverage": float(frame["covered"].mean()), "coverage_sharp": float(frame["covered_sharp"].mean()),
        "half_width": float(frame["half_width"].mean()), "half_width_sharp": float(frame["half_width_sharp"].mean()),
        "eps0": float(frame["eps0"].mean()), "eta_term": float(frame["eta_term"].mean()),
        "delta_term": float(frame["delta_term"].mean()), "resid_term": float(frame["resid_term"].mean()),
        "gold_term": float(frame["gold_term"].mean()), "seen_share": float(frame["seen"].mean()),
    }
    return IntervalReport(frame, summary)


def _answer_variance(crowd: Any, ids: list[str], reference: Any) -> np.ndarray:
    """Variance of the LLM's answer distribution per task (needs ``p_*`` reference columns)."""
    from crowdllm.crowd import reference_frame

    ref = reference_frame(reference) if reference is not None else crowd.reference_
    ref = pd.concat([ref, crowd.reference_])
    ref = ref[~ref.index.duplicated(keep="first")].reindex(ids)
    cols = [c for c in ref.columns if str(c).startswith("p_")]
    if not cols:
        raise ConfigError("eta='answer' needs the reference's answer distribution (p_* columns)")
    levels = np.array([float(c[2:]) for c in cols])
    p = ref[cols].to_numpy(float)
    p = p / p.sum(axis=1, keepdims=True)
    mean = p @ levels
    return np.nan_to_num((p * (levels[None, :] - mean[:, None]) ** 2).sum(axis=1))


# ---------------------------------------------------------------- split-conformal intervals
class SplitConformal:
    """Split-conformal interval for a task's real-crowd mean, scaled by crowd size (module docstring).

    ``fit(pred, gold)``: ``pred`` indexed by task with columns ``mean`` (the crowd's predicted mean)
    and ``var`` (its predicted variance of one answer); ``gold`` the calibration tasks' real responses.
    Learns ``tau_`` and ``q_``. ``predict(pred, sizes)``: ``lower``, ``upper``, ``half_width`` per task
    for real crowds of ``sizes`` people (a Series by task or one number). ``half_width(var, sizes)`` is
    the one formula, ``q_ * sqrt(tau_^2 + var / sizes)``; :meth:`from_fitted` rebuilds a fitted interval
    from a saved ``tau_`` and ``q_`` (e.g. a crowd card's)."""

    def __init__(self, alpha: float = 0.05, tau_min: float = 0.01) -> None:
        self.alpha = alpha
        self.tau_min = tau_min

    @classmethod
    def from_fitted(cls, tau: float, q: float, *, alpha: float = 0.05, tau_min: float = 0.01) -> SplitConformal:
        """A fitted interval from a saved ``tau_`` and ``q_`` (no calibration data needed); ``q`` may be
        infinite (too few calibration tasks for the level)."""
        tau, q = float(tau), float(q)
        if not (np.isfinite(tau) and tau >= 0):
            raise ConfigError(f"tau={tau!r} must be a finite number >= 0")
        if not q >= 0:  # also catches NaN
            raise ConfigError(f"q={q!r} must be a number >= 0 (inf allowed)")
        conf = cls(alpha=alpha, tau_min=tau_min)
        conf.tau_, conf.q_ = tau, q
        return conf

    @staticmethod
    def _aligned(pred: pd.DataFrame, gold: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        stats = gold.astype({"task": str}).groupby("task")["label"].agg(["mean", "count"])
        p = pred.copy()
        p.index = p.index.astype(str)
        both = stats.index.intersection(p.index[p[["mean", "var"]].notna().all(axis=1)])
        if len(both) == 0:
            raise ConfigError("the calibration predictions and responses share no task")
        return (stats.loc[both, "mean"].to_numpy(float), stats.loc[both, "count"].to_numpy(float),
                p.loc[both, "mean"].to_numpy(float), p.loc[both, "var"].to_numpy(float))

    def fit(self, pred: pd.DataFrame, gold: pd.DataFrame) -> SplitConformal:
        if not 0 < float(self.alpha) < 1:
            raise ConfigError(f"alpha={self.alpha!r} must be strictly between 0 and 1")
        ybar, n, m, v = self._aligned(pred, gold)
        r2 = (ybar - m) ** 2
        self.tau_ = float(np.sqrt(max(float(np.mean(r2 - v / n)), self.tau_min ** 2)))
        scores = np.sqrt(r2 / (self.tau_ ** 2 + v / n))
        k = int(np.ceil((len(scores) + 1) * (1 - float(self.alpha))))
        # fewer calibration tasks than 1/alpha: the interval must be infinite to keep its promise
        self.q_ = float(np.sort(scores)[k - 1]) if k <= len(scores) else float("inf")
        self.n_calibration_ = len(scores)
        return self

    def half_width(self, var: Any, sizes: Any) -> np.ndarray:
        """``q_ * sqrt(tau_^2 + var / sizes)``: the half-width for tasks whose answers have variance ``var``
        and real crowds of ``sizes`` people (arrays or numbers, broadcast)."""
        if not hasattr(self, "q_"):
            raise ConfigError("this SplitConformal is not fitted yet: call fit(pred, gold) first")
        return self.q_ * np.sqrt(self.tau_ ** 2 + np.asarray(var, dtype=float) / np.asarray(sizes, dtype=float))

    def predict(self, pred: pd.DataFrame, sizes: pd.Series | float) -> pd.DataFrame:
        if not hasattr(self, "q_"):
            raise ConfigError("this SplitConformal is not fitted yet: call fit(pred, gold) first")
        p = pred.copy()
        p.index = p.index.astype(str)
        n = sizes.reindex(p.index).to_numpy(float) if isinstance(sizes, pd.Series) else np.full(len(p), float(sizes))
        half = self.half_width(p["var"].to_numpy(float), n)
        m = p["mean"].to_numpy(float)
        return pd.DataFrame({"mean": m, "lower": m - half, "upper": m + half, "half_width": half}, index=p.index)


def crowd_task_moments(crowd: Any, tasks: pd.DataFrame, people: pd.DataFrame, *, reference: Any = None,
                       random_state: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Mean and variance of each task's virtual answers (everyone in ``people`` answers every task);
    index task, columns ``mean``, ``var``, ``count``."""
    virtual = crowd.sample(tasks, profiles=people, reference=reference, random_state=random_state,
                           include_profile=False)
    virtual = virtual.assign(task=virtual["task"].astype(str))
    out = virtual.groupby("task", observed=True)["label"].agg(["mean", "var", "count"])
    out["var"] = out["var"].fillna(0.0)
    return out


@dataclass
class ConformalInputs:
    """What a split-conformal interval is built from: the crowd's predicted moments and the real answers,
    on calibration tasks (a crowd fitted without them) and on the test tasks."""

    calibration: pd.DataFrame
    calibration_gold: pd.DataFrame
    test: pd.DataFrame
    test_gold: pd.DataFrame
    n_virtual: int

    def report(self, alpha: float = 0.05) -> ConformalReport:
        """Calibrate at level ``1 - alpha`` and measure coverage of the test tasks' real-crowd means."""
        conf = SplitConformal(alpha=alpha).fit(self.calibration, self.calibration_gold)
        gold = self.test_gold.astype({"task": str}).groupby("task")["label"].agg(["mean", "count"])
        iv = conf.predict(self.test, gold["count"])
        frame = pd.DataFrame({"task": iv.index, "virtual_mean": iv["mean"].to_numpy(),
                              "gold_mean": gold["mean"].reindex(iv.index).to_numpy(float),
                              "gold_n": gold["count"].reindex(iv.index).to_numpy(float),
                              "lower": iv["lower"].to_numpy(), "upper": iv["upper"].to_numpy(),
                              "half_width": iv["half_width"].to_numpy()})
        frame["covered"] = (frame["gold_mean"] >= frame["lower"]) & (frame["gold_mean"] <= frame["upper"])
        summary = {"tasks": float(len(frame)), "N": float(self.n_virtual), "nominal": 1 - alpha,
                   "coverage": float(frame["covered"].mean()), "half_width": float(frame["half_width"].mean()),
                   "tau": conf.tau_, "q": conf.q_, "calibration_tasks": float(conf.n_calibration_)}
        return ConformalReport(frame, summary)


def conformal_inputs(crowd: Any, refit: Any, train: CrowdDataset, test: CrowdDataset, *, split: str = "task",
                     n_virtual: int = 200, valid_size: float = 0.2, reference: Any = None,
                     random_state: int = 0) -> ConformalInputs:
    """Predicted moments on calibration and test tasks (see :func:`conformal_intervals`); fits one crowd."""
    _numeric(train)
    from crowdllm.data.splits import split_dataset
    from crowdllm.profiles.pool import PoolProfiles

    rng = np.random.default_rng(random_state)
    inner = split_dataset(train, by=split, test_size=valid_size, random_state=random_state)  # type: ignore[arg-type]
    cal_crowd = refit(inner.train)
    cal_tasks = inner.test.tasks[inner.test.tasks["task"].isin(set(inner.test.responses["task"]))]
    people_cal = PoolProfiles(inner.train.workers).sample(n_virtual, rng)
    cal = crowd_task_moments(cal_crowd, cal_tasks, people_cal, reference=reference, random_state=rng)
    test_tasks = test.tasks[test.tasks["task"].isin(set(test.responses["task"]))].reset_index(drop=True)
    people = PoolProfiles(train.workers).sample(n_virtual, rng)
    pred = crowd_task_moments(crowd, test_tasks, people, reference=reference, random_state=rng)
    return ConformalInputs(cal, inner.test.responses, pred, test.responses, n_virtual)


def conformal_intervals(crowd: Any, refit: Any, train: CrowdDataset, test: CrowdDataset, *, split: str = "task",
                        alpha: float = 0.05, n_virtual: int = 200, valid_size: float = 0.2, reference: Any = None,
                        random_state: int = 0) -> ConformalReport:
    """Split-conformal intervals (:class:`SplitConformal`) for the real-crowd mean of every test task.

    ``crowd``: the crowd fitted on ``train``; ``refit(calibration_train) -> crowd``: fits the same
    kind of crowd on a part of ``train`` (called once). ``split`` says how ``train`` is cut for
    calibration, like the test split: ``task`` holds out training tasks, ``worker`` training people
    (their answers to the training tasks), ``both`` both. ``reference``: the LLM reference of the
    calibration and test tasks (a frame covering them, or a function ``tasks -> frame``). Returns
    per-task ``virtual_mean``, ``gold_mean``, ``gold_n``, ``lower``, ``upper``, ``half_width``,
    ``covered`` and a summary (``coverage``, ``half_width``, ``tau``, ``q``, ``calibration_tasks``)."""
    return conformal_inputs(crowd, refit, train, test, split=split, n_virtual=n_virtual, valid_size=valid_size,
                            reference=reference, random_state=random_state).report(alpha)


@dataclass
class ConformalReport(IntervalReport):
    def render(self) -> str:
        s = self.summary
        return (f"Split-conformal intervals on {int(s['tasks'])} held-out tasks (nominal {s['nominal']:.0%}, "
                f"calibrated on {int(s['calibration_tasks'])} validation tasks of the training part): coverage "
                f"{s['coverage']:.1%}, mean half-width {s['half_width']:.2f} (tau {s['tau']:.3f}, q {s['q']:.2f}).")


@dataclass
class RiskReport:
    terms: dict[str, float]

    def render(self) -> str:
        t = self.terms
        if not t["pairs"]:
            return "Theorem 2 risk terms: not measured (no held-out task has two or more real answers)."
        return (f"Theorem 2 risk terms (held-out pairs, squared loss): L1 human bias {t['L1']:.3f}, "
                f"L2 human noise {t['L2']:.3f}, L3 twin discrepancy {t['L3']:.3f}, L4 allowed uncertainty "
                f"{t['L4']:.3f}, L5 digital diversity {t['L5']:.3f}; 2 L1+L2+L3+L4-L5 = {t['L_terms']:.3f} "
                f"vs direct mean_i (y_i - mean y~)^2 = {t['L_direct']:.3f} ({int(t['pairs'])} pairs).")


def risk_decomposition(crowd: Any, test: CrowdDataset, *, reference: Any = None, draws: int = 20,
                       random_state: int = 0) -> RiskReport:
    """Theorem 2's five terms on the held-out pairs of ``test`` (see the module docstring)."""
    _numeric(test)
    rng = np.random.default_rng(random_state)
    pairs = test.responses[["task", "worker", "label"]].astype({"task": str, "worker": str}).reset_index(drop=True)
    n_t = pairs.groupby("task")["label"].transform("count").to_numpy(float)
    multi = n_t >= 2
    if not multi.any():  # every term is a mean over tasks with two or more answers: none to average
        nan = float("nan")
        return RiskReport({**dict.fromkeys(("L1", "L2", "L3", "L4", "L5", "L_terms", "L_direct"), nan),
                           "pairs": 0.0})
    tasks = test.tasks[test.tasks["task"].isin(set(pairs["task"]))]
    samples = np.stack([
        crowd.sample(tasks, profiles=test.workers, pairs=pairs[["task", "worker"]], reference=reference,
                     random_state=rng, include_profile=False)["label"].to_numpy(float)
        for _ in range(max(draws, 2))
    ])  # (R, n_pairs)
    e_twin = samples.mean(axis=0)
    v_twin = samples.var(axis=0, ddof=1)
    y = pairs["label"].to_numpy(float)
    t = pairs["task"].to_numpy()
    y_star = pairs.groupby("task")["label"].transform("mean").to_numpy(float)
    # the spread of the real answers around their task's mean, as the direct risk sees it (same people)
    a = float(np.mean(((y_star - y) ** 2)[multi]))
    # E y~_i is a mean of R draws: its own variance v / R is taken out of both squared gaps
    b = float(np.mean(((y - e_twin) ** 2 - v_twin / len(samples))[multi]))
    c = float(np.mean(((y_star - e_twin) ** 2 - v_twin / len(samples))[multi]))
    L1, L2, L3 = (a + c - b) / 2, (a + b - c) / 2, (b + c - a) / 2
    L4 = float(np.mean(v_twin[multi]))
    one = pd.DataFrame({"task": t, "s": samples[0]})
    L5 = float(np.mean(((one.groupby("task")["s"].transform("mean") - one["s"]) ** 2).to_numpy()[multi]))
    crowd_mean = one.groupby("task")["s"].transform("mean").to_numpy(float)
    L_direct = float(np.mean(((y - crowd_mean) ** 2)[multi]))
    # the risk against a real person's answer counts the human bias twice: once in the person's distance to
    # the crowd mean (a = L1 + L2), once in each twin's (c = L1 + L3), before the crowd's diversity comes off
    return RiskReport({"L1": L1, "L2": L2, "L3": L3, "L4": L4, "L5": L5, "L_terms": 2 * L1 + L2 + L3 + L4 - L5,
                       "L_direct": L_direct, "pairs": float(multi.sum())})
