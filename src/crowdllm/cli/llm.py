"""``crowdllm llm ask``, ``crowdllm reference`` and ``crowdllm cache info|clear``.

A thin shell over :mod:`crowdllm.llm`: the backend flags come from :mod:`crowdllm.cli._backend`
(embedded llama.cpp model without ``--base-url``), every answer goes through the disk cache, and the
usage summary is printed at the end (and written next to ``--out`` as ``<out>.usage.json``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from crowdllm.cli._backend import BackendOptions, as_flags, with_backend_options
from crowdllm.cli._data_options import DataOptions, with_data_options
from crowdllm.errors import ConfigError

llm_app = typer.Typer(help="Ask the language model directly.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect or empty the LLM answer cache.", no_args_is_help=True)


@llm_app.command("ask")
@with_backend_options
def ask(
    prompt: str = typer.Argument(..., help="The question (one user message)."),
    backend_options: BackendOptions = None,  # type: ignore[assignment]  # filled by with_backend_options
    system: str | None = typer.Option(None, "--system", help="An optional system message."),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Longest answer in tokens."),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy (deterministic)."),
    seed: int = typer.Option(0, "--seed"),
    usage: bool = typer.Option(False, "--usage", help="Print the usage summary on stderr."),
) -> None:
    """Ask one question and print the answer (from the embedded model when no --base-url is given)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    llm = backend_options.open(seed=seed)
    try:
        comp = llm.generate([messages], n=1, temperature=temperature, max_tokens=max_tokens, seed=seed)[0][0]
        if comp.error:
            raise ConfigError(f"the model gave no answer: {comp.error}")
        typer.echo(comp.text.strip())
        sys.stdout.flush()
    finally:
        if usage:
            backend_options.finish(llm)
        llm.close()


def _kind_for(label: Any) -> str:
    return str(label.kind_.reference_kind)


def _default_template(name: str) -> str | None:
    from crowdllm.llm.prompts import available_templates

    return name if name in available_templates() else None


@with_backend_options
@with_data_options(without=("k",))  # here --k is the number of samples per task
def reference(
    dataset: str = typer.Option(..., "--dataset", help="A registered data set name or a responses file."),
    out: Path = typer.Option(..., "--out", help="Where to write the references (.csv or .parquet)."),
    backend_options: BackendOptions = None,  # type: ignore[assignment]
    strategy: str = typer.Option("logprob", "--strategy", help="logprob, zero-shot or self-consistency."),
    k: int = typer.Option(8, "--k", help="Samples per task for zero-shot / self-consistency."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N tasks."),
    template: list[str] = typer.Option(None, "--template", help="A prompt template name or .toml/.json file "
                                       "(default: the data set's own, else the generic one); repeat it for "
                                       "several wordings, averaged (log-prob ratings and choices; one call "
                                       "per task each)."),
    column_map_alias: str | None = typer.Option(None, "--column-map", hidden=True),  # the old spelling of --map
    seed: int = typer.Option(0, "--seed"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    hidden_states: bool = typer.Option(False, "--hidden-states", help="Also write the embedded model's hidden "
                                       "state at the answer position (h_0 ... columns; logprob ratings and "
                                       "choices): a richer task reading for the crowd, same number of calls."),
    data_options: DataOptions = None,  # type: ignore[assignment]
) -> None:
    """LLM reference decisions per task (the CrowdLLM paper's zero-shot / log-prob / self-consistency)."""
    import dataclasses

    from crowdllm.llm.reference import STRATEGIES, compute_references, save_references

    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if hidden_states and strategy != "logprob":
        raise ConfigError("--hidden-states is read in the log-prob call: use --strategy logprob")
    backend_options = dataclasses.replace(backend_options, hidden_states=hidden_states)
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"--out {out}: use a .csv or .parquet file name")
    if column_map_alias is not None:
        if data_options.column_map is not None:
            raise ConfigError("--column-map is the old spelling of --map: give one of them")
        data_options = dataclasses.replace(data_options, column_map=column_map_alias)
    ds = data_options.load(dataset)
    kind = _kind_for(ds.label)
    scale = (int(ds.label.scale[0]), int(ds.label.scale[1])) if ds.label.scale is not None else (1, 5)
    tpl: Any = list(template) if template else _default_template(ds.name)  # several: wordings, averaged
    llm = backend_options.open(seed=seed)
    start = time.perf_counter()
    asked = True  # a bad argument writes nothing: no usage file for a run that never asked the model
    try:
        try:
            refs = compute_references(ds.tasks, llm, kind=kind, strategy=strategy, k=k, scale=scale,
                                      top_k=ds.label.k, choices=list(ds.label.categories or []) or None,
                                      template=tpl, limit=limit, progress=not quiet and sys.stderr.isatty(),
                                      seed=seed)
        except ConfigError as err:
            usage = getattr(llm, "usage", None)
            asked = usage is not None and bool(usage.calls or usage.cache_hits or usage.faults)
            raise as_flags(err, {"limit": "--limit", "k": "--k", "strategy": "--strategy",
                                 "template": "--template"}) from None
        save_references(refs, out)
    finally:
        elapsed = time.perf_counter() - start
        if asked:
            backend_options.finish(llm, out=out)
        llm.close()
    failures = int(refs["parse_failures"].sum()) if "parse_failures" in refs else 0
    typer.echo(f"wrote {len(refs)} references ({strategy}, {kind}) to {out} in {elapsed:.1f} s"
               + (f"; {failures} unparseable answers" if failures else ""))


@cache_app.command("info")
def cache_info() -> None:
    """Where the cache is, its size and what it holds."""
    from crowdllm.llm.cache import DiskCache
    from crowdllm.llm.models import models_dir

    cache = DiskCache()
    info = cache.info()
    cache.close()
    typer.echo(f"cache: {info['path']} ({info['bytes'] / 1e6:.1f} MB, {info['entries']} answers)")
    for g in info["groups"]:
        typer.echo(f"  {g['backend']:10s} {g['model']:48s} {g['kind']:13s} {g['entries']:>8d}")
    models = sorted(p for p in models_dir().glob("*.gguf"))
    for p in models:
        typer.echo(f"model file: {p} ({p.stat().st_size / 1e6:.0f} MB)")


@cache_app.command("clear")
def cache_clear(
    backend: str | None = typer.Option(None, "--backend", help="Only this backend (llama-cpp, openai, fake)."),
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete cached answers (all, or one backend / model). Model files are kept."""
    from crowdllm.llm.cache import DiskCache

    cache = DiskCache()
    what = "all cached answers" if not (backend or model) else f"cached answers of {backend or ''} {model or ''}".strip()
    if not yes and not typer.confirm(f"delete {what} in {cache.path}?"):
        cache.close()
        raise typer.Exit(1)
    n = cache.clear(backend=backend, model=model)
    cache.close()
    typer.echo(f"deleted {n} cached answers")


def register(app: typer.Typer) -> None:
    app.add_typer(llm_app, name="llm")
    app.add_typer(cache_app, name="cache")
    app.command("reference")(reference)
