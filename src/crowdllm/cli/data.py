"""``crowdllm data``: list the registered data sets, inspect one, validate a file.

A thin shell over :mod:`crowdllm.data`; errors are :class:`~crowdllm.errors.CrowdLLMError` and come out
as one line with exit code 2 (see :func:`crowdllm.cli.main`).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import typer

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
    """A LabelSpec from the CLI options, or None (infer it from the file)."""
    from crowdllm.data import LabelSpec

    if kind is None and scale is None and categories is None and k is None:
        return None
    if kind is None:
        kind = "ordinal" if scale else "categorical" if categories else "topk"
    cats = tuple(c.strip() for c in categories.split(",") if c.strip()) if categories else None
    return LabelSpec(kind, scale=parse_scale(scale) if scale else None,  # type: ignore[arg-type]
                     categories=cats, k=k)


_MAP_HELP = ("Column map KEY=COLUMN,...: task, worker, label, text (task text), profile (cols joined by +). "
             "E.g. task=instance_id,worker=user_id,label=offensiveness")
_KIND_HELP = "Label kind: continuous, ordinal, categorical, topk or text (default: inferred)."


def _load(name_or_file: str, column_map: str | None, kind: str | None, scale: str | None,
          categories: str | None, k: int | None, text_column: str | None) -> Any:
    from crowdllm.data import REGISTRY, load_dataset, parse_column_map

    label = label_from_options(kind, scale, categories, k)
    cmap = parse_column_map(column_map) if column_map else None
    kw: dict[str, Any] = {}
    if text_column is not None:
        kw["text_column"] = text_column
    spec = REGISTRY.get(name_or_file)
    if spec is not None and spec.tested and (cmap is not None or label is not None or kw):
        raise ConfigError(f"'{name_or_file}' is a registered data set with a fixed layout; "
                          "--map/--kind/--scale/--text-column apply to your own files")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return load_dataset(name_or_file, column_map=cmap, label=label, **kw)
        finally:
            for w in caught:
                typer.echo(f"warning: {w.message}", err=True)


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
    def info_cmd(
        name: str = typer.Argument(..., help="A registered data set name or a file (CSV/TSV/JSONL/Parquet)."),
        column_map: str = typer.Option(None, "--map", help=_MAP_HELP),
        kind: str = typer.Option(None, "--kind", help=_KIND_HELP),
        scale: str = typer.Option(None, "--scale", help="Label scale low-high, e.g. 1-5."),
        categories: str = typer.Option(None, "--categories", help="Label categories, comma-separated."),
        k: int = typer.Option(None, "--k", help="Top-k: how many items each voter selects."),
        text_column: str = typer.Option(None, "--text-column", help="Task text column (default: text)."),
    ) -> None:
        """Summarise a data set: counts, label histogram, profile attributes."""
        from crowdllm.data import REGISTRY

        ds = _load(name, column_map, kind, scale, categories, k, text_column)
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
    def validate_cmd(
        path: str = typer.Argument(..., help="Your long-form file: one row per response."),
        column_map: str = typer.Option(None, "--map", help=_MAP_HELP),
        kind: str = typer.Option(None, "--kind", help=_KIND_HELP),
        scale: str = typer.Option(None, "--scale", help="Label scale low-high, e.g. 1-5."),
        categories: str = typer.Option(None, "--categories", help="Label categories, comma-separated."),
        k: int = typer.Option(None, "--k", help="Top-k: how many items each voter selects."),
        text_column: str = typer.Option(None, "--text-column", help="Task text column (default: text)."),
    ) -> None:
        """Check a file; print 'OK: N responses, T tasks, W workers' or the one-line error (exit 2)."""
        from crowdllm.data import load_responses_file

        label = label_from_options(kind, scale, categories, k)
        kw: dict[str, Any] = {} if text_column is None else {"text_column": text_column}
        ds = load_responses_file(path, column_map=column_map, label=label, **kw)
        typer.echo(f"OK: {ds.n_responses} responses, {ds.n_tasks} tasks, {ds.n_workers} workers")
        typer.echo(f"label: {_label_text(ds.label)}" + (f" — {ds.description}" if ds.description else ""))

    app.add_typer(data_app, name="data")
