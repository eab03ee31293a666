"""``crowdllm data``: list the registered data sets, inspect one, validate a file.

A thin shell over :mod:`crowdllm.data`; errors are :class:`~crowdllm.errors.CrowdLLMError` and come out
as one line with exit code 2 (see :func:`crowdllm.cli.main`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import typer

from crowdllm.cli._data_options import DataOptions, with_data_options
from crowdllm.errors import ConfigError

_SCALE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|\.\.|,|:|to)\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_scale(text: str, *, setting: str = "--scale") -> tuple[float, float]:
    """``"1-5"`` (or ``1..5``, ``1,5``, ``-2..2``) -> ``(1, 5)``."""
    m = _SCALE.match(text)
    if not m:
        raise ConfigError(f"{setting}: '{text}' is not a range like 1-5")
    lo, hi = float(m.group(1)), float(m.group(2))
    if not lo < hi:
        raise ConfigError(f"{setting}: '{text}' must go from low to high")
    return (int(lo) if lo.is_integer() else lo, int(hi) if hi.is_integer() else hi)


def label_from_options(kind: str | None, scale: str | None, categories: str | None, k: int | None) -> Any:
    """A LabelSpec from the CLI options, or None (infer it from the file); errors name the flags."""
    from crowdllm.cli._data_options import label_from_options as from_flags

    return from_flags(kind, scale, categories, k)


_TEXT_HELP = "Task text column of the responses file (default: text)."


def _load(name_or_file: str, data_options: Any, text_column: str | None) -> Any:
    if text_column is not None:
        if data_options.column_map and "text=" in data_options.column_map:
            raise ConfigError("--text-column and --map text=... both name the task text; give one")
        extra = f"text={text_column}"
        data_options.column_map = f"{data_options.column_map},{extra}" if data_options.column_map else extra
    return data_options.load(name_or_file)


def _histogram(ds: Any) -> list[str]:
    labels = ds.responses["label"]
    spec = ds.label
    lines: list[str] = []
    if spec.kind_.free_text:
        lengths = labels.astype(str).str.len()
        return [f"  text answers: {int(lengths.min())}..{int(lengths.max())} characters "
                f"(median {float(lengths.median()):g})"]
    if spec.kind_.numeric and spec.kind_.on_levels:
        counts = [(f"{v:g}", int((labels == v).sum())) for v in spec.levels]
    elif spec.kind_.nominal:
        counts = [(c, int((labels == c).sum())) for c in spec.categories]
    else:
        values = labels.to_numpy(dtype=float)
        edges = np.histogram_bin_edges(values, bins=min(10, max(1, len(np.unique(values)))))
        hist, edges = np.histogram(values, bins=edges)
        counts = [(f"[{edges[i]:.3g}, {edges[i + 1]:.3g}{']' if i == len(hist) - 1 else ')'}", int(c))
                  for i, c in enumerate(hist)]
    total = max(1, sum(c for _, c in counts))
    width = max(len(name) for name, _ in counts)
    for name, c in counts:
        bar = "#" * int(round(40 * c / total))
        lines.append(f"  {name:>{width}}  {c:>7,}  {100 * c / total:5.1f}%  {bar}")
    return lines


def _attributes(ds: Any) -> list[str]:
    lines: list[str] = []
    for col in ds.profile_columns:
        values = ds.workers[col]
        present = values.dropna()
        missing = len(values) - len(present)
        miss = f", {missing} missing" if missing else ""
        if col in ds.ordered_attributes:
            levels = ds.ordered_attributes[col]
            counts = present.value_counts()
            shown = ", ".join(f"{lvl} ({int(counts.get(lvl, 0))})" for lvl in levels)
            lines.append(f"  {col} (ordered{miss}): {shown}")
        elif present.dtype.kind in "biuf":
            lines.append(f"  {col} (numeric{miss}): {present.min():g}..{present.max():g}, "
                         f"median {float(present.median()):g}")
        elif present.nunique() > 20:
            lines.append(f"  {col} ({present.nunique()} distinct values{miss}; free text)")
        else:
            counts = present.astype(str).value_counts()
            lines.append(f"  {col}{f' ({missing} missing)' if missing else ''}: "
                         + ", ".join(f"{v} ({int(c)})" for v, c in counts.items()))
    return lines or ["  (none)"]


def _label_text(spec: Any) -> str:
    return spec.kind_.describe(spec)


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Data sets: list the registered ones, inspect one, validate your file.",
                           no_args_is_help=True)

    @data_app.command("list")
    def list_cmd() -> None:
        """List the registered data sets."""
        from crowdllm.data import REGISTRY

        header = ("name", "tasks", "workers", "responses", "label", "licence", "tested")
        rows = []
        for spec in REGISTRY.values():
            c = spec.counts
            label = _label_text(spec.label) if spec.label is not None else "?"
            licence = "research use (no licence file)" if "no licence file" in spec.licence else spec.licence
            rows.append((spec.name, *(f"{c[k]:,}" if k in c else "?" for k in ("tasks", "workers", "responses")),
                         label, licence.split(";")[0], "yes" if spec.tested else "no (URL only)"))
        widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
        for r in (header, *rows):
            typer.echo("  ".join(str(v).rjust(w) if 1 <= i <= 3 else str(v).ljust(w)
                                 for i, (v, w) in enumerate(zip(r, widths, strict=True))).rstrip())

    @data_app.command("info")
    @with_data_options
    def info_cmd(
        name: str = typer.Argument(..., help="A registered data set name or a file (CSV/TSV/JSONL/Parquet)."),
        text_column: str = typer.Option(None, "--text-column", help=_TEXT_HELP),
        data_options: DataOptions = None,  # type: ignore[assignment]
    ) -> None:
        """Summarise a data set: counts, label histogram, profile attributes."""
        from crowdllm.data import REGISTRY

        ds = _load(name, data_options, text_column)
        s = ds.summary()
        typer.echo(f"{ds.name}" + (f"  ({ds.source})" if ds.source else ""))
        if ds.description:
            typer.echo(f"  {ds.description}")
        spec = REGISTRY.get(name)
        if spec is not None:
            typer.echo(f"  licence: {spec.licence}")
            typer.echo(f"  cite: {spec.citation}")
        rpt = s["responses_per_task"]
        typer.echo(f"responses: {s['responses']:,}   tasks: {s['tasks']:,}   workers: {s['workers']:,}   "
                   f"responses per task: {rpt['min']}..{rpt['max']} (median {rpt['median']:g})")
        if ds.dropped_rows:
            typer.echo(f"skipped rows: {ds.dropped_rows:,}")
        typer.echo(f"label: {_label_text(ds.label)}")
        for line in _histogram(ds):
            typer.echo(line)
        meta = [c for c in ds.tasks.columns if c not in ("task", "text")]
        if meta:
            typer.echo(f"task metadata: {', '.join(meta)}")
        typer.echo(f"profile attributes ({len(ds.profile_columns)}):")
        for line in _attributes(ds):
            typer.echo(line)

    @data_app.command("validate")
    @with_data_options
    def validate_cmd(
        path: str = typer.Argument(..., help="Your responses file: one row per response (ids and answers; task "
                                   "texts and profiles on the same rows or in --tasks/--workers files)."),
        text_column: str = typer.Option(None, "--text-column", help=_TEXT_HELP),
        data_options: DataOptions = None,  # type: ignore[assignment]
    ) -> None:
        """Check a file; print 'OK: N responses, T tasks, W workers' or the one-line error (exit 2)."""
        from crowdllm.data import REGISTRY

        if path in REGISTRY:
            raise ConfigError(f"'{path}' is a registered data set; validate checks your own file "
                              f"(see 'crowdllm data info {path}')")
        ds = _load(path, data_options, text_column)
        left = f" ({ds.dropped_rows:,} left out)" if ds.dropped_rows else ""
        typer.echo(f"OK: {ds.n_responses} responses, {ds.n_tasks} tasks, {ds.n_workers} workers{left}")
        typer.echo(f"label: {_label_text(ds.label)}" + (f" — {ds.description}" if ds.description else ""))

    app.add_typer(data_app, name="data")
