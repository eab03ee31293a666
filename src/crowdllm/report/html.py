"""One self-contained HTML page from a results folder.

``build_report(results_dir)`` walks the folder (and its sub-folders, one section each) and renders
what it finds. The page needs nothing else: figures are inlined as base64 PNG, tables are HTML, the
style sheet is inline, and there are no scripts and no web fonts — it opens offline.

Files understood (anything else is ignored):

- ``results.csv`` — long results (``dataset, split, seed, method, aggregator, metric, value``, or any
  columns plus ``metric`` and ``value``): a summary table, mean ± std over seeds;
- an analysis' tidy CSV (``data_efficiency.csv``, ``crowd_size.csv``, ``cost_needed.csv``,
  ``growth.csv``, ``simulation.csv``, ``theory_coverage.csv``, ``theory_terms.csv``): its headline
  table; other CSVs: shown whole when short, else their first rows;
- ``*.png``: the figures, each next to the table with the same name;
- ``predictions.csv`` (``task, worker, label, source = real | virtual, method``): real vs virtual
  answer distributions of a few tasks, drawn here;
- ``usage*.json`` and ``*.usage.json``: LLM usage and cost (calls, tokens, time, money);
- ``settings*.json`` and ``run.json``: the settings and seeds to reproduce the run (a ``command`` entry
  is shown as the command line);
- ``references.csv`` (LLM references per task) and ``theory.csv`` (Theorem 5 intervals per task) from
  ``crowdllm reproduce``: their summaries;
- ``*.md``: shown as text under a fold.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import atomic_write_text
from crowdllm.errors import ConfigError, CrowdDataError

REPORT_NAME = "report.html"
MAX_ROWS = 30
PREDICTIONS = "predictions.csv"


def _analysis_tables() -> dict[str, tuple[str, Callable[[pd.DataFrame], pd.DataFrame]]]:
    import importlib

    def mod(name: str):  # the package re-exports functions under the modules' names
        return importlib.import_module(f"crowdllm.evaluate.analyses.{name}")

    return {
        "data_efficiency": ("Data efficiency", mod("data_efficiency").summarize),
        "crowd_size": ("Crowd size and resolution rate", mod("crowd_size").summarize),
        "cost_needed": ("Cost saving: virtual people needed", mod("cost").summarize),
        "cost": ("Cost saving: money", lambda f: f),
        "growth": ("Growth curves", mod("growth").summarize),
        "simulation": ("Simulation study (MAE against the known truth)", mod("simulation").summarize),
        "theory_coverage": ("Theorem 5 interval coverage", mod("theory_checks").summarize_coverage),
        "theory_terms": ("Theorem 2 risk terms", mod("theory_checks").summarize_terms),
        "references": ("LLM references", _summarize_references),
        "theory": ("Theorem 5 intervals per task", _summarize_intervals),
    }


def _summarize_references(frame: pd.DataFrame) -> pd.DataFrame:
    """``references.csv`` (one row per task: ``y_ref``, ``p_*``): how many, and the spread of ``y_ref``."""
    y = pd.to_numeric(frame["y_ref"], errors="coerce")
    row = {"tasks": len(frame), "missing": int(y.isna().sum()), "y_ref mean": y.mean(), "y_ref sd": y.std(),
           "y_ref min": y.min(), "y_ref max": y.max()}
    if "parse_failures" in frame:
        row["parse failures"] = int(pd.to_numeric(frame["parse_failures"], errors="coerce").fillna(0).sum())
    return pd.DataFrame([row])


def _summarize_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """``theory.csv`` (per-task Theorem 5 intervals): coverage and mean half-width, per split if given."""
    cols = [c for c in ("covered", "covered_sharp", "half_width", "half_width_sharp") if c in frame.columns]
    keys = [c for c in ("dataset", "split", "seed", "method") if c in frame.columns and frame[c].nunique() > 1]
    num = frame[cols].apply(pd.to_numeric, errors="coerce") if cols else frame
    if keys:
        out = num.groupby([frame[k] for k in keys]).mean().reset_index()
        out.insert(len(keys), "tasks", frame.groupby(keys).size().to_numpy())
        return out
    return pd.DataFrame([{"tasks": len(frame), **num.mean().to_dict()}])


ORDER = ["results", "references", "theory", "data_efficiency", "crowd_size", "cost_needed", "cost", "growth", "simulation",
         "theory_coverage", "theory_terms"]

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#23395d;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px 0;font-size:24px} header p{margin:0;opacity:.85;font-size:13px}
main{padding:8px 32px 40px 32px;max-width:1400px}
nav{font-size:13px;margin:12px 0} nav a{margin-right:14px;color:#23395d}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 20px;margin:18px 0}
h2{font-size:19px;border-bottom:2px solid #23395d;padding-bottom:4px} h3{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 10px 0}
th,td{border:1px solid #ccd2da;padding:3px 8px;text-align:right}
th{background:#eef1f5} td.l,th.l{text-align:left}
tr:nth-child(even) td{background:#fafbfc}
figure{margin:8px 0 16px 0} figure img{max-width:100%;border:1px solid #e3e6ea}
figcaption{font-size:12px;color:#555}
pre{background:#f1f3f5;padding:8px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
.note{font-size:12px;color:#666}
"""


# ---------------------------------------------------------------------------------------- helpers


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "–"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value - round(value)) > 1e-12 else f"{value:.0f}"
    return str(value)


def table_html(frame: pd.DataFrame, *, caption: str | None = None) -> str:
    """An escaped HTML table; text columns left-aligned, numbers formatted to 3 decimals."""
    cols = list(frame.columns)
    text_cols = {c for c in cols if not pd.api.types.is_numeric_dtype(frame[c])}
    out = ["<div class='scroll'><table>"]
    if caption:
        out.append(f"<caption class='note'>{html.escape(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th class='{'l' if c in text_cols else ''}'>{html.escape(str(c))}</th>"
                                for c in cols) + "</tr>")
    for row in frame.itertuples(index=False):
        cells = []
        for c, v in zip(cols, row, strict=True):
            cells.append(f"<td class='{'l' if c in text_cols else ''}'>{html.escape(_fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return "\n".join(out)


def image_html(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(caption, quote=True)
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{alt}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _pm(mean: float, std: float, n: int) -> str:
    if np.isnan(mean):
        return "–"
    digits = 3 if abs(mean) < 100 else 1
    return f"{mean:.{digits}f}" if n < 2 else f"{mean:.{digits}f} ± {0.0 if np.isnan(std) else std:.{digits}f}"


def summarize_results(results: pd.DataFrame) -> pd.DataFrame:
    """Long results -> one row per setting, one column per metric, cells ``mean ± std`` over seeds.

    Key columns that hold one value only (e.g. the data set) are dropped from the rows and listed in
    ``attrs["constant"]``; rows keep the order in which the file first names them."""
    if not {"metric", "value"} <= set(results.columns):
        raise CrowdDataError("results need the columns metric and value", column="metric")
    keys = [c for c in results.columns if c not in ("seed", "metric", "value")]
    frame = results.assign(value=pd.to_numeric(results["value"], errors="coerce"))
    constant = {k: str(frame[k].iloc[0]) for k in keys if frame[k].nunique(dropna=False) == 1}
    keys = [k for k in keys if k not in constant]
    stats = frame.groupby(keys + ["metric"], sort=False, dropna=False)["value"].agg(["mean", "std", "count"])
    stats["cell"] = [_pm(m, sd, n) for m, sd, n in zip(stats["mean"], stats["std"], stats["count"], strict=True)]
    stats = stats.reset_index()
    metrics = list(dict.fromkeys(results["metric"]))
    if keys:
        wide = stats.pivot(index=keys, columns="metric", values="cell")
        order = frame[keys].drop_duplicates()
        wide = wide.reindex(pd.MultiIndex.from_frame(order) if len(keys) > 1 else pd.Index(order[keys[0]]))
        wide = wide[[m for m in metrics if m in wide.columns]].fillna("–").reset_index()
    else:
        wide = stats.set_index("metric")[["cell"]].T[metrics]
    wide.columns.name = None
    wide.attrs["n_seeds"] = int(results["seed"].nunique()) if "seed" in results.columns else 1
    wide.attrs["constant"] = constant
    return wide


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(obj, dict):
        rows: list[tuple[str, str]] = []
        for k, v in obj.items():
            rows.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return rows
    if isinstance(obj, list) and all(not isinstance(v, (dict, list)) for v in obj):
        return [(prefix, ", ".join(map(str, obj)))]
    if isinstance(obj, list):
        rows = []
        for i, v in enumerate(obj):
            rows.extend(_flatten(v, f"{prefix}[{i}]"))
        return rows
    return [(prefix, _fmt(obj) if isinstance(obj, float) else str(obj))]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CrowdDataError(f"cannot read JSON: {err}", file=str(path)) from None


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise CrowdDataError(f"cannot read CSV: {' '.join(str(err).split())}", file=str(path)) from None


def _pretty(stem: str) -> str:
    return stem.replace("_", " ").replace("-", " ").strip().capitalize()


# ---------------------------------------------------------------------------------------- sections


def _folder_section(folder: Path, root: Path, *, n_tasks: int, seed: int) -> tuple[str, str] | None:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.name != REPORT_NAME)
    if not files:
        return None
    known = _analysis_tables()
    parts: list[str] = []
    # *.partial.csv: the saved steps of an unfinished analysis run, not results
    csvs = {p.stem: p for p in files if p.suffix == ".csv" and p.name != PREDICTIONS
            and not p.name.endswith(".partial.csv")}
    pngs = {p.stem: p for p in files if p.suffix == ".png"}
    stems = sorted(set(csvs) | set(pngs), key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))
    for stem in stems:
        title = "Results" if stem == "results" else known.get(stem, (_pretty(stem), None))[0]
        block = [f"<h3>{html.escape(title)}</h3>"]
        if stem in csvs:
            block.append(_csv_html(csvs[stem], stem, known))
        if stem in pngs:
            block.append(image_html(pngs[stem].read_bytes(), f"{title} ({pngs[stem].name})"))
        parts.append("\n".join(block))
    pred = folder / PREDICTIONS
    if pred.exists():
        parts.append(_predictions_html(pred, n_tasks=n_tasks, seed=seed))
        if "references" in csvs:
            parts.append(_reference_vs_human_html(csvs["references"], pred))
    for p in files:
        if p.suffix == ".json" and (p.name.startswith("usage") or p.name.endswith(".usage.json")):
            parts.append(f"<h3>LLM usage and cost ({html.escape(p.name)})</h3>" + _kv_table(_read_json(p)))
    for p in files:
        if p.suffix == ".json" and (p.name.startswith("settings") or p.name == "run.json"):
            parts.append(_settings_html(p))
    for p in files:
        if p.suffix == ".md":
            text = p.read_text(encoding="utf-8", errors="replace")
            parts.append(f"<details><summary>{html.escape(p.name)}</summary><pre>{html.escape(text)}</pre></details>")
    if not parts:
        return None
    rel = folder.relative_to(root).as_posix()
    name = "." if rel == "." else rel
    anchor = "sec-" + "".join(ch if ch.isalnum() else "-" for ch in name)
    return anchor, (f"<section id='{anchor}'><h2>{html.escape(name if name != '.' else root.name)}</h2>\n"
                    + "\n".join(parts) + "</section>")


#: Headline columns: the first (aggregator, metric) found in the results names each column.
HEADLINE = {"MAE": [("mean", "mae"), ("count", "mae")], "Avg WD": [("-", "avg_wd"), ("count", "wd")],
            "CS": [("mean", "cs_centered"), ("count", "cs_raw")], "error rate": [("mv", "error_rate")],
            "Avg TVD": [("-", "avg_tvd")], "CS dist": [("-", "cs_dist")]}
HIGHER_IS_BETTER = {"CS", "CS dist"}
FLOOR_METHODS = ("noise-ceiling", "split-half")


def compact_tables(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One table per split: methods as rows (floors last), the headline metrics as columns (means over
    seeds). Numeric labels show MAE, Avg WD and CS (centred, mean aggregator); votes their count metrics;
    categories error rate, Avg TVD and CS dist."""
    if not {"method", "metric", "value"} <= set(results.columns):
        return {}
    frame = results.assign(value=pd.to_numeric(results["value"], errors="coerce"))
    if "aggregator" not in frame:
        frame["aggregator"] = "-"
    if "split" not in frame:
        frame["split"] = "all"
    out: dict[str, pd.DataFrame] = {}
    for split, part in frame.groupby("split", sort=False):
        means = part.groupby(["method", "aggregator", "metric"], sort=False)["value"].mean()
        methods = list(dict.fromkeys(part["method"]))
        cols: dict[str, pd.Series] = {}
        for name, keys in HEADLINE.items():
            for agg, metric in keys:
                if (agg, metric) in {(a, m) for _, a, m in means.index}:
                    cols[name] = means.xs((agg, metric), level=("aggregator", "metric")).reindex(methods)
                    break
        if "CS" in cols and "CS dist" in cols:
            cols.pop("CS dist")
        if not cols:
            continue
        table = pd.DataFrame(cols)
        table = table.dropna(how="all")
        order = [m for m in table.index if m not in FLOOR_METHODS] + [m for m in table.index if m in FLOOR_METHODS]
        out[str(split)] = table.loc[order]
    return out


def compact_html(table: pd.DataFrame, caption: str) -> str:
    """A compact table with the best non-floor value of each column in bold; floors shaded, last."""
    cols = list(table.columns)
    best: dict[str, float] = {}
    models = table[~table.index.isin(FLOOR_METHODS)]
    for c in cols:
        vals = models[c].dropna()
        if len(vals):
            best[c] = float(vals.max() if c in HIGHER_IS_BETTER else vals.min())
    out = ["<div class='scroll'><table>", f"<caption class='note'>{html.escape(caption)}</caption>",
           "<tr><th class='l'>method</th>" + "".join(
               f"<th>{html.escape(c)} {'↑' if c in HIGHER_IS_BETTER else '↓'}</th>" for c in cols) + "</tr>"]
    for method, row in table.iterrows():
        floor = method in FLOOR_METHODS
        cells = []
        for c in cols:
            v = row[c]
            text = html.escape(_fmt(v))
            if not floor and c in best and pd.notna(v) and abs(float(v) - best[c]) < 1e-12:
                text = f"<b>{text}</b>"
            cells.append(f"<td>{text}</td>")
        style = " style='color:#666;font-style:italic'" if floor else ""
        out.append(f"<tr{style}><td class='l'>{html.escape(str(method))}</td>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return "\n".join(out)


def _headline_html(frame: pd.DataFrame, path: Path) -> str:
    from crowdllm.report.figures import plot_method_errors

    tables = compact_tables(frame)
    if not tables:
        return ""
    n_seeds = int(frame["seed"].nunique()) if "seed" in frame.columns else 1
    parts = []
    for split, table in tables.items():
        parts.append(compact_html(table, f"split: {split} — mean over {n_seeds} seed(s); best in bold; "
                                          "floors (the best any model can do) last, in grey"))
    metric = next((m for m in ("MAE", "error rate", "Avg WD") if all(m in t.columns for t in tables.values())), None)
    if metric is not None:
        long = pd.concat([t[[metric]].assign(split=s).rename_axis("method").reset_index() for s, t in tables.items()],
                         ignore_index=True)
        png = plot_method_errors(long, None, metric=metric)
        assert png is not None
        parts.append(image_html(png, f"{metric} per method and split from {path.name}; dashed: the noise floor"))
    return "\n".join(parts)


def _csv_html(path: Path, stem: str, known: dict) -> str:
    frame = _read_csv(path)
    if stem == "results" and {"metric", "value"} <= set(frame.columns):
        wide = summarize_results(frame)
        fixed = "; ".join(f"{k}: {v}" for k, v in wide.attrs["constant"].items())
        note = (f"mean ± std over {wide.attrs['n_seeds']} seed(s); {len(frame)} rows in {path.name}"
                + (f"; {fixed}" if fixed else ""))
        headline = _headline_html(frame, path) if "method" in frame.columns else ""
        if not headline:
            return table_html(wide, caption=note)
        return (headline + f"<details><summary>Appendix: every split, method, aggregator and metric "
                f"({len(wide)} rows)</summary>" + table_html(wide, caption=note) + "</details>")
    if stem in known and stem != "cost":
        try:
            head = known[stem][1](frame)
        except (KeyError, ValueError, TypeError) as err:  # a hand-edited file: show it raw instead
            head = frame.head(MAX_ROWS)
            return table_html(head, caption=f"{path.name}: could not summarise ({err}); first rows")
        return table_html(head, caption=f"headline of {path.name} ({len(frame)} rows)")
    if len(frame) > MAX_ROWS:
        return table_html(frame.head(MAX_ROWS), caption=f"first {MAX_ROWS} of {len(frame)} rows of {path.name}")
    return table_html(frame, caption=path.name)


def _predictions_html(path: Path, *, n_tasks: int, seed: int) -> str:
    from crowdllm.report.figures import plot_distributions

    frame = _read_csv(path)
    head = "<h3>Real vs virtual answers</h3>"
    missing = [c for c in ("task", "label", "source") if c not in frame.columns]
    if missing:
        return head + f"<p class='note'>{html.escape(path.name)} lacks column(s) {', '.join(missing)}.</p>"
    try:
        png = plot_distributions(frame, None, n=n_tasks, seed=seed)
    except ConfigError as err:
        return head + f"<p class='note'>{html.escape(str(err))}</p>"
    assert png is not None
    n_real = int((frame["source"] == "real").sum())
    n_virtual = int((frame["source"] == "virtual").sum())
    return head + image_html(png, f"answer distributions of {n_tasks} tasks from {path.name} "
                                  f"({n_real} real and {n_virtual} virtual answers in the file)")


def _reference_vs_human_html(refs_path: Path, pred_path: Path) -> str:
    from crowdllm.report.figures import plot_reference_vs_human

    refs, pred = _read_csv(refs_path), _read_csv(pred_path)
    if not {"task", "y_ref"} <= set(refs.columns) or not {"task", "label", "source"} <= set(pred.columns):
        return ""
    real = pred[pred["source"] == "real"]
    human = pd.to_numeric(real["label"], errors="coerce").groupby(real["task"].astype(str)).mean()
    y_ref = pd.to_numeric(refs.set_index(refs["task"].astype(str))["y_ref"], errors="coerce")
    pairs = pd.DataFrame({"y_ref": y_ref.reindex(human.index), "human_mean": human}).dropna()
    if len(pairs) < 3:
        return ""
    png = plot_reference_vs_human(pairs)
    assert png is not None
    return ("<h3>The LLM reference against the human mean</h3>"
            + image_html(png, f"per task: {refs_path.name} against the real answers in {pred_path.name}"))


def _kv_table(obj: Any) -> str:
    rows = _flatten(obj)
    if not rows:
        return "<p class='note'>empty</p>"
    return table_html(pd.DataFrame(rows, columns=["setting", "value"]))


def _settings_html(path: Path) -> str:
    obj = _read_json(path)
    out = [f"<h3>Settings to reproduce ({html.escape(path.name)})</h3>"]
    if isinstance(obj, dict) and obj.get("command"):
        cmd = obj["command"]
        cmd = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
        out.append(f"<pre>{html.escape(cmd)}</pre>")
        obj = {k: v for k, v in obj.items() if k != "command"}
        out.append(f"<details><summary>all settings</summary>{_kv_table(obj)}</details>")
    else:
        out.append(_kv_table(obj))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- page


def build_report(results_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
                 title: str | None = None, n_tasks: int = 3, seed: int = 0) -> Path:
    """Write the report of ``results_dir`` to ``out`` (default ``results_dir/report.html``); return its path."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ConfigError(f"results folder '{root}' does not exist")
    sections = []
    folders = [root] + sorted(p for p in root.rglob("*") if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        sec = _folder_section(folder, root, n_tasks=n_tasks, seed=seed)
        if sec:
            sections.append((folder, *sec))
    if not sections:
        raise ConfigError(f"results folder '{root}' holds no results (CSV, PNG or JSON files)")
    from crowdllm import __version__

    title = title or f"crowdllm report: {root.resolve().name}"
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(
        f"<a href='#{anchor}'>{html.escape(f.relative_to(root).as_posix() if f != root else root.name)}</a>"
        for f, anchor, _ in sections)
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>generated {stamp} by crowdllm {html.escape(__version__)} "
        f"from {html.escape(str(root))}</p></header><main><nav>{nav}</nav>"
        + "\n".join(s for _, _, s in sections) + "</main></body></html>\n"
    )
    target = Path(out) if out is not None else root / REPORT_NAME
    atomic_write_text(target, page)
    return target
