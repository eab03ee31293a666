"""``crowdllm analyze``: the paper's analyses on any data set, written as CSV + PNG into a folder.

Each command is a thin shell over :mod:`crowdllm.evaluate.analyses`: load the data set, build the
method factories from the methods registered with the experiment runner (``crowdllm evaluate
--methods``), run the analysis, then write ``<analysis>.csv``, ``<analysis>.png``,
``settings_<analysis>.json`` (the command line, every setting and the seeds) and print the headline.
The defaults are small enough for a laptop; ``--paper`` switches to the paper's full settings.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import typer

from crowdllm.cli import _options as opt
from crowdllm.cli._backend import BackendOptions, with_backend_options
from crowdllm.cli._data_options import DATA_OPTIONS, OPTION_NAMES, DataOptions
from crowdllm.errors import ConfigError

DEFAULT_METHODS = ("crowdllm", "vae-only", "per-task")
FALLBACK_METHODS = ("profile-group", "per-task", "global")


# ---------------------------------------------------------------------------------------- parsing


def parse_floats(text: str, setting: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{setting}: '{text}' is not a comma-separated list of numbers") from None
    if not values:
        raise ConfigError(f"{setting}: give at least one number")
    return values


def parse_ints(text: str, setting: str) -> list[int]:
    values = parse_floats(text, setting)
    if any(not v.is_integer() for v in values):
        raise ConfigError(f"{setting}: '{text}' must hold whole numbers")
    return [int(v) for v in values]


def parse_fractions(text: str, setting: str = "--fractions") -> list[float]:
    """``10,25,50`` (percent) or ``0.1,0.25,0.5`` -> fractions."""
    values = parse_floats(text, setting)
    if any(v > 1 for v in values):
        values = [v / 100 for v in values]
    return values


# ---------------------------------------------------------------------------------------- shared steps


def load(dataset: str, data_options: DataOptions | None = None, max_tasks: int | None = None) -> Any:
    """The data set (a registered name, or the user's file read with the data flags every command shares:
    ``--map``, the label flags, ``--tasks``/``--workers`` joined on the ids), optionally cut to a seeded
    choice of ``max_tasks`` tasks (a quick look at a big set, or fewer LLM references to compute)."""
    ds = (data_options or DataOptions()).load(dataset)
    if max_tasks is None or max_tasks >= ds.n_tasks:
        return ds
    if max_tasks < 2:
        raise ConfigError(f"--max-tasks must be at least 2 (got {max_tasks})")
    if _votes(ds):
        raise ConfigError("--max-tasks cannot cut top-k votes: every ballot selects among all the items")
    import numpy as np

    answered = np.array(sorted(ds.responses["task"].unique()))
    keep = np.random.default_rng(0).choice(answered, size=min(max_tasks, len(answered)), replace=False)
    return ds.subset(tasks=keep)


def available_default_methods() -> list[str]:
    from crowdllm.evaluate.runner import METHODS, load_method_plugins

    load_method_plugins()
    chosen = [m for m in DEFAULT_METHODS if m in METHODS]
    if not any(m in METHODS for m in ("crowdllm", "vae-only")):
        chosen = [m for m in FALLBACK_METHODS if m in METHODS]
    return chosen


@contextlib.contextmanager
def method_session(names: str | None, ds: Any, split: str, backend_options: Any, *, options: dict[str, Any],
                   usage_path: Callable[[], Path]) -> Iterator[tuple[dict, list[str]]]:
    """The method factories for this run, with the options ``crowdllm evaluate`` hands its methods.

    The LLM is opened only when a chosen method needs one; its usage (calls, tokens, time, money) is
    printed and written to ``usage_path()`` at the end, also when the run fails half-way."""
    from crowdllm.evaluate.analyses._common import registered_methods
    from crowdllm.evaluate.runner import method_spec

    chosen = [m.strip() for m in names.split(",") if m.strip()] if names else available_default_methods()
    needs_llm = any(method_spec(m).needs_llm for m in chosen)
    options = dict(options)
    with contextlib.ExitStack() as stack:
        llm = stack.enter_context(backend_options.session(needs_llm, usage_file=None))
        if llm is not None:
            options["llm"] = llm
            stack.callback(lambda: llm.usage.save(str(usage_path())) if getattr(llm, "usage", None) else None)
        notes: list[str] = []
        factories = registered_methods(chosen, ds, split=split, options=options, notes=notes)
        for note in notes:
            typer.echo(f"note: {note}", err=True)
        yield factories, notes


def out_dir(out: Path | None, ds_name: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in ds_name)
    path = out if out is not None else Path("results") / "analyses" / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def command_line(ctx: typer.Context) -> str:
    """The command that reproduces this run, rebuilt from the parsed options (defaults included)."""
    import shlex

    parts = ["crowdllm", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        empty = value is None or (isinstance(value, (list, tuple)) and not value)
        if empty or not param.opts or (value == param.default and not param.required):
            continue
        flag = max(param.opts, key=len)
        if isinstance(value, bool):
            if value:
                parts.append(flag)
            continue
        parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def partial_saver(folder: Path, stem: str) -> Callable[[Any], None]:
    """Save the rows computed so far to ``stem.partial.csv`` (atomically) after every step, so an
    interrupted or failed run keeps its finished work; :func:`write_outputs` removes it at the end."""
    from crowdllm._io import atomic_path

    def save(frame: Any) -> None:
        with atomic_path(folder / f"{stem}.partial.csv") as tmp:
            frame.to_csv(tmp, index=False)

    return save


def write_outputs(ctx: typer.Context, folder: Path, stem: str, frame: Any, plot: Callable[[Any, Path], Any] | None,
                  settings: dict[str, Any], *, extra: dict[str, Any] | None = None) -> None:
    """``stem.csv`` (+ extra CSVs), ``stem.png`` and ``settings_stem.json``, each written atomically."""
    from crowdllm import __version__
    from crowdllm._io import atomic_path, atomic_write_json

    with atomic_path(folder / f"{stem}.csv") as tmp:
        frame.to_csv(tmp, index=False)
    for name, other in (extra or {}).items():
        with atomic_path(folder / name) as tmp:
            other.to_csv(tmp, index=False)
    if plot is not None and len(frame):
        plot(frame, folder / f"{stem}.png")
    record = {"command": command_line(ctx), "crowdllm_version": __version__, "python": sys.version.split()[0],
              **settings}
    atomic_write_json(folder / f"settings_{stem}.json", {k: v for k, v in record.items() if v is not None})
    (folder / f"{stem}.partial.csv").unlink(missing_ok=True)


def show(title: str, table: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    if table is None or not len(table):
        typer.echo(f"{title}: no rows")
        return
    t = Table(title=title)
    for col in table.columns:
        t.add_column(str(col), justify="left" if table[col].dtype == object else "right")
    for row in table.itertuples(index=False):
        t.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    console = Console()
    if not console.is_terminal:  # a log file: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(t)


# ---------------------------------------------------------------------------------------- the shared options


def library_default(func: Callable[..., Any], name: str) -> Any:
    """The default of ``func``'s parameter ``name``: the library is the one source of the defaults."""
    import inspect

    return inspect.signature(func).parameters[name].default


def shown(values: Any) -> str:
    """``(0.1, 1.0)`` -> ``"0.1,1"``: how the help texts write the library's defaults (a test checks
    that each help text names the library's values, so the library stays the one source)."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


@dataclass
class Run:
    """The options every analysis command shares (declared once in :data:`_COMMON`)."""

    ctx: typer.Context
    backend_options: BackendOptions
    dataset: str | None = None
    data_options: DataOptions = field(default_factory=DataOptions)
    max_tasks: int | None = None
    out: Path | None = None
    seeds: str | None = None
    methods: str | None = None
    reference: Path | None = None
    embedder: str | None = None
    crowd_param: list[str] | None = None
    option: list[str] | None = None
    paper: bool = False
    started: float = field(default_factory=time.perf_counter)

    def load(self) -> Any:
        assert self.dataset is not None
        return load(self.dataset, self.data_options, self.max_tasks)

    def seed_values(self, analysis: Callable[..., Any], paper: Any = None) -> list[int]:
        """``--seeds``, else the paper's seeds with ``--paper``, else the analysis function's default."""
        if self.seeds is not None:
            return opt.parse_seeds(self.seeds)
        return list(paper if self.paper and paper is not None else library_default(analysis, "seeds"))

    def session(self, ds: Any, split: str, folder: Path, stem: str, methods: str | None = None
                ) -> contextlib.AbstractContextManager[tuple[dict, list[str]]]:
        options = opt.method_options(option=self.option, crowd_param=self.crowd_param, reference=self.reference,
                                     embedder=self.embedder)
        return method_session(methods or self.methods, ds, split, self.backend_options, options=options,
                              usage_path=lambda: folder / f"{stem}.usage.json")

    def write(self, folder: Path, stem: str, frame: Any, plot: Callable[[Any, Path], Any] | None,
              settings: dict[str, Any], *, extra: dict[str, Any] | None = None) -> None:
        settings = {**settings, "seconds": round(time.perf_counter() - self.started, 1)}
        write_outputs(self.ctx, folder, stem, frame, plot, settings, extra=extra)


_METHODS_HELP = ("Comma-separated registered methods (default: crowdllm,vae-only,per-task when the digital crowd "
                 "is installed, else profile-group,per-task,global).")
_COMMON: list[tuple[str, Any, Any]] = [
    ("dataset", str, opt.DATASET),
    *DATA_OPTIONS,  # --map, --kind/--scale/--categories/--k, --tasks/--task-map, --workers/--worker-map, --strict
    ("max_tasks", int | None, typer.Option(None, "--max-tasks", help="Use a seeded choice of this many tasks "
                                           "only (quick look; fewer LLM references).")),
    ("out", Path | None, typer.Option(None, "--out", "-o", help="Results folder (default results/analyses/<dataset>).")),
    ("seeds", str | None, typer.Option(None, "--seeds", help=opt.SEEDS_HELP + " Default: the analysis's own.")),
    ("methods", str | None, typer.Option(None, "--methods", "-m", help=_METHODS_HELP)),
    ("reference", Path | None, opt.REFERENCE),
    ("embedder", str | None, opt.EMBEDDER),
    ("crowd_param", list[str] | None, opt.CROWD_PARAM),
    ("option", list[str] | None, opt.OPTION),
    ("paper", bool, typer.Option(False, "--paper", help="Use the paper's full settings (slow).")),
]
_TEST_SIZE = typer.Option(0.2, "--test-size", help="Held-out share of people (or tasks).")


def analysis_command(group: typer.Typer, name: str, **override: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``func(run, **own_options)`` as ``crowdllm analyze NAME`` with the shared options
    (``override``: another ``typer.Option`` for a shared one, or None to leave it out) and the LLM flags."""
    import inspect

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in list(inspect.signature(func, eval_str=True).parameters.values())[1:]]
        common = [(n, a, override.get(n, d)) for n, a, d in _COMMON if override.get(n, d) is not None]
        params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
                  *[inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, a, d in common],
                  *own, inspect.Parameter("backend_options", inspect.Parameter.KEYWORD_ONLY, default=None,
                                          annotation=BackendOptions)]

        def command(ctx: typer.Context, **kw: Any) -> None:
            shared = {n: kw.pop(n) for n, _, _ in common}
            data = DataOptions(**{n: shared.pop(n) for n in OPTION_NAMES if n in shared})
            func(Run(ctx=ctx, backend_options=kw.pop("backend_options"), data_options=data, **shared), **kw)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__, command.__name__ = func.__doc__, func.__name__
        group.command(name)(with_backend_options(command))
        return func

    return decorate


# ---------------------------------------------------------------------------------------- commands

analyze = typer.Typer(help="The paper's analyses: data efficiency, crowd size, cost, growth, simulation, theory. "
                           "Each writes CSV + PNG into --out.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(analyze, name="analyze")


def _votes(ds: Any) -> bool:
    from crowdllm.crowd.kinds import kind_of

    kind = kind_of(ds.label)
    return kind is not None and kind.votes


@analysis_command(analyze, "data-efficiency")
def data_efficiency_cmd(
    run: Run,
    fractions: str = typer.Option(None, "--fractions", help="Shares of training people, e.g. 10,25,50,75,100 "
                                  "(default 0.1,0.5,1; --paper: 0.1,0.25,0.5,0.75,1)."),
    sizes: str = typer.Option(None, "--sizes", help="Virtual crowd sizes (default 1,2,5,10,20,50)."),
    split: str = typer.Option("worker", "--split", help="worker (the paper's), task or both."),
    test_size: float = _TEST_SIZE,
) -> None:
    """Error vs virtual crowd size for models fitted on x% of the training people (Figure 4)."""
    import pandas as pd

    from crowdllm.evaluate.analyses import data_efficiency
    from crowdllm.evaluate.analyses.data_efficiency import PAPER, summarize
    from crowdllm.report.figures import plot_data_efficiency

    ds = run.load()
    fr = parse_fractions(fractions) if fractions else \
        list(PAPER["fractions"] if run.paper else library_default(data_efficiency, "fractions"))
    sz = parse_ints(sizes, "--sizes") if sizes else list(library_default(data_efficiency, "sizes"))
    seed_values = run.seed_values(data_efficiency, PAPER["seeds"])
    folder = out_dir(run.out, ds.name)
    preds: list = []
    with run.session(ds, split, folder, "data_efficiency") as (factories, notes):
        res = data_efficiency(ds, factories, fractions=fr, sizes=sz, seeds=seed_values, split=split,
                              test_size=test_size, progress=True, predictions=preds,
                              on_step=partial_saver(folder, "data_efficiency"))
    extra = {"predictions.csv": pd.concat(preds, ignore_index=True)} if preds else None
    run.write(folder, "data_efficiency", res, plot_data_efficiency, {
        "dataset": ds.name, "split": split, "test_size": test_size, "seeds": seed_values, "fractions": fr,
        "sizes": sz, "methods": list(factories), "notes": notes}, extra=extra)
    show(f"data efficiency on {ds.name}: error of the largest virtual crowd", summarize(res))
    typer.echo(f"wrote {folder}/data_efficiency.csv, .png" + (", predictions.csv" if preds else ""))


@analysis_command(analyze, "crowd-size")
def crowd_size_cmd(
    run: Run,
    sizes: str = typer.Option(None, "--sizes", help="Virtual crowd sizes (default 1,2,3,5,8,10,15,20,30,50)."),
    tolerances: str = typer.Option(None, "--tolerances", help="Resolved when |virtual - real mean| <= tolerance "
                                   "(default 0.5; top-k votes: 2 votes)."),
    fractions: str = typer.Option(None, "--fractions", help="Shares of training people (default 1; "
                                  "--paper: 0.1,0.5,1)."),
    split: str = typer.Option("worker", "--split", help="worker (the paper's), task or both."),
    test_size: float = _TEST_SIZE,
) -> None:
    """Resolution rate vs number of virtual people, diverse vs fixed profiles (Figure 5)."""
    from crowdllm.evaluate.analyses import crowd_size
    from crowdllm.evaluate.analyses.crowd_size import PAPER, summarize
    from crowdllm.report.figures import plot_crowd_size

    ds = run.load()
    sz = parse_ints(sizes, "--sizes") if sizes else list(library_default(crowd_size, "sizes"))
    tol = parse_floats(tolerances, "--tolerances") if tolerances else \
        ([2.0] if _votes(ds) else list(library_default(crowd_size, "tolerances")))
    fr = list(PAPER["fractions"]) if run.paper else \
        (parse_fractions(fractions) if fractions else list(library_default(crowd_size, "fractions")))
    seed_values = run.seed_values(crowd_size, PAPER["seeds"])
    folder = out_dir(run.out, ds.name)
    with run.session(ds, split, folder, "crowd_size") as (factories, notes):
        res = crowd_size(ds, factories, sizes=sz, tolerances=tol, fractions=fr, seeds=seed_values,
                         split=split, test_size=test_size, progress=True, on_step=partial_saver(folder, "crowd_size"))
    run.write(folder, "crowd_size", res, plot_crowd_size, {
        "dataset": ds.name, "split": split, "test_size": test_size, "seeds": seed_values, "sizes": sz,
        "tolerances": tol, "fractions": fr, "methods": list(factories), "notes": notes})
    show(f"resolution rate on {ds.name}", summarize(res))
    typer.echo(f"wrote {folder}/crowd_size.csv, .png")


@analysis_command(analyze, "cost", paper=None)
def cost_cmd(
    run: Run,
    tolerances: str = typer.Option(None, "--tolerances", help="Match the real crowd's mean within these "
                                   "(default 0.1,0.2,0.3,0.4; top-k votes: 1,2,3,4 votes)."),
    max_people: int = typer.Option(None, "--max-people", help="Largest virtual crowd tried per task (default 50)."),
    price_per_judgement: float = typer.Option(0.10, "--price-per-judgement", help="Money paid per human judgement."),
    price_per_mtok: float = typer.Option(0.0, "--price-per-mtok", help="Money per million LLM tokens (0 for a "
                                         "local model)."),
    tokens_per_call: float = typer.Option(None, "--tokens-per-call",
                                          help="Tokens per LLM call (default: measured from --usage, else 300)."),
    usage: Path = typer.Option(None, "--usage", help="A usage.json from a run, to measure tokens per call."),
    llm_calls: str = typer.Option(None, "--llm-calls", help="LLM calls per method: NAME=PER_TASK[+PER_PERSON],... "
                                  "(default crowdllm=1, llm-zero-shot=1, llm-self-consistency=1, "
                                  "llm-multi-persona=0+1, others none)."),
    split: str = typer.Option(None, "--split", help="Default task (new problems); worker for top-k votes."),
    test_size: float = _TEST_SIZE,
) -> None:
    """Virtual people needed to match the real crowd within a tolerance, and the money (appendix B.5)."""
    from crowdllm.evaluate.analyses.cost import LLMCost, Prices, cost_table, people_needed
    from crowdllm.report.figures import plot_cost

    ds = run.load()
    split = split or ("worker" if _votes(ds) else library_default(people_needed, "split"))
    tol = parse_floats(tolerances, "--tolerances") if tolerances else \
        ([1.0, 2.0, 3.0, 4.0] if _votes(ds) else list(library_default(people_needed, "tolerances")))
    max_people = max_people if max_people is not None else library_default(people_needed, "max_people")
    seed_values = run.seed_values(people_needed)
    costs = _parse_llm_calls(llm_calls)
    folder = out_dir(run.out, ds.name)
    with run.session(ds, split, folder, "cost") as (factories, notes):
        need = people_needed(ds, factories, tolerances=tol, max_people=max_people, seeds=seed_values, split=split,
                             test_size=test_size, progress=True, on_step=partial_saver(folder, "cost_needed"))
    prices = Prices(per_judgement=price_per_judgement, per_million_tokens=price_per_mtok,
                    tokens_per_call=_measured_tokens_per_call(tokens_per_call, usage, folder / "cost.usage.json"))
    table = cost_table(need, llm_costs={m: costs.get(m, LLMCost()) for m in factories}, prices=prices,
                       max_people=max_people)
    run.write(folder, "cost_needed", need, plot_cost, {
        "dataset": ds.name, "split": split, "test_size": test_size, "seeds": seed_values, "tolerances": tol,
        "max_people": max_people, "prices": asdict(prices),
        "llm_calls": {m: asdict(costs.get(m, LLMCost())) for m in factories}, "methods": list(factories),
        "notes": notes}, extra={"cost.csv": table})
    show(f"cost of matching the real crowd on {ds.name} (per task)",
         table[["method", "tolerance", "resolved", "mean_needed", "llm_calls_per_task", "llm_cost_per_task",
                "human_cost_per_task", "break_even_tasks"]])
    typer.echo(f"wrote {folder}/cost_needed.csv, cost.csv, cost_needed.png")


def _measured_tokens_per_call(given: float | None, usage: Path | None, run_usage: Path) -> float:
    """Tokens per call: given, else measured from the given usage file, else from this run's LLM use."""
    if given is not None:
        return given
    if usage is not None:
        return _tokens_per_call(usage)
    if run_usage.exists():
        return _tokens_per_call(run_usage, strict=False)
    return 300.0


@analysis_command(analyze, "growth")
def growth_cmd(
    run: Run,
    factors: str = typer.Option(None, "--factors", help="Any of problems,people,ratings_per_person,"
                                "people_per_problem (default all; top-k votes: people)."),
    problems: str = typer.Option(None, "--problems", help="Levels (default 30,100,300 + all)."),
    people: str = typer.Option(None, "--people", help="Levels (default 5,20,60 + all)."),
    ratings_per_person: str = typer.Option(None, "--ratings-per-person", help="Levels (default 2,5,20 + all)."),
    people_per_problem: str = typer.Option(None, "--people-per-problem", help="Levels (default 1,2,4 + all)."),
    n_virtual: int = typer.Option(20, "--n-virtual", help="Virtual people per held-out task."),
    split: str = typer.Option("worker", "--split", help="worker (default), task or both."),
    test_size: float = _TEST_SIZE,
) -> None:
    """Error as the number of problems, people, ratings per person, people per problem grows (B.1-B.4)."""
    from crowdllm.evaluate.analyses import growth_curves
    from crowdllm.evaluate.analyses.growth import DEFAULT_LEVELS, PAPER_LEVELS, summarize
    from crowdllm.report.figures import plot_growth

    ds = run.load()
    default_factors = ["people"] if _votes(ds) else list(library_default(growth_curves, "factors"))
    fac = [f.strip() for f in factors.split(",") if f.strip()] if factors else default_factors
    given = {"problems": problems, "people": people, "ratings_per_person": ratings_per_person,
             "people_per_problem": people_per_problem}
    levels = {f: parse_ints(v, f"--{f.replace('_', '-')}") for f, v in given.items() if v}
    if run.paper:
        levels = {**PAPER_LEVELS, **levels}
    seed_values = run.seed_values(growth_curves, range(5))
    folder = out_dir(run.out, ds.name)
    with run.session(ds, split, folder, "growth") as (factories, notes):
        res = growth_curves(ds, factories, factors=fac, levels=levels or None, n_virtual=n_virtual,
                            seeds=seed_values, split=split, test_size=test_size, progress=True,
                            on_step=partial_saver(folder, "growth"))
    run.write(folder, "growth", res, plot_growth, {
        "dataset": ds.name, "split": split, "test_size": test_size, "seeds": seed_values, "factors": fac,
        "levels": {f: list(levels.get(f, DEFAULT_LEVELS[f])) for f in fac}, "n_virtual": n_virtual,
        "methods": list(factories), "notes": notes})
    show(f"growth curves on {ds.name} (MAE)", summarize(res))
    typer.echo(f"wrote {folder}/growth.csv, .png")


@analysis_command(analyze, "simulation", dataset=typer.Option(
    None, "--dataset", "-d", help="Base data set whose tasks and profiles the simulated crowds use "
    "(default: made-up texts and profiles)."))
def simulation_cmd(
    run: Run,
    noise: str = typer.Option("0,1,2", "--noise", help="Error-of-response levels (sd)."),
    diversity: str = typer.Option("0,1,2", "--diversity", help="Belief-diversity levels (sd)."),
    n_workers: str = typer.Option(None, "--n-workers", help="People in the training data (default 10,40; "
                                  "--workers is the people file of --dataset, as in every command)."),
    tasks_per_worker: str = typer.Option(None, "--tasks-per-worker", help="Default 20 (--paper: 5,10,20,40)."),
    n_tasks: int = typer.Option(100, "--n-tasks", help="Tasks per simulated crowd (20% held out)."),
    n_virtual: int = typer.Option(20, "--n-virtual", help="Virtual people per held-out question."),
) -> None:
    """Simulated crowds with known truth: noise x belief diversity x sample size (section 5.5)."""
    from crowdllm.data.synthetic import make_synthetic_crowd
    from crowdllm.evaluate.analyses import simulation_study
    from crowdllm.evaluate.analyses.simulation import summarize
    from crowdllm.report.figures import plot_simulation

    base = run.load() if run.dataset else None
    nw = parse_ints(n_workers, "--n-workers") if n_workers else \
        ([5, 10, 20, 50, 100] if run.paper else list(library_default(simulation_study, "n_workers")))
    k = parse_ints(tasks_per_worker, "--tasks-per-worker") if tasks_per_worker else \
        ([5, 10, 20, 40] if run.paper else list(library_default(simulation_study, "tasks_per_worker")))
    seed_values = run.seed_values(simulation_study, range(10))
    probe = (base if base is not None else make_synthetic_crowd(n_tasks=10, n_workers=5).dataset).subset()
    probe.name = f"simulated:{base.name}" if base is not None else "simulated"
    folder = out_dir(run.out, probe.name.replace(":", "-"))
    noise_levels, diversity_levels = parse_floats(noise, "--noise"), parse_floats(diversity, "--diversity")
    with run.session(probe, "task", folder, "simulation") as (factories, notes):
        res = simulation_study(factories, noise_levels=noise_levels, diversity_levels=diversity_levels,
                               n_workers=nw, tasks_per_worker=k, n_tasks=n_tasks, n_virtual=n_virtual,
                               seeds=seed_values, base=base, progress=True, on_step=partial_saver(folder, "simulation"))
    run.write(folder, "simulation", res, plot_simulation, {
        "base_dataset": base.name if base is not None else None, "seeds": seed_values, "noise": noise_levels,
        "diversity": diversity_levels, "workers": nw, "tasks_per_worker": k, "n_tasks": n_tasks,
        "n_virtual": n_virtual, "methods": list(factories), "notes": notes})
    show("simulation study: MAE against the known truth", summarize(res))
    typer.echo(f"wrote {folder}/simulation.csv, .png")


@analysis_command(analyze, "theory", paper=None, methods=typer.Option(
    "crowdllm,vae-only", "--methods", "-m", help="Digital-crowd methods to check (crowdllm, vae-only)."))
def theory_cmd(
    run: Run,
    alphas: str = typer.Option(None, "--alphas", help="Nominal levels are 1 - alpha (default 0.5,0.32,0.2,0.1,0.05)."),
    n_virtual: int = typer.Option(200, "--n-virtual", help="Virtual people per held-out task."),
    draws: int = typer.Option(20, "--draws", help="Draws per digital twin for the Theorem 2 terms."),
    simulated: bool = typer.Option(True, "--simulated/--no-simulated", help="Also check against the exact truth "
                                   "of a crowd simulated on the data set's tasks and profiles (noise 1, diversity 1)."),
    split: str = typer.Option("worker", "--split", help="worker (default: residuals need seen tasks), task."),
    test_size: float = _TEST_SIZE,
    conformal: bool = typer.Option(True, "--conformal/--no-conformal", help="Also the split-conformal interval "
                                   "calibrated on validation tasks/people (one more fit per seed and method)."),
) -> None:
    """Theorem 5 interval coverage vs nominal level (beside the split-conformal one), and the Theorem 2 terms."""
    import pandas as pd

    from crowdllm.crowd.kinds import kind_of
    from crowdllm.evaluate.analyses.theory_checks import summarize_coverage, summarize_terms, theory_checks
    from crowdllm.report.figures import plot_theory_coverage, plot_theory_terms

    ds = run.load()
    kind = kind_of(ds.label)
    if kind is None or not kind.rating:
        raise ConfigError(f"the theory checks need ratings (ordinal or continuous labels); '{ds.name}' has "
                          f"{ds.label.kind} labels")
    al = parse_floats(alphas, "--alphas") if alphas else list(library_default(theory_checks, "alphas"))
    seed_values = run.seed_values(theory_checks)
    folder = out_dir(run.out, ds.name)
    with run.session(ds, split, folder, "theory") as (factories, notes):
        cov, terms = theory_checks(ds, factories, alphas=al, n_virtual=n_virtual, seeds=seed_values, split=split,
                                   test_size=test_size, draws=draws, progress=True, conformal=conformal,
                                   on_step=partial_saver(folder, "theory_coverage"))
    frames = [cov.assign(data="real")]
    if simulated and kind.choice_names(ds.label):  # a simulated crowd needs the levels of a scale
        frames.append(_simulated_coverage(run, ds, split, folder, alphas=al, n_virtual=n_virtual,
                                          seeds=seed_values, test_size=test_size))
    cov_all = pd.concat(frames, ignore_index=True)
    settings = {"dataset": ds.name, "split": split, "test_size": test_size, "seeds": seed_values, "alphas": al,
                "n_virtual": n_virtual, "draws": draws, "simulated": simulated, "conformal": conformal,
                "methods": list(factories),
                "notes": notes}
    run.write(folder, "theory_coverage", cov_all, plot_theory_coverage, settings)
    run.write(folder, "theory_terms", terms, plot_theory_terms, settings)
    show(f"Theorem 5 coverage on {ds.name} (mean over seeds)", summarize_coverage(cov_all))
    show(f"Theorem 2 risk terms on {ds.name}", summarize_terms(terms))
    typer.echo(f"wrote {folder}/theory_coverage.csv, theory_terms.csv, .png")


def _simulated_coverage(run: Run, ds: Any, split: str, folder: Path, **settings: Any) -> Any:
    """Theorem 5 coverage against the exact truth of a crowd simulated on ``ds``'s tasks and profiles
    (its answers are simulated: only the LLM-free crowd applies)."""
    from crowdllm.evaluate.analyses.simulation import make_simulated_crowd
    from crowdllm.evaluate.analyses.theory_checks import theory_checks

    n_sim = min(300, ds.n_tasks)
    sim = make_simulated_crowd(noise=1.0, diversity=1.0, n_workers=min(200, max(50, ds.n_workers)),
                               tasks_per_worker=min(30, n_sim), n_tasks=n_sim, base=ds, random_state=0)
    no_reference = Run(**{**run.__dict__, "reference": None})
    with no_reference.session(sim.dataset, split, folder, "theory", methods="vae-only") as (factories, _):
        sim_cov, _ = theory_checks(sim.dataset, factories, split=split, truth=sim.truth, terms=False, progress=True,
                                   **settings)
    sim_cov["method"] = sim_cov["method"] + " (simulated)"
    return sim_cov.assign(data="simulated")


# ---------------------------------------------------------------------------------------- cost helpers


def _parse_llm_calls(text: str | None) -> dict[str, Any]:
    from crowdllm.evaluate.analyses.cost import LLMCost

    # one log-prob call per task gives CrowdLLM's reference, the zero-shot answer and the
    # self-consistency draws; a multi-persona LLM asks once per (task, person)
    costs = {"crowdllm": LLMCost(per_task=1.0), "llm-zero-shot": LLMCost(per_task=1.0),
             "llm-self-consistency": LLMCost(per_task=1.0), "llm-multi-persona": LLMCost(per_person=1.0)}
    if not text:
        return costs
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, value = part.partition("=")
        task_s, _, person_s = value.partition("+")
        try:
            costs[name.strip()] = LLMCost(per_task=float(task_s or 0), per_person=float(person_s or 0))
        except ValueError:
            raise ConfigError(f"--llm-calls: '{part}' is not NAME=PER_TASK[+PER_PERSON]") from None
    return costs


def _tokens_per_call(usage: Path, *, strict: bool = True) -> float:
    """Mean tokens per call of a recorded run (a usage JSON: ``calls`` and ``prompt_tokens`` +
    ``completion_tokens``, or ``tokens``); not ``strict``: 300 when it has no calls (all cached)."""
    try:
        data = json.loads(Path(usage).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"--usage: cannot read {usage}: {err}") from None
    calls = data.get("calls")
    tokens = data.get("tokens")
    if isinstance(tokens, dict):
        tokens = sum(v for v in tokens.values() if isinstance(v, (int, float)))
    if tokens is None:
        tokens = sum(data.get(k, 0) or 0 for k in ("prompt_tokens", "completion_tokens"))
    if not calls or not tokens:
        if not strict:
            return 300.0
        raise ConfigError(f"--usage: {usage} has no 'calls' and 'tokens' to measure tokens per call from")
    return float(tokens) / float(calls)
