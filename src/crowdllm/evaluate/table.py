"""Results tables laid out like the CrowdLLM paper: methods as rows, metric x aggregator columns.

Ratings: MAE (Mean, Median, MV, DS, GLAD) | RMSE (same) | CS dist | CS raw | CS centered | Avg WD,
with CS raw / centered of the per-task means (the first aggregator when mean is not used).
Categorical labels: Error (MV, DS, GLAD) | CS dist | Avg TVD. Top-k votes: MAE | RMSE | CS raw |
CS centered | WD of the per-item vote counts. A coverage column appears when a method left tasks
out. Cells are ``mean ± std`` over seeds; the best method per column is bold (ceiling rows excluded).

Results with a ``protocol`` column (:data:`crowdllm.evaluate.metrics.PROTOCOLS`: ``matched``, one
virtual answer per real one; ``population``, each method's answer distribution) get one table per
(dataset, split, protocol), and the title says which protocol the numbers are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import atomic_path, atomic_write_text
from crowdllm.evaluate.metrics import COUNT, NO_AGGREGATOR
from crowdllm.evaluate.noise import CEILING_METHODS, SAMPLING_ORACLE
from crowdllm.evaluate.runner import RESULT_COLUMNS, summarize

AGGREGATOR_TITLES = {"mean": "Mean", "median": "Median", "mv": "MV", "ds": "DS", "glad": "GLAD"}
LOWER_IS_BETTER = {"mae", "rmse", "avg_wd", "wd", "error_rate", "avg_tvd"}
LEGEND = ("lower is better: MAE, RMSE, WD, Error, TVD; higher is better: CS (cosine similarity), coverage. "
          "noise-ceiling: an oracle that knows each task's full distribution, scored against gold-sized samples; "
          "sampling-oracle: that distribution sampled at gold size (the floor of one virtual answer per real one); "
          "split-half: half of the real crowd scored against the other half.")
PROTOCOL_LEGEND = {
    "matched": "matched protocol: one virtual answer per held-out real answer (its floor: "
               f"{SAMPLING_ORACLE}, the population distribution itself sampled at gold size)",
    "population": "population protocol: each method's per-task answer distribution (a large virtual crowd) "
                  "scored against the real answers (its floor: noise-ceiling)",
}


@dataclass(frozen=True)
class Column:
    group: str  # e.g. "MAE"
    sub: str  # e.g. "Mean" ("" when the group is the whole header)
    aggregator: str
    metric: str

    @property
    def header(self) -> str:
        return f"{self.group} {self.sub}".strip()


def table_columns(summary: pd.DataFrame) -> list[Column]:
    """The columns to show for one (dataset, split) summary, in paper order."""
    present = set(zip(summary["aggregator"], summary["metric"], strict=True))
    aggs = [a for a in pd.unique(summary["aggregator"]) if a not in (NO_AGGREGATOR, COUNT)]
    cols: list[Column] = []
    if (COUNT, "mae") in present:  # top-k votes
        for metric, title in (("mae", "MAE"), ("rmse", "RMSE"), ("cs_raw", "CS raw"), ("cs_centered", "CS centered"),
                              ("wd", "WD")):
            cols.append(Column(title, "", COUNT, metric))
    elif any(m == "error_rate" for _, m in present):  # categorical
        cols += [Column("Error", AGGREGATOR_TITLES.get(a, a), a, "error_rate") for a in aggs]
        cols += [Column("CS dist", "", NO_AGGREGATOR, "cs_dist"), Column("Avg TVD", "", NO_AGGREGATOR, "avg_tvd")]
    else:
        cols += [Column("MAE", AGGREGATOR_TITLES.get(a, a), a, "mae") for a in aggs]
        cols += [Column("RMSE", AGGREGATOR_TITLES.get(a, a), a, "rmse") for a in aggs]
        cols.append(Column("CS dist", "", NO_AGGREGATOR, "cs_dist"))
        if aggs:
            cs_agg = "mean" if "mean" in aggs else aggs[0]
            suffix = "" if cs_agg == "mean" else f" ({AGGREGATOR_TITLES.get(cs_agg, cs_agg)})"
            cols += [Column("CS raw" + suffix, "", cs_agg, "cs_raw"),
                     Column("CS centered" + suffix, "", cs_agg, "cs_centered")]
        cols.append(Column("Avg WD", "", NO_AGGREGATOR, "avg_wd"))
    cov = summary[summary["metric"] == "coverage"]["mean"]
    if len(cov) and (cov < 1.0).any():
        cols.append(Column("Coverage", "", NO_AGGREGATOR, "coverage"))
    return [c for c in cols if (c.aggregator, c.metric) in present]


def format_cell(mean: float, std: float, n: int, digits: int = 2) -> str:
    if mean is None or not np.isfinite(mean):
        return "—"
    if n > 1 and std is not None and np.isfinite(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def _ensure_summary(frame: pd.DataFrame) -> pd.DataFrame:
    if "mean" in frame.columns and "value" not in frame.columns:
        return frame
    return summarize(frame)


def _groups(summary: pd.DataFrame) -> list[tuple[tuple[str, ...], pd.DataFrame]]:
    keys = ["dataset", "split", "protocol"] if "protocol" in summary.columns else ["dataset", "split"]
    return [(tuple(str(v) for v in key), g) for key, g in summary.groupby(keys, sort=False)]


def table_cells(summary: pd.DataFrame, digits: int = 2) -> tuple[list[Column], list[str], list[list[str]],
                                                                   list[list[bool]]]:
    """For one (dataset, split): columns, row names (methods, ceiling rows last), cell texts, bold flags."""
    cols = table_columns(summary)
    methods = [m for m in pd.unique(summary["method"]) if m not in CEILING_METHODS]
    methods += [m for m in CEILING_METHODS if m in set(summary["method"])]
    lookup = {(r.method, r.aggregator, r.metric): r for r in summary.itertuples(index=False)}
    texts, bold = [], []
    best: dict[int, float] = {}
    for j, c in enumerate(cols):
        vals = [lookup[(m, c.aggregator, c.metric)].mean for m in methods
                if m not in CEILING_METHODS and (m, c.aggregator, c.metric) in lookup]
        vals = [v for v in vals if np.isfinite(v)]
        if len(vals) > 1:
            best[j] = min(vals) if c.metric in LOWER_IS_BETTER else max(vals)
    for m in methods:
        row, flags = [], []
        for j, c in enumerate(cols):
            r = lookup.get((m, c.aggregator, c.metric))
            if r is None:
                row.append("—")
                flags.append(False)
                continue
            row.append(format_cell(r.mean, r.std, int(r.n_seeds), digits))
            flags.append(m not in CEILING_METHODS and j in best and np.isfinite(r.mean)
                         and round(r.mean, digits) == round(best[j], digits))
        texts.append(row)
        bold.append(flags)
    return cols, methods, texts, bold


def _title(key: tuple[str, ...], summary: pd.DataFrame) -> str:
    n = int(summary["n_seeds"].max()) if len(summary) else 0
    protocol = f", {key[2]} protocol" if len(key) > 2 else ""
    return f"{key[0]} — split by {key[1]}{protocol} ({n} seed{'s' if n != 1 else ''}, mean ± std)"


def _legend(summary: pd.DataFrame) -> list[str]:
    if "protocol" not in summary.columns:
        return [LEGEND]
    return [LEGEND, *[PROTOCOL_LEGEND[p] for p in pd.unique(summary["protocol"]) if p in PROTOCOL_LEGEND]]


def to_markdown(results_or_summary: pd.DataFrame, digits: int = 2) -> str:
    """One Markdown table per (dataset, split), then the legend and any notes."""
    summary = _ensure_summary(results_or_summary)
    parts = []
    for key, group in _groups(summary):
        cols, methods, texts, bold = table_cells(group, digits)
        header = ["Method", *[c.header for c in cols]]
        lines = [f"### {_title(key, group)}", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|"]
        for m, row, flags in zip(methods, texts, bold, strict=True):
            cells = [f"**{t}**" if f else t for t, f in zip(row, flags, strict=True)]
            name = f"*{m}*" if m in CEILING_METHODS else m
            lines.append("| " + " | ".join([name, *cells]) + " |")
        parts.append("\n".join(lines))
    parts.append("\n".join(_legend(summary)))
    notes = summary.attrs.get("notes") or []
    if notes:
        parts.append("Notes:\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts) + "\n"


def to_rich(results_or_summary: pd.DataFrame, digits: int = 2) -> Any:
    """A rich renderable: one table per (dataset, split), the legend and the notes."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    summary = _ensure_summary(results_or_summary)
    items: list[Any] = []
    for key, group in _groups(summary):
        cols, methods, texts, bold = table_cells(group, digits)
        table = Table(title=_title(key, group), title_justify="left", show_lines=False)
        table.add_column("Method", no_wrap=True)
        for c in cols:
            table.add_column(f"{c.group}\n{c.sub}" if c.sub else c.group, justify="right", no_wrap=True)
        for i, (m, row, flags) in enumerate(zip(methods, texts, bold, strict=True)):
            ceiling = m in CEILING_METHODS
            cells = [Text(t, style="bold" if f else ("dim" if ceiling else "")) for t, f in zip(row, flags, strict=True)]
            end_section = not ceiling and i + 1 < len(methods) and methods[i + 1] in CEILING_METHODS
            table.add_row(Text(m, style="dim italic" if ceiling else ""), *cells, end_section=end_section)
        items.append(table)
    items += [Text(line, style="dim") for line in _legend(summary)]
    for note in summary.attrs.get("notes") or []:
        items.append(Text(f"note: {note}", style="yellow"))
    return Group(*items)


def write_results(results: pd.DataFrame, out_dir: str | Path, digits: int = 2) -> tuple[Path, Path]:
    """Write ``results.csv`` (the long results, columns :data:`RESULT_COLUMNS`) and ``results.md`` (the
    tables) into ``out_dir``, each atomically. Returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "results.csv", out / "results.md"
    columns = [*RESULT_COLUMNS, *(["protocol"] if "protocol" in results.columns else [])]
    with atomic_path(csv_path) as tmp:
        results[columns].to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_text(md_path, to_markdown(results, digits))
    return csv_path, md_path


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a ``results.csv`` back (aggregator ``-`` stays a string)."""
    frame = pd.read_csv(path, dtype={"dataset": str, "split": str, "method": str, "aggregator": str,
                                     "metric": str, "protocol": str}, keep_default_na=False, na_values={"value": ["", "nan", "NaN"]})
    return frame
