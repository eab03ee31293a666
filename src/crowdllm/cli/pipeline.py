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
_SET = typer.Option(None, "--set", help="Other settings as KEY=VALUE (agree, max_parts, max_tokens, temperature, compare_by).")
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


def open_judge(options: BackendOptions, judge_model: str | None, judge_base_url: str | None,
               judge_model_path: str | None, seed: int) -> Any:
    """The judge's LanguageModel: the worker backend's flags with the judge's model/server/file."""
    from dataclasses import replace

    judged = replace(options, base_url=[judge_base_url] if judge_base_url else list(options.base_url),
                     model=judge_model if judge_model else options.model,
                     model_path=judge_model_path if judge_model_path else options.model_path)
    if judge_model_path and not judge_base_url:
        judged = replace(judged, base_url=[])
    return judged.open(seed=seed)


@pipeline_app.command("compare")
@with_backend_options
def compare_cmd(
    name: str = typer.Argument(..., help="Pipeline name."),
    n: int | None = typer.Option(None, "--n", help="Number of examples (default: all built-in; POPQUORN: 3)."),
    source: str = typer.Option("builtin", "--source", help="builtin, or popquorn for the editing pipelines."),
    inputs: Path | None = typer.Option(None, "--inputs", help="Your own inputs: a JSONL file, one "
                                       "{\"text\", \"task\", \"checks\"} object per line (docs/pipelines.md)."),
    methods: str | None = typer.Option(None, "--methods", help="Comma-separated methods (default: all)."),
    raters: int = typer.Option(3, "--raters", help="Size of the virtual rater crowd used to judge."),
    no_judge: bool = typer.Option(False, "--no-judge", help="No judged scores at all: only checks that need no model."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="Judge with this model (served by "
                                           "--judge-base-url, or by the workers' server)."),
    judge_base_url: str | None = typer.Option(None, "--judge-base-url", help="Judge on this OpenAI-compatible server."),
    judge_model_path: str | None = typer.Option(None, "--judge-model-path", help="Judge with this embedded .gguf."),
    out: Path | None = typer.Option(None, "--out", help="Write the per-example rows to this CSV."),
    trace_dir: Path | None = typer.Option(None, "--trace-dir", help="One folder per input, one trace per "
                                          "method (default with --inputs: traces/compare-NAME)."),
    budget_calls: int | None = typer.Option(None, "--budget-calls", help="Call budget of each run."),
    detail: bool = typer.Option(False, "--detail", help="Also print one row per example."),
    workers: int | None = _WORKERS, voters: int | None = _VOTERS, rounds: int | None = _ROUNDS,
    max_depth: int | None = _DEPTH, sets: list[str] | None = _SET, seed: int = _SEED,
    personas: str | None = _PERSONAS,
    backend_options: BackendOptions = None,  # type: ignore[assignment]  # filled by with_backend_options
) -> None:
    """Pipeline vs single-LLM baseline (and variants): checks passed, judged quality, calls, tokens, time."""
    from rich.console import Console

    from crowdllm.pipelines import get_pipeline

    judge_flags = bool(judge_model or judge_base_url or judge_model_path)
    if raters < 1:
        raise ConfigError("--raters must be >= 1")
    if no_judge and judge_flags:
        raise ConfigError("--no-judge cannot go with --judge-model/--judge-base-url/--judge-model-path")
    spec = get_pipeline(name)
    settings = _settings(workers, voters, rounds, max_depth, sets)
    method_list = [m.strip() for m in methods.split(",") if m.strip()] if methods else spec.methods
    for m in method_list:
        spec.method(m)
    examples, trace_dir = _compare_examples(spec, inputs, source, n, seed, trace_dir)
    pool = _personas(personas, seed)
    llm = open_llm(backend_options, seed)
    judge: Any = "same"
    try:
        if no_judge:
            judge = None
        elif judge_flags:
            judge = open_judge(backend_options, judge_model, judge_base_url, judge_model_path, seed)
        console = Console()
        result = _run_compare(spec, llm, judge, examples, method_list, settings=settings, seed=seed, raters=raters,
                              personas=pool, max_calls=budget_calls, trace_dir=trace_dir)
        _report_compare(console, spec, result, llm, detail=detail or inputs is not None, trace_dir=trace_dir,
                        out=out)
        BackendOptions.finish(llm, out=out)
    finally:
        llm.close()
        if judge is not None and judge != "same":
            judge.close()


def _compare_examples(spec: Any, inputs: Path | None, source: str, n: int | None, seed: int,
                      trace_dir: Path | None) -> tuple[Any, Path | None]:
    """The inputs of ``pipeline compare`` (the user's --inputs file, else built-in / POPQUORN examples) and the
    trace folder (with --inputs: traces/compare-NAME unless --trace-dir names one)."""
    from crowdllm.pipelines import examples_for
    from crowdllm.pipelines.checks import load_inputs

    if inputs is None:
        return examples_for(spec, source=source, n=n, seed=seed), trace_dir
    if source != "builtin" or n is not None:
        raise ConfigError("--inputs cannot go with --source or --n")
    return load_inputs(inputs, spec.name, spec.input_key), trace_dir or Path("traces") / f"compare-{spec.name}"


def _run_compare(spec: Any, llm: Any, judge: Any, examples: Any, method_list: list[str], **kw: Any) -> Any:
    """:func:`crowdllm.pipelines.compare` with a progress bar on stderr (one step per example and method)."""
    from rich.console import Console
    from rich.progress import Progress

    from crowdllm.pipelines import compare

    with Progress(console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task(f"{spec.name}", total=len(examples) * len(method_list))

        started = [0]

        def on_progress(msg: str) -> None:
            if started[0]:
                progress.advance(bar)
            started[0] += 1
            progress.update(bar, description=f"{spec.name}: {msg}")

        return compare(spec, llm, examples=examples, methods=method_list, on_progress=on_progress, judge=judge,
                       **kw)


def _report_compare(console: Any, spec: Any, result: Any, llm: Any, *, detail: bool, trace_dir: Path | None,
                    out: Path | None) -> None:
    """The comparison table, where the traces are, and the per-example rows (--out, written atomically)."""
    from crowdllm._io import atomic_path

    print_comparison(console, spec, result, detail=detail, backend=llm.describe())
    if trace_dir is not None:
        console.print(f"traces: {trace_dir}/<input>/<method>.jsonl")
    if out is not None:
        with atomic_path(out) as tmp:
            result.rows.to_csv(tmp, index=False)
        console.print(f"rows written to {out}")


def _fmt(value: Any, col: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if col in ("calls", "tokens", "words", "pairs", "comparisons", "checks_passed", "checks_total"):
            return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"
        if col == "seconds":
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def _judge_who(result: Any) -> str:
    if result.judge is None:
        return "none"
    return "same model as the workers" if result.judge.get("same") else str(result.judge.get("model"))


def judge_label(result: Any) -> str:
    """How the judged column is headed: marked, and saying who judged."""
    return f"judged* ({_judge_who(result)})"


def print_comparison(console: Any, spec: Any, result: Any, *, detail: bool = False,
                     backend: dict[str, Any] | None = None) -> None:
    from rich.table import Table

    be = f" \u00b7 {backend.get('backend')} ({backend.get('model')})" if backend else ""
    summary = result.summary
    agreement = result.agreement
    agree = (f" Judge vs checks: same order in {agreement['agreement']:.0%} of {agreement['pairs']} "
             "method pair(s) whose checks differ." if agreement else "")
    judged = "" if not spec.judged else "no judge" if result.judge is None else \
        f"judged* = rated by a virtual rater crowd ({_judge_who(result)}); {result.eval_usage['calls']} " \
        "rater calls, not counted above."
    table = Table(title=f"{spec.title}: pipeline vs single-LLM baseline{be}",
                  caption="checks: share of the inputs' checks passed (no model asked). score: exact measure "
                          "(no model). calls, tokens, seconds: means per input. " + judged + agree)
    cols = [c for c in summary.columns]
    for c in cols:
        table.add_column(judge_label(result) if c == "judged" else c,
                         justify="left" if c == "method" else "right")
    for _, row in summary.iterrows():
        table.add_row(*[_fmt(row[c], c) for c in cols])
    console.print(table)
    if detail:
        rows = result.rows
        t2 = Table(title="per input")
        dcols = [c for c in rows.columns if c not in ("notes", "trace", "checks_total", "changed", "cached")]
        for c in dcols:
            t2.add_column(judge_label(result) if c == "judged" else c,
                          justify="left" if c in ("example", "method", "failed") else "right",
                          overflow="fold")
        for _, row in rows.iterrows():
            t2.add_row(*[_fmt(row[c], c) for c in dcols])
        console.print(t2)


@pipeline_app.command("bias")
@with_backend_options
def bias_cmd(
    n: int = typer.Option(20, "--n", help="Pairs (a text and a damaged copy), each shown in both orders."),
    voters: int = typer.Option(3, "--voters", help="Voters per comparison."),
    temperature: float = typer.Option(0.7, "--temperature", help="The voters' sampling temperature."),
    seed: int = _SEED,
    logprobs: bool = typer.Option(False, "--logprobs", help="Also run the comparison step by log-probabilities "
                                  "(averaged over both orders; needs a backend with log-probs)."),
    checklist: bool = typer.Option(False, "--checklist", help="Also run the comparison step by checklist "
                                   "(yes/no questions about each version alone, by log-probabilities)."),
    out: Path | None = typer.Option(None, "--out", help="Write one row per pair and order to this CSV."),
    trace: Path | None = typer.Option(None, "--trace", help="Trace every call to this JSONL file."),
    backend_options: BackendOptions = None,  # type: ignore[assignment]  # filled by with_backend_options
) -> None:
    """The swap test: do comparison votes pick the better text in both orders, or follow position?"""
    from rich.console import Console

    from crowdllm._io import atomic_path
    from crowdllm.pipelines.bias import swap_pairs, swap_test
    from crowdllm.pipelines.trace import Trace

    if voters < 1:
        raise ConfigError("--voters must be >= 1")
    if not 0 <= temperature <= 2:
        raise ConfigError("--temperature must be in 0..2")
    pairs = swap_pairs(n, seed=seed)
    llm = open_llm(backend_options, seed)
    tr = Trace(trace)
    try:
        with Console(stderr=True).status(f"swap test: {n} pairs x 2 orders ..."):
            result = swap_test(llm, pairs, voters=voters, temperature=temperature, seed=seed, trace=tr,
                               by=["answers"] + ["logprobs"] * logprobs + ["checklist"] * checklist)
        print_swap(Console(), result, backend=llm.describe())
        if out is not None:
            with atomic_path(out) as tmp:
                result.rows.to_csv(tmp, index=False)
        BackendOptions.finish(llm, out=out)
    finally:
        tr.close()
        llm.close()


def print_swap(console: Any, result: Any, *, backend: dict[str, Any] | None = None) -> None:
    from rich.table import Table

    be = f" \u00b7 {backend.get('backend')} ({backend.get('model')})" if backend else ""
    table = Table(title=f"swap test{be}", caption="single: one prompt per voter and order (better: share of votes "
                  "cast; abstained: of all votes; majority: of pairs). follows position: voters who named the same "
                  "letter in both orders. step: the counterbalanced comparison every pipeline uses (shares of "
                  "pairs). "
                  f"{result.usage['calls']} calls, {result.usage['tokens']} tokens.")
    cols = list(result.summary.columns)
    for c in cols:
        table.add_column(c, justify="left" if c == "order" else "right")
    for _, row in result.summary.iterrows():
        table.add_row(*[_fmt(row[c], c) if c != "pairs" else str(int(row[c])) for c in cols])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")
