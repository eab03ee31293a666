"""Figures of the analyses, as PNG (matplotlib, Agg; no global pyplot state).

Every ``plot_*`` function takes the tidy frame an analysis returned and either writes a PNG to
``path`` (atomically) or, with ``path=None``, returns the PNG bytes. Each draws what the paper's
corresponding figure shows.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import atomic_write_bytes, rng
from crowdllm.errors import ConfigError

METRIC_NAMES = {"mae": "MAE", "rmse": "RMSE", "wd": "Avg WD", "resolution_rate": "resolution rate"}
DPI = 100


def _figure(n_panels: int, *, ncols: int | None = None, panel: tuple[float, float] = (4.6, 3.4)) -> tuple[Any, list]:
    from matplotlib.figure import Figure

    ncols = ncols or min(n_panels, 3)
    nrows = int(np.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _finish(fig: Any, path: str | os.PathLike[str] | None) -> bytes | None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    data = buf.getvalue()
    if path is None:
        return data
    atomic_write_bytes(path, data)
    return None


def _colors(n: int, cmap: str = "tab10") -> list:
    from matplotlib import colormaps

    cm = colormaps[cmap]
    return [cm(i % cm.N) for i in range(n)] if cmap == "tab10" else [cm(x) for x in np.linspace(0.35, 1.0, n)]


def _need(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"cannot draw {what}: the results have no column(s) {', '.join(missing)}")


def _mean_std(frame: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    return frame.groupby(by, sort=True)[value].agg(["mean", "std"]).reset_index().fillna({"std": 0.0})


# ---------------------------------------------------------------------------------------- analyses


def plot_data_efficiency(results: pd.DataFrame, path: str | os.PathLike[str] | None = None,
                         metrics: Sequence[str] = ("mae", "wd")) -> bytes | None:
    """Error vs number of virtual people; one line per method and training fraction (Figure 4)."""
    _need(results, ["method", "fraction", "n_virtual", "metric", "value"], "the data-efficiency figure")
    metrics = [m for m in metrics if m in set(results["metric"])]
    fig, axes = _figure(len(metrics), ncols=len(metrics))
    methods = list(dict.fromkeys(results["method"]))
    fractions = sorted(results["fraction"].unique())
    styles = ["-", "--", ":", "-."]
    for ax, metric in zip(axes, metrics, strict=True):
        sub = _mean_std(results[results["metric"] == metric], ["method", "fraction", "n_virtual"])
        for mi, method in enumerate(methods):
            shades = _colors(len(fractions), ["Blues", "Oranges", "Greens", "Purples", "Greys"][mi % 5])
            for fi, frac in enumerate(fractions):
                line = sub[(sub["method"] == method) & (sub["fraction"] == frac)]
                if line.empty:
                    continue
                ax.plot(line["n_virtual"], line["mean"], styles[mi % 4], marker="o", ms=3, color=shades[fi],
                        label=f"{method} ({frac:.0%})")
        ax.set_xscale("log")
        ax.set_xlabel("virtual people per task")
        ax.set_ylabel(METRIC_NAMES.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, ncols=max(1, len(methods) // 2), loc="upper right")
    fig.suptitle("Data efficiency: error vs virtual crowd size, by share of training people")
    return _finish(fig, path)


def plot_crowd_size(results: pd.DataFrame, path: str | os.PathLike[str] | None = None) -> bytes | None:
    """Resolution rate vs crowd size, diverse (solid) vs fixed (dashed) profiles (Figure 5)."""
    _need(results, ["method", "profiles", "n_virtual", "tolerance", "resolution_rate"], "the crowd-size figure")
    tols = sorted(results["tolerance"].unique())[:4]
    fig, axes = _figure(len(tols), ncols=len(tols))
    keys = list(dict.fromkeys(zip(results["method"], results["fraction"], strict=True)))
    colors = _colors(len(keys))
    for ax, tol in zip(axes, tols, strict=True):
        sub = _mean_std(results[results["tolerance"] == tol], ["method", "fraction", "profiles", "n_virtual"],
                        "resolution_rate")
        for ci, (method, frac) in enumerate(keys):
            for kind, style in (("diverse", "-"), ("fixed", "--")):
                line = sub[(sub["method"] == method) & (sub["fraction"] == frac) & (sub["profiles"] == kind)]
                if line.empty:
                    continue
                label = f"{method}" + (f" ({frac:.0%})" if frac < 1 else "") + f", {kind}"
                ax.plot(line["n_virtual"], line["mean"], style, marker="o", ms=3, color=colors[ci], label=label)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("virtual people per task")
        ax.set_ylabel(f"resolution rate (|error| <= {tol:g})")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7)
    fig.suptitle("Resolution rate vs crowd size: diverse vs fixed profiles")
    return _finish(fig, path)


def plot_cost(needed: pd.DataFrame, path: str | os.PathLike[str] | None = None) -> bytes | None:
    """Share of tasks by virtual people needed to match the real crowd, per tolerance (Figure 24)."""
    from crowdllm.evaluate.analyses.cost import BINS, needed_histogram

    _need(needed, ["method", "tolerance", "n_needed", "seed"], "the cost figure")
    hist = needed_histogram(needed)
    tols = sorted(hist["tolerance"].unique())
    fig, axes = _figure(len(tols), ncols=min(len(tols), 4), panel=(4.0, 3.2))
    methods = list(dict.fromkeys(needed["method"]))
    colors = _colors(len(methods))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(BINS))
    for ax, tol in zip(axes, tols, strict=True):
        for mi, method in enumerate(methods):
            sub = hist[(hist["tolerance"] == tol) & (hist["method"] == method)].set_index("bin")
            ax.bar(x + (mi - (len(methods) - 1) / 2) * width, sub["share"].reindex(BINS).fillna(0.0), width,
                   color=colors[mi], label=method)
        ax.set_xticks(x, BINS)
        ax.set_xlabel("virtual people needed")
        ax.set_ylabel("share of tasks")
        ax.set_title(f"within ±{tol:g} of the real crowd")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.suptitle("How many virtual people match the real crowd's answer")
    return _finish(fig, path)


def plot_growth(results: pd.DataFrame, path: str | os.PathLike[str] | None = None,
                metric: str = "mae") -> bytes | None:
    """Error vs amount of training data, one panel per factor (appendix B.1-B.4)."""
    _need(results, ["method", "factor", "level", "metric", "value"], "the growth figure")
    factors = list(dict.fromkeys(results["factor"]))
    fig, axes = _figure(len(factors), ncols=min(4, len(factors)), panel=(4.0, 3.2))
    methods = list(dict.fromkeys(results["method"]))
    colors = _colors(len(methods))
    sub = _mean_std(results[results["metric"] == metric], ["factor", "method", "level"])
    cov = results[results["metric"] == "coverage"].groupby(["factor", "method", "level"])["value"].mean()
    partial_seen = False
    for ax, factor in zip(axes, factors, strict=True):
        for mi, method in enumerate(methods):
            line = sub[(sub["factor"] == factor) & (sub["method"] == method)]
            ax.errorbar(line["level"], line["mean"], yerr=line["std"], marker="o", ms=3, capsize=2,
                        color=colors[mi], label=method)
            # hollow markers: the method answered only part of the held-out tasks at that level
            part = [(lv, m) for lv, m in zip(line["level"], line["mean"], strict=True)
                    if cov.get((factor, method, lv), 1.0) < 0.99]
            if part:
                partial_seen = True
                ax.plot(*zip(*part, strict=True), "o", ms=6, mfc="white", color=colors[mi])
        ax.set_xscale("log")
        levels = sorted(sub.loc[sub["factor"] == factor, "level"].unique())
        ax.set_xticks(levels, [f"{int(v)}" for v in levels], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel(factor.replace("_", " "))
        ax.set_ylabel(METRIC_NAMES.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{METRIC_NAMES.get(metric, metric)} as the training data grow"
                 + (" (hollow: over the tasks the method could answer only)" if partial_seen else ""))
    return _finish(fig, path)


def plot_simulation(results: pd.DataFrame, path: str | os.PathLike[str] | None = None,
                    method: str | None = None) -> bytes | None:
    """MAE against the truth vs number of people; rows = noise, columns = belief diversity, shade =
    tasks per person (Figure 9). Dotted grey: the simulated real crowd."""
    from crowdllm.evaluate.analyses.simulation import REAL_CROWD

    _need(results, ["noise", "diversity", "n_workers", "tasks_per_worker", "method", "metric", "value"],
          "the simulation figure")
    mae = results[results["metric"] == "mae"]
    methods = [m for m in dict.fromkeys(mae["method"]) if m != REAL_CROWD]
    method = method or (methods[0] if methods else REAL_CROWD)
    noises = sorted(mae["noise"].unique())
    divs = sorted(mae["diversity"].unique())
    fig, axes = _figure(len(noises) * len(divs), ncols=len(divs), panel=(3.6, 2.8))
    ks = sorted(mae["tasks_per_worker"].unique())
    shades = _colors(len(ks), "Blues")
    ymax = float(mae["value"].max()) * 1.05 if len(mae) else 1.0
    for i, z in enumerate(noises):
        for j, d in enumerate(divs):
            ax = axes[i * len(divs) + j]
            cell = mae[(mae["noise"] == z) & (mae["diversity"] == d)]
            for ki, k in enumerate(ks):
                for name, style, color in ((method, "-", shades[ki]), (REAL_CROWD, ":", "grey")):
                    line = _mean_std(cell[(cell["tasks_per_worker"] == k) & (cell["method"] == name)],
                                     ["n_workers"])
                    if line.empty:
                        continue
                    ax.plot(line["n_workers"], line["mean"], style, marker="o", ms=3, color=color,
                            label=f"{name}, {k} tasks/person" if name == method else
                            (REAL_CROWD if ki == 0 else None))
            ax.set_ylim(0, ymax)
            ax.set_title(f"noise {z:g}, diversity {d:g}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(noises) - 1:
                ax.set_xlabel("people in the training data")
            if j == 0:
                ax.set_ylabel("MAE vs truth")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"Simulation study: {method}")
    return _finish(fig, path)


def plot_theory_coverage(results: pd.DataFrame, path: str | os.PathLike[str] | None = None) -> bytes | None:
    """Empirical coverage of the Theorem 5 interval vs its nominal level (the diagonal is calibration);
    solid: the theorem's interval, dashed: the sharp variant; one colour per method and target."""
    _need(results, ["nominal", "coverage"], "the coverage figure")
    fig, axes = _figure(1, panel=(5.6, 4.4))
    ax = axes[0]
    colour_keys = [c for c in ("method", "target") if c in results.columns]
    groups = colour_keys + (["variant"] if "variant" in results.columns else [])
    pieces = list(results.groupby(groups, sort=True)) if groups else [((), results)]
    colour_of: dict = {}
    for key, sub in pieces:
        key = key if isinstance(key, tuple) else (key,)
        ckey = key[:len(colour_keys)]
        colour_of.setdefault(ckey, _colors(10)[len(colour_of) % 10])
        sharp = "variant" in groups and key[-1] == "sharp"
        line = _mean_std(sub, ["nominal"], "coverage")
        ax.errorbar(line["nominal"], line["mean"], yerr=line["std"], fmt="--" if sharp else "-", marker="o", ms=4,
                    capsize=2, color=colour_of[ckey], label=" / ".join(map(str, key)) or None)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="nominal")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("nominal level 1 - alpha")
    ax.set_ylabel("empirical coverage")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle("Theorem 5 interval: coverage vs nominal level")
    return _finish(fig, path)


def plot_theory_terms(results: pd.DataFrame, path: str | os.PathLike[str] | None = None) -> bytes | None:
    """The Theorem 2 risk terms as bars, per method (mean over seeds; error bars = std)."""
    _need(results, ["term", "value"], "the risk-terms figure")
    fig, axes = _figure(1, panel=(7.0, 3.8))
    ax = axes[0]
    methods = list(dict.fromkeys(results["method"])) if "method" in results.columns else [None]
    terms = list(dict.fromkeys(results["term"]))
    colors = _colors(len(methods))
    width = 0.8 / len(methods)
    x = np.arange(len(terms))
    for mi, method in enumerate(methods):
        sub = results if method is None else results[results["method"] == method]
        stats = _mean_std(sub, ["term"]).set_index("term").reindex(terms)
        ax.bar(x + (mi - (len(methods) - 1) / 2) * width, stats["mean"], width, yerr=stats["std"],
               color=colors[mi], capsize=2, label=method)
    from crowdllm.evaluate.analyses.theory_checks import TERM_NAMES

    ax.set_xticks(x, [TERM_NAMES.get(t, t.replace("_", " ")) for t in terms], rotation=20, ha="right", fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("squared error units")
    ax.grid(alpha=0.3, axis="y")
    if methods != [None]:
        ax.legend(fontsize=7)
    fig.suptitle("Theorem 2: risk = bias + noise + twin discrepancy + uncertainty - diversity")
    return _finish(fig, path)


# ---------------------------------------------------------------------------------------- predictions


def pick_tasks(predictions: pd.DataFrame, n: int = 3, seed: int = 0) -> list[str]:
    """A seeded choice of ``n`` tasks that have both real and virtual answers, preferring tasks with
    more real answers (their distribution is worth looking at)."""
    real = predictions[predictions["source"] == "real"].groupby("task").size()
    virtual = set(predictions.loc[predictions["source"] == "virtual", "task"])
    real = real[real.index.isin(virtual)]
    if real.empty:
        return []
    rich = real[real >= real.quantile(0.5)]
    chosen = rng(seed).choice(rich.index.to_numpy(), size=min(n, len(rich)), replace=False)
    return sorted(map(str, chosen))


def plot_distributions(predictions: pd.DataFrame, path: str | os.PathLike[str] | None = None, *,
                       tasks: Sequence[str] | None = None, n: int = 3, seed: int = 0,
                       levels: Sequence[Any] | None = None) -> bytes | None:
    """Real vs virtual answer distributions for a few tasks (Figures 6-7): one panel per task, one bar
    group per label, one bar per source (real people, then each method's virtual people).

    ``predictions`` has ``task, worker, label, source`` (``real`` | ``virtual``) and ``method``."""
    _need(predictions, ["task", "label", "source"], "the distribution figure")
    frame = predictions.assign(task=predictions["task"].astype(str))
    if "method" not in frame.columns:
        frame["method"] = ""
    frame["who"] = np.where(frame["source"] == "real", "real people", frame["method"].astype(str))
    chosen = list(tasks) if tasks is not None else pick_tasks(frame, n=n, seed=seed)
    if not chosen:
        raise ConfigError("predictions: no task has both real and virtual answers")
    if levels is None:
        values = frame["label"].dropna().unique()
        try:
            levels = sorted(values, key=float)
        except (TypeError, ValueError):
            levels = sorted(map(str, values))
    labels = [f"{float(v):g}" if _is_number(v) else str(v) for v in levels]
    frame["lab"] = frame["label"].map(lambda v: str(float(v)) if _is_number(v) else str(v))
    keyed = [str(float(v)) if _is_number(v) else str(v) for v in levels]
    whos = ["real people"] + [w for w in dict.fromkeys(frame["who"]) if w != "real people"]
    colors = ["#333333"] + _colors(len(whos) - 1)
    fig, axes = _figure(len(chosen), ncols=min(3, len(chosen)), panel=(4.4, 3.2))
    width = 0.8 / len(whos)
    x = np.arange(len(labels))
    for ax, task in zip(axes, chosen, strict=True):
        sub = frame[frame["task"] == task]
        for wi, who in enumerate(whos):
            part = sub[sub["who"] == who]
            if part.empty:
                continue
            share = part["lab"].value_counts(normalize=True).reindex(keyed).fillna(0.0)
            ax.bar(x + (wi - (len(whos) - 1) / 2) * width, share.to_numpy(), width, color=colors[wi],
                   label=f"{who} (n={len(part)})")
        ax.set_xticks(x, labels)
        ax.set_ylim(0, 1)
        ax.set_title(f"task {task}", fontsize=9)
        ax.set_xlabel("answer")
        ax.set_ylabel("share of answers")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Real vs virtual answers on a few tasks")
    return _finish(fig, path)


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------------------- headline figures
FLOORS = ("noise-ceiling", "split-half")


def plot_method_errors(table: pd.DataFrame, path: str | os.PathLike[str] | None = None, *,
                       metric: str = "MAE") -> bytes | None:
    """Each method's error per split (one panel a split, one bar a method), with the noise floor drawn
    in as a dashed line. ``table``: ``split, method`` and a column ``metric`` (means over seeds)."""
    _need(table, ["split", "method", metric], "the error chart")
    splits = list(dict.fromkeys(table["split"]))
    fig, axes = _figure(len(splits), ncols=min(3, len(splits)), panel=(4.8, 3.4))
    for ax, split in zip(axes, splits, strict=True):
        sub = table[table["split"] == split]
        methods = sub[~sub["method"].isin(FLOORS)].dropna(subset=[metric])
        methods = methods.sort_values(metric, ascending=True)
        y = np.arange(len(methods))
        colors = ["#23395d" if m == "crowdllm" else "#8a9bb5" for m in methods["method"]]
        ax.barh(y, methods[metric].to_numpy(dtype=float), color=colors)
        ax.set_yticks(y, methods["method"].tolist(), fontsize=8)
        ax.invert_yaxis()
        floor = sub.loc[sub["method"] == "noise-ceiling", metric]
        if len(floor) and np.isfinite(float(floor.iloc[0])):
            ax.axvline(float(floor.iloc[0]), color="#c0392b", ls="--", lw=1.5,
                       label=f"noise floor {float(floor.iloc[0]):.2f}")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel(f"{metric} (lower is better)")
        ax.set_title(f"split: {split}", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"{metric} of each method against held-out real people")
    return _finish(fig, path)


def plot_reference_vs_human(pairs: pd.DataFrame, path: str | os.PathLike[str] | None = None) -> bytes | None:
    """The LLM reference ``y_ref`` against the real people's mean per task (``y_ref``, ``human_mean``)."""
    _need(pairs, ["y_ref", "human_mean"], "the reference figure")
    x = pairs["y_ref"].to_numpy(dtype=float)
    y = pairs["human_mean"].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    fig, axes = _figure(1, panel=(4.8, 4.0))
    ax = axes[0]
    ax.scatter(x[ok], y[ok], s=12, alpha=0.6, color="#23395d")
    lo = float(np.nanmin(np.concatenate([x[ok], y[ok]]))) if ok.any() else 0.0
    hi = float(np.nanmax(np.concatenate([x[ok], y[ok]]))) if ok.any() else 1.0
    ax.plot([lo, hi], [lo, hi], color="#999", lw=1, ls=":", label="y = x")
    r = float(np.corrcoef(x[ok], y[ok])[0, 1]) if ok.sum() > 2 and np.std(x[ok]) > 0 and np.std(y[ok]) > 0 else np.nan
    ax.set_xlabel("LLM reference (expected answer)")
    ax.set_ylabel("mean of the real people")
    ax.set_title(f"{int(ok.sum())} tasks; correlation {r:.2f}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _finish(fig, path)
