"""``crowdllm pipeline list|run|show|compare``: crowdsourcing pipelines run by virtual workers."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

import typer

from crowdllm.cli._backend import BackendOptions, with_backend_options
from crowdllm.errors import ConfigError, CrowdDataError

pipeline_app = typer.Typer(help="Crowdsourcing pipelines (Wu et al. 2023) run by virtual workers.",
                           no_args_is_help=True)

# ------------------------------------------------------------------ shared options
_WORKERS = typer.Option(None, "--workers", help="Workers per generative microtask (default 3).")
_VOTERS = typer.Option(None, "--voters", help="Workers per vote (default 3).")
_ROUNDS = typer.Option(None, "--rounds", help="Iterative rounds (default 3).")
_DEPTH = typer.Option(None, "--max-depth", help="Price-Divide-Solve recursion limit (default 2).")
_SET = typer.Option(None, "--set", help="Other settings as KEY=VALUE (agree, max_parts, max_tokens, temperature).")
_SEED = typer.Option(0, "--seed", help="Seed for every sampled answer and shuffle.")
_PERSONAS = typer.Option(None, "--personas",
                         help="Give workers personas: 'popquorn' (real POPQUORN profiles) or a CSV/JSON/JSONL file.")


def open_llm(options: BackendOptions, seed: int) -> Any:
    """The LanguageModel the commands use: the shared backend flags (tests put a fake here)."""
    return options.open(seed=seed)


def _settings(workers: int | None, voters: int | None, rounds: int | None, max_depth: int | None,
              sets: list[str] | None) -> Any:
    from crowdllm.pipelines import Settings

    overrides: dict[str, Any] = {"workers": workers, "voters": voters, "rounds": rounds, "max_depth": max_depth}
    for item in sets or []:
        if "=" not in item:
            raise ConfigError(f"--set '{item}' must look like KEY=VALUE")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    base = Settings()
    if overrides.get("workers") is not None and "agree" not in overrides:
        with contextlib.suppress(TypeError, ValueError):  # a bad value is reported by Settings.updated
            overrides["agree"] = min(base.agree, int(overrides["workers"]))
    return base.updated(overrides)


def _personas(source: str | None, seed: int) -> list[dict[str, Any]] | None:
    if not source:
        return None
    from crowdllm.pipelines.personas import load_personas

    return load_personas(source, seed=seed)


def _example(spec: Any, input_file: Path | None, text: str | None, example_id: str | None,
             popquorn: int | None, goal: str | None, seed: int) -> dict[str, Any]:
    from crowdllm.pipelines import load_examples, popquorn_examples

    given = [x is not None for x in (input_file, text, example_id, popquorn)]
    if sum(given) != 1:
        raise ConfigError("give exactly one input: --input FILE, --text TEXT, --example ID or --popquorn N")
    extra = {"goal": goal} if goal else {}
    if input_file is not None:
        if not input_file.exists():
            raise CrowdDataError("no such input file", file=str(input_file))
        raw = input_file.read_text(encoding="utf-8")
        if input_file.suffix.lower() == ".json":
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as err:
                raise CrowdDataError(f"bad JSON ({err.msg})", file=str(input_file), row=err.lineno) from None
            if not isinstance(data, dict):
                raise CrowdDataError("expected one example object", file=str(input_file))
            return {"id": input_file.stem, **data, **extra}
        if spec.name == "break-it-down":
            raise ConfigError("break-it-down takes a JSON job (see docs/pipelines.md): --input job.json")
        return {**spec.from_text(raw, **extra), "id": input_file.stem}
    if text is not None:
        if spec.name == "break-it-down":
            raise ConfigError("break-it-down takes a JSON job: --input job.json, or --example ID")
        return spec.from_text(text, **extra)
    if popquorn is not None:
        if not spec.editing:
            raise ConfigError(f"--popquorn is for the editing pipelines, not '{spec.name}'")
        pool = popquorn_examples(max(popquorn, 1), seed=seed)
        return {**pool[-1], **extra}
    for ex in load_examples(spec.name):
        if ex["id"] == example_id:
            return {**ex, **extra}
    ids = ", ".join(e["id"] for e in load_examples(spec.name))
    raise ConfigError(f"pipeline '{spec.name}' has no example '{example_id}' (built-in: {ids})")


# ------------------------------------------------------------------ commands
@pipeline_app.command("list")
def list_cmd() -> None:
    """The seven pipelines, what they do, and their settings."""
    from rich.console import Console
    from rich.table import Table

    from crowdllm.pipelines import load_examples, pipelines

    table = Table(title="crowdsourcing pipelines (settings: crowdllm pipeline run --help)", expand=True)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("after", ratio=2, overflow="fold")
    table.add_column("what the crowd does", ratio=4, overflow="fold")
    table.add_column("methods", ratio=2, overflow="fold")
    table.add_column("examples", no_wrap=True)
    for spec in pipelines().values():
        table.add_row(spec.name, spec.reference, spec.summary, ", ".join(spec.methods),
                      str(len(load_examples(spec.name))) + (" +POPQUORN" if spec.editing else ""))
    Console().print(table)


@pipeline_app.command("run")
@with_backend_options
def run_cmd(
    name: str = typer.Argument(..., help="Pipeline name (see `crowdllm pipeline list`)."),
    input_file: Path | None = typer.Option(None, "--input", help="Input text file (or a JSON example)."),
    text: str | None = typer.Option(None, "--text", help="The input text itself."),
    example_id: str | None = typer.Option(None, "--example", help="A built-in example id."),
    popquorn: int | None = typer.Option(None, "--popquorn", help="Editing pipelines: the N-th sampled POPQUORN email."),
    goal: str | None = typer.Option(None, "--goal", help="Editing goal: shorten, polite, proofread, improve."),
    method: str = typer.Option("pipeline", "--method", help="pipeline, baseline, or a variant (parallel, macro)."),
    trace: Path | None = typer.Option(None, "--trace", help="Trace file (JSONL); default traces/NAME-METHOD.jsonl."),
    budget_calls: int | None = typer.Option(None, "--budget-calls", help="Stop after this many LLM calls."),
    budget_tokens: int | None = typer.Option(None, "--budget-tokens", help="Stop after this many tokens."),
    show: bool = typer.Option(False, "--show", help="Print the step list after the run."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    workers: int | None = _WORKERS, voters: int | None = _VOTERS, rounds: int | None = _ROUNDS,
    max_depth: int | None = _DEPTH, sets: list[str] | None = _SET, seed: int = _SEED,
    personas: str | None = _PERSONAS, usage: bool = typer.Option(False, "--usage", help="Print backend usage."),
    backend_options: BackendOptions = None,  # type: ignore[assignment]  # filled by with_backend_options
) -> None:
    """Run one pipeline (or its baseline) on one input, writing a trace as it goes."""
    from rich.console import Console
    from rich.panel import Panel

    from crowdllm.pipelines import Budget, get_pipeline, read_trace, run_pipeline
    from crowdllm.pipelines.render import print_trace

    spec = get_pipeline(name)
    spec.method(method)
    settings = _settings(workers, voters, rounds, max_depth, sets)
    example = _example(spec, input_file, text, example_id, popquorn, goal, seed)
    pool = _personas(personas, seed)
    budget = Budget(max_calls=budget_calls, max_tokens=budget_tokens)
    path = trace or Path("traces") / f"{spec.name}-{method}.jsonl"
    llm = open_llm(backend_options, seed)
    try:
        with Console(stderr=True).status(f"running {spec.name} ({method}) ..."):
            out = run_pipeline(spec, example, llm, method=method, settings=settings, seed=seed, personas=pool,
                               budget=budget, trace=path)
    finally:
        if usage:
            BackendOptions.finish(llm)
        llm.close()
    if as_json:
        typer.echo(json.dumps({"pipeline": out.pipeline, "method": out.method, "example": out.example_id,
                               "output": out.output, "complete": out.complete, "unchanged": out.unchanged,
                               "status": out.status, "notes": out.notes,
                               "usage": out.usage, "trace": out.trace_path}, default=str, indent=2))
        return
    console = Console()
    if show:
        print_trace(read_trace(path), console=console)
        return
    u = out.usage
    status = out.status
    console.print(Panel(out.text or "(empty)", title=f"{spec.title} \u00b7 {method} \u00b7 {status}",
                        title_align="left"))
    console.print(f"{u['calls']} LLM calls, {u['tokens']} tokens, {u['seconds']:.1f} s"
                  + (f"; {len(out.notes)} note(s)" if out.notes else "") + f"\ntrace: {path}")


@pipeline_app.command("show")
def show_cmd(
    trace: Path = typer.Argument(..., help="A trace file written by `pipeline run` / `compare`."),
    full: bool = typer.Option(False, "--full", help="Also show every prompt."),
) -> None:
    """Render a trace as a readable step list."""
    from crowdllm.pipelines import read_trace
    from crowdllm.pipelines.render import print_trace

    print_trace(read_trace(trace), full=full)


@pipeline_app.command("compare")
@with_backend_options
def compare_cmd(
    name: str = typer.Argument(..., help="Pipeline name."),
    n: int | None = typer.Option(None, "--n", help="Number of examples (default: all built-in; POPQUORN: 3)."),
    source: str = typer.Option("builtin", "--source", help="builtin, or popquorn for the editing pipelines."),
    methods: str | None = typer.Option(None, "--methods", help="Comma-separated methods (default: all)."),
    raters: int = typer.Option(3, "--raters", help="Size of the virtual rater crowd used to evaluate."),
    out: Path | None = typer.Option(None, "--out", help="Write the per-example rows to this CSV."),
    trace_dir: Path | None = typer.Option(None, "--trace-dir", help="Write one trace per example and method here."),
    budget_calls: int | None = typer.Option(None, "--budget-calls", help="Call budget of each run."),
    detail: bool = typer.Option(False, "--detail", help="Also print one row per example."),
    workers: int | None = _WORKERS, voters: int | None = _VOTERS, rounds: int | None = _ROUNDS,
    max_depth: int | None = _DEPTH, sets: list[str] | None = _SET, seed: int = _SEED,
    personas: str | None = _PERSONAS,
    backend_options: BackendOptions = None,  # type: ignore[assignment]  # filled by with_backend_options
) -> None:
    """Pipeline vs single-LLM baseline (and variants) on examples: quality, LLM calls, tokens, time."""
    from rich.console import Console
    from rich.progress import Progress

    from crowdllm._io import atomic_path
    from crowdllm.pipelines import compare, examples_for, get_pipeline

    if raters < 1:
        raise ConfigError("--raters must be >= 1")
    spec = get_pipeline(name)
    settings = _settings(workers, voters, rounds, max_depth, sets)
    method_list = [m.strip() for m in methods.split(",") if m.strip()] if methods else spec.methods
    for m in method_list:
        spec.method(m)
    examples = examples_for(spec, source=source, n=n, seed=seed)
    pool = _personas(personas, seed)
    llm = open_llm(backend_options, seed)
    console = Console()
    try:
        with Progress(console=Console(stderr=True), transient=True) as progress:
            bar = progress.add_task(f"{spec.name}", total=len(examples) * len(method_list))

            started = [0]

            def on_progress(msg: str) -> None:
                if started[0]:
                    progress.advance(bar)
                started[0] += 1
                progress.update(bar, description=f"{spec.name}: {msg}")

            result = compare(spec, llm, examples=examples, methods=method_list, settings=settings, seed=seed,
                             raters=raters, personas=pool, max_calls=budget_calls, trace_dir=trace_dir,
                             on_progress=on_progress)
        print_comparison(console, spec, result, detail=detail, backend=llm.describe())
        if out is not None:
            with atomic_path(out) as tmp:
                result.rows.to_csv(tmp, index=False)
            console.print(f"rows written to {out}")
        BackendOptions.finish(llm, out=out)
    finally:
        llm.close()


def _fmt(value: Any, col: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if col in ("calls", "tokens", "words", "pairs", "comparisons"):
            return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"
        if col == "seconds":
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def print_comparison(console: Any, spec: Any, result: Any, *, detail: bool = False,
                     backend: dict[str, Any] | None = None) -> None:
    from rich.table import Table

    be = f" \u00b7 {backend.get('backend')} ({backend.get('model')})" if backend else ""
    summary = result.summary
    table = Table(title=f"{spec.title}: pipeline vs single-LLM baseline{be}",
                  caption="quality 0-1, higher is better. calls, tokens, seconds, cached: means per example. "
                          f"Evaluation (not counted above): {result.eval_usage['calls']} rater calls in all.")
    cols = [c for c in summary.columns]
    for c in cols:
        table.add_column(c, justify="left" if c == "method" else "right")
    for _, row in summary.iterrows():
        table.add_row(*[_fmt(row[c], c) for c in cols])
    console.print(table)
    if detail:
        rows = result.rows
        t2 = Table(title="per example")
        dcols = [c for c in rows.columns if c != "notes"]
        for c in dcols:
            t2.add_column(c, justify="left" if c in ("example", "method") else "right")
        for _, row in rows.iterrows():
            t2.add_row(*[_fmt(row[c], c) for c in dcols])
        console.print(t2)


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")
