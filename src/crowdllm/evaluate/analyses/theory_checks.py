"""Theory checks: does the Theorem 5 interval cover as often as it says, and what are Theorem 2's terms?

The estimators are :func:`crowdllm.evaluate.theory.theorem5_intervals` and
:func:`crowdllm.evaluate.theory.risk_decomposition` (read their docstrings for the formulas); this
module runs them across seeds and nominal levels and lays the results out as tidy frames.

**Coverage.** For each seed the data are split, each method (a digital crowd: a fitted
:class:`~crowdllm.crowd.DigitalCrowd` or a method object holding one in ``crowd_``) is fitted, and the
interval terms of every held-out task are computed once. For each nominal level ``1 - alpha`` the
half-width is then ``eps0 + z_{1-alpha/2} * sqrt(terms)`` (``variant = theorem``) or, with the mean
residual that ``eps0`` bounds, ``|mean r| + z * sqrt(terms)`` (``variant = sharp``), and the coverage is
the share of held-out tasks whose target lies inside. Two targets:

- ``held-out mean``: the mean of the held-out real answers (a sample of ``m`` people, so its variance
  ``s^2/m`` is inside the square root) — what one can check on real data;
- ``truth``: the population's expected answer, known exactly for a simulated crowd
  (:func:`crowdllm.evaluate.analyses.simulation.make_simulated_crowd`; ``s^2/m`` left out) — the
  quantity the theorem is about.

With ``conformal=True`` each (seed, method) also gets the split-conformal interval
(:func:`crowdllm.evaluate.theory.conformal_inputs`, ``variant = conformal``, target ``held-out mean``):
calibrated on validation tasks/people of the training part (one extra fit), for every nominal level.

An interval is *calibrated* when coverage is close to the nominal level; the theorem's interval is
conservative by design (``eps0`` bounds the mean residual), so it should cover at least as often.

**Risk terms.** L1 human bias, L2 human noise, L3 twin discrepancy, L4 allowed uncertainty, L5 digital
diversity, their combination ``2 L1 + L2 + L3 + L4 - L5`` and the directly measured risk, per method and
seed, on the held-out pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from crowdllm.data.dataset import CrowdDataset
from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses._common import Trainer, check_methods, method_steps, split_train_test, tidy

COVERAGE_COLUMNS = ["dataset", "split", "seed", "method", "target", "variant", "nominal", "coverage",
                    "mean_half_width", "n_tasks"]
TERM_COLUMNS = ["dataset", "split", "seed", "method", "term", "value"]
DEFAULT_ALPHAS = (0.5, 0.32, 0.2, 0.1, 0.05)
TERMS = ("L1", "L2", "L3", "L4", "L5", "L_terms", "L_direct")
TERM_NAMES = {"L1": "L1 human bias", "L2": "L2 human noise", "L3": "L3 twin discrepancy",
              "L4": "L4 allowed uncertainty", "L5": "L5 digital diversity", "L_terms": "2 L1+L2+L3+L4-L5",
              "L_direct": "risk (direct)"}
HELD_OUT = "held-out mean"
TRUTH = "truth"


def _crowd_and_reference(fitted: Any, test: CrowdDataset) -> tuple[Any, Any]:
    """The DigitalCrowd inside a fitted method, and the LLM reference of the held-out tasks if it uses one."""
    crowd = getattr(fitted, "crowd_", fitted)
    if not hasattr(crowd, "expected_decisions"):
        raise ConfigError(f"the theory checks need a digital crowd; {type(fitted).__name__} is not one "
                          "(use e.g. --methods crowdllm,vae-only)")
    refs = getattr(fitted, "_refs", None) if getattr(crowd, "has_reference_", False) else None
    reference = refs(test.tasks) if callable(refs) else None
    return crowd, reference


def coverage_table(per_task: pd.DataFrame, alphas: Sequence[float], *, truth: pd.Series | None = None,
                   base_alpha: float = 0.05) -> pd.DataFrame:
    """Coverage and mean half-width per target, variant and nominal level, from the per-task terms of
    :func:`crowdllm.evaluate.theory.theorem5_intervals` (computed at ``base_alpha``)."""
    need = {"task", "virtual_mean", "gold_mean", "eps0", "eta_term", "delta_term", "resid_term", "gold_term",
            "half_width_sharp"}
    missing = need - set(per_task.columns)
    if missing:
        raise ConfigError(f"interval terms lack column(s) {', '.join(sorted(missing))}")
    z0 = float(norm.ppf(1 - base_alpha / 2))
    core = per_task[["eta_term", "delta_term", "resid_term"]].sum(axis=1).to_numpy(float)
    gold = per_task["gold_term"].to_numpy(float)
    eps0 = per_task["eps0"].to_numpy(float)
    # |mean residual|: the sharp half-width minus its normal part
    sharp0 = per_task["half_width_sharp"].to_numpy(float) - z0 * np.sqrt(core + gold)
    vmean = per_task["virtual_mean"].to_numpy(float)
    targets = {HELD_OUT: (per_task["gold_mean"].to_numpy(float), gold)}
    if truth is not None:
        t = truth.reindex(per_task["task"].astype(str)).to_numpy(float)
        if np.isnan(t).any():
            raise ConfigError("the truth is missing for some held-out tasks")
        targets[TRUTH] = (t, np.zeros_like(gold))
    rows = []
    for target, (value, extra) in targets.items():
        err = np.abs(value - vmean)
        for alpha in alphas:
            z = float(norm.ppf(1 - alpha / 2))
            spread = z * np.sqrt(core + extra)
            for variant, offset in (("theorem", eps0), ("sharp", sharp0)):
                half = offset + spread
                rows.append({"target": target, "variant": variant, "nominal": 1 - alpha,
                             "coverage": float(np.mean(err <= half)), "mean_half_width": float(np.mean(half)),
                             "n_tasks": len(err)})
    return pd.DataFrame(rows)


def theory_checks(
    dataset: CrowdDataset,
    methods: Mapping[str, Trainer],
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    n_virtual: int = 200,
    seeds: Sequence[int] = (0, 1, 2),
    split: str = "worker",
    test_size: float = 0.2,
    truth: pd.Series | None = None,
    eta: str = "reference",
    terms: bool = True,
    draws: int = 20,
    progress: bool = False,
    on_step: Callable[[pd.DataFrame], None] | None = None,
    conformal: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Theorem 5 coverage and (with ``terms``) Theorem 2's terms, fitting each method once per seed.

    ``truth`` (a per-task Series, e.g. a simulated crowd's) adds the coverage target ``truth``.
    Returns ``(coverage, terms)`` with :data:`COVERAGE_COLUMNS` and :data:`TERM_COLUMNS` (``term`` in
    :data:`TERMS`; empty without ``terms``)."""
    from crowdllm.evaluate.theory import risk_decomposition, theorem5_intervals

    methods = check_methods(methods)
    alphas = sorted({float(a) for a in alphas}, reverse=True)
    if not alphas or alphas[-1] <= 0 or alphas[0] >= 1:
        raise ConfigError("alphas: give levels strictly between 0 and 1, e.g. 0.5,0.2,0.1,0.05")
    if n_virtual < 2:
        raise ConfigError(f"n_virtual must be >= 2 (got {n_virtual})")
    cov_rows: list[dict] = []
    term_rows: list[dict] = []
    with method_steps(len(seeds) * len(methods), "theory checks", cov_rows, COVERAGE_COLUMNS, progress=progress,
                      on_step=on_step) as done:
        for seed in seeds:
            train, test = split_train_test(dataset, split, test_size, seed)
            for name, factory in methods.items():
                fitted = factory(train, seed)
                crowd, reference = _crowd_and_reference(fitted, test)
                key = {"dataset": dataset.name, "split": split, "seed": seed, "method": name}
                report = theorem5_intervals(crowd, train, test, n_virtual=n_virtual, alpha=0.05, eta=eta,
                                            reference=reference, random_state=seed)
                for rec in coverage_table(report.per_task, alphas, truth=truth).to_dict("records"):
                    cov_rows.append({**key, **rec})
                if conformal:
                    cov_rows += [{**key, **rec} for rec in _conformal_rows(fitted, crowd, factory, train, test, split,
                                                                          alphas, n_virtual, seed)]
                if terms:
                    got = risk_decomposition(crowd, test, reference=reference, draws=draws, random_state=seed).terms
                    term_rows += [{**key, "term": t, "value": float(got[t])} for t in TERMS]
                done()
    return tidy(cov_rows, COVERAGE_COLUMNS), tidy(term_rows, TERM_COLUMNS)


def _conformal_rows(fitted: Any, crowd: Any, factory: Trainer, train: CrowdDataset, test: CrowdDataset,
                    split: str, alphas: Sequence[float], n_virtual: int, seed: int) -> list[dict]:
    """Coverage rows of the split-conformal interval (one crowd refitted on the training part's rest)."""
    from crowdllm.evaluate.theory import conformal_inputs

    refs = getattr(fitted, "_refs", None) if getattr(crowd, "has_reference_", False) else None
    inputs = conformal_inputs(crowd, lambda part: _crowd_and_reference(factory(part, seed), test)[0], train, test,
                              split=split, n_virtual=n_virtual, reference=refs if callable(refs) else None,
                              random_state=seed)
    rows = []
    for alpha in alphas:
        s = inputs.report(alpha).summary
        rows.append({"target": HELD_OUT, "variant": "conformal", "nominal": 1 - alpha, "coverage": s["coverage"],
                     "mean_half_width": s["half_width"], "n_tasks": int(s["tasks"])})
    return rows


def summarize_coverage(results: pd.DataFrame) -> pd.DataFrame:
    """Headline: coverage (mean over seeds), one row per method, target and variant, one column per
    nominal level (``cov@95%``), plus the mean half-width at the highest level."""
    if results.empty:
        return results
    keys = [c for c in ("method", "target", "variant") if c in results.columns]
    table = results.pivot_table(index=keys, columns="nominal", values="coverage", aggfunc="mean")
    top = float(results["nominal"].max())
    table.columns = [f"cov@{float(c):.0%}" for c in table.columns]
    width = results[results["nominal"] == top].groupby(keys)["mean_half_width"].mean()
    table[f"half_width@{top:.0%}"] = width
    return table.reset_index()


def summarize_terms(results: pd.DataFrame) -> pd.DataFrame:
    """Headline: each Theorem 2 term (mean over seeds), one column per method."""
    if results.empty:
        return results
    table = results.pivot_table(index="term", columns="method", values="value", aggfunc="mean", sort=False)
    table.columns.name = None
    table = table.reset_index()
    table["term"] = table["term"].map(lambda t: TERM_NAMES.get(t, t))
    return table
