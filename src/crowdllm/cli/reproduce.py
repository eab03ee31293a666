"""``crowdllm reproduce offensiveness|voting``: the CrowdLLM paper's Table 1 and Table 5, honestly.

A thin shell over :func:`crowdllm.evaluate.reproduce.reproduce`. Every method (baselines, LLM
prompting, VAE only, CrowdLLM, the supervised text model) on every split and seed, with one LLM
backend: the embedded offline model by default, any OpenAI-compatible server with ``--base-url``.
Prints the tables and, with ``--out DIR``, writes results.csv (long form), results.md, references.csv,
theory.csv and run.json there.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from crowdllm.cli import _options as opt
from crowdllm.cli._backend import BackendOptions, with_backend_options
from crowdllm.errors import ConfigError

FULL_OFFENSIVENESS = "crowdllm reproduce offensiveness --seeds 5 --splits worker,task,both --out results/offensiveness"
# the flags both reproductions take, declared once
METHODS = typer.Option(None, "--methods", help="Comma-separated methods (default: all).")
OUT = typer.Option(None, "--out", help="Write results.csv, results.md, references.csv, run.json here.")
PROGRESS = typer.Option(True, "--progress/--no-progress", help="Progress bars.")


def _run(dataset: str, *, seeds: str, splits: list[str], methods: str | None, aggregators: str | None,
         out: Path | None, embedder: str | None, persona_budget: int, reference: Path | None, theory: bool,
         progress: bool, backend_options: BackendOptions, option: list[str] | None = None,
         crowd_param: list[str] | None = None, per_answer: int = 0) -> Any:
    from rich.console import Console

    from crowdllm.data.splits import SPLIT_BY
    from crowdllm.evaluate.reproduce import reproduce
    from crowdllm.evaluate.runner import method_spec

    seed_list = opt.parse_seeds(seeds)
    for split in splits:  # check every setting before the model is loaded
        if split not in SPLIT_BY:
            raise ConfigError(f"--splits: '{split}' is not one of {', '.join(SPLIT_BY)}")
    for name in opt.parse_names(methods, "--methods") or []:
        method_spec(name)
    opt.check_per_answer(per_answer)
    if persona_budget < 0:
        raise ConfigError(f"--persona-budget must be >= 0, got {persona_budget}")
    if embedder is not None and embedder not in ("auto", "minilm", "hashing"):
        raise ConfigError(f"--embedder '{embedder}' is not one of auto, minilm, hashing")
    options = {"persona_budget": persona_budget,
               **opt.method_options(option=option, crowd_param=crowd_param, reference=reference, embedder=embedder)}
    console = Console(stderr=True)
    show = progress and sys.stderr.isatty()
    usage = out / "results.csv.usage.json" if out is not None else None
    with backend_options.session(usage_file=usage, quiet=True) as llm:
        result = reproduce(dataset, llm=llm, seeds=seed_list, splits=splits, methods=opt.parse_names(methods, "--methods"),
                           aggregators=opt.parse_names(aggregators, "--aggregators"), out=out, options=options,
                           theory=theory, progress=show, log=lambda m: console.print(f"[dim]{m}[/dim]"),
                           per_answer=per_answer)
    typer.echo(result.markdown)
    if out is not None:
        typer.echo(f"wrote {out / 'results.csv'}, {out / 'results.md'}, {out / 'references.csv'} and {out / 'run.json'}")
    return result


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Reproduce the CrowdLLM paper's tables (offensiveness ratings, Zurich votes).",
                        no_args_is_help=True)

    @group.command("offensiveness")
    @with_backend_options
    def offensiveness(
        seeds: str = typer.Option("1", "--seeds", help=opt.SEEDS_HELP),
        splits: str = typer.Option("worker,task,both", "--splits", help="Splits: worker, task, both (comma-separated)."),
        methods: str = METHODS,
        aggregators: str = typer.Option(None, "--aggregators", help="Default: mean,median,mv,ds,glad."),
        out: Path = OUT,
        embedder: str = typer.Option(None, "--embedder", help="Task embedder: auto (MiniLM if installed), minilm, hashing."),
        persona_budget: int = typer.Option(300, "--persona-budget", help="Most multi-persona LLM calls per fit."),
        reference: Path = opt.REFERENCE,
        option: list[str] = opt.OPTION,
        crowd_param: list[str] = opt.CROWD_PARAM,
        theory: bool = typer.Option(True, "--theory/--no-theory", help="Theorem 5 intervals and Theorem 2 terms."),
        per_answer: int = opt.PER_ANSWER,
        progress: bool = PROGRESS,
        backend_options: BackendOptions = None,  # type: ignore[assignment]
    ) -> None:
        """POPQUORN offensiveness (the paper's Table 1): every method, by worker / task / both."""
        started = time.perf_counter()
        split_list = opt.parse_names(splits, "--splits") or []
        _run("popquorn-offensiveness", seeds=seeds, splits=split_list, methods=methods, aggregators=aggregators,
             out=out, embedder=embedder, persona_budget=persona_budget, reference=reference, theory=theory,
             progress=progress, backend_options=backend_options, option=option, crowd_param=crowd_param,
             per_answer=per_answer)
        if seeds.strip() == "1":
            typer.echo(f"This was 1 seed ({time.perf_counter() - started:.0f} s; LLM answers are now cached). "
                       f"The full table, 5 seeds: {FULL_OFFENSIVENESS} (about 5x the non-LLM time; no new LLM calls "
                       "beyond the multi-persona ones).")

    @group.command("voting")
    @with_backend_options
    def voting(
        seeds: str = typer.Option("5", "--seeds", help=opt.SEEDS_HELP),
        methods: str = METHODS,
        out: Path = OUT,
        embedder: str = typer.Option(None, "--embedder", help="Task embedder: auto, minilm, hashing."),
        persona_budget: int = typer.Option(300, "--persona-budget", help="Most multi-persona ballots per fit."),
        reference: Path = opt.REFERENCE,
        option: list[str] = opt.OPTION,
        crowd_param: list[str] = opt.CROWD_PARAM,
        per_answer: int = opt.PER_ANSWER,
        progress: bool = PROGRESS,
        backend_options: BackendOptions = None,  # type: ignore[assignment]
    ) -> None:
        """Zurich participatory budget, top-5 of 24 projects (the paper's Table 5): per-project vote counts of
        virtual voters vs the held-out real voters (MAE, RMSE, CS, WD)."""
        _run("zurich-pb-top5", seeds=seeds, splits=["worker"], methods=methods, aggregators=None, out=out,
             embedder=embedder, persona_budget=persona_budget, reference=reference, theory=False,
             progress=progress, backend_options=backend_options, option=option, crowd_param=crowd_param,
             per_answer=per_answer)

    app.add_typer(group, name="reproduce")
