"""``crowdllm evaluate``: score methods against held-out real responses, over several seeds.

A thin shell over :func:`crowdllm.evaluate.run_experiment`; prints the table (mean ± std over seeds,
with the noise-ceiling rows) and with ``--out DIR`` writes ``DIR/results.csv`` (long form) and
``DIR/results.md``. The data flags are those of every command that reads a crowd file (``--map``,
``--kind``/``--scale``/``--categories``, ``--tasks``/``--task-map``, ``--workers``/``--worker-map``,
``--strict``; see :mod:`crowdllm.cli._data_options`). While it runs, the results so far are kept in
``DIR/results.partial.csv``.

Methods that call a language model get it from the shared backend flags (``--base-url``, ``--model``,
``--model-path``, ...; see :mod:`crowdllm.cli._backend`); it is opened only when a chosen method needs
one, and its usage is printed (and written to ``DIR/results.csv.usage.json``) at the end, also when the
run fails half-way. ``--reference FILE`` hands precomputed LLM references to the methods.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from crowdllm.cli import _options as opt
from crowdllm.cli._backend import BackendOptions, with_backend_options
from crowdllm.cli._data_options import DataOptions, with_data_options
from crowdllm.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)


@with_backend_options
@with_data_options
def evaluate_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="A registered data set name or a responses file."),
    split: str = typer.Option("worker", "--split", help="Hold out unseen workers, tasks, or both."),
    seeds: str = typer.Option("5", "--seeds", help=opt.SEEDS_HELP),
    methods: str = typer.Option(None, "--methods",
                                help="Comma-separated methods (default: random,global,per-task,profile-group)."),
    aggregators: str = typer.Option(None, "--aggregators",
                                    help="Comma-separated aggregators (default: mean,median,mv,ds,glad)."),
    test_size: float = typer.Option(0.2, "--test-size", help="Share of workers/tasks held out."),
    per_answer: int = opt.PER_ANSWER,
    option: list[str] = opt.OPTION,
    crowd_param: list[str] = opt.CROWD_PARAM,
    reference: Path = opt.REFERENCE,
    embedder: str = opt.EMBEDDER,
    out: Path = typer.Option(None, "--out", help="Write DIR/results.csv (long form) and DIR/results.md."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    validation: bool = typer.Option(False, "--validation/--no-validation",
                                    help="Never score on a seed's test part: split its training part again the "
                                    "same way and score there (for choosing settings, e.g. --crowd-param values, "
                                    "without looking at the test data)."),
    backend_options: BackendOptions = None,  # type: ignore[assignment]
    data_options: DataOptions = None,  # type: ignore[assignment]
) -> None:
    """Score virtual crowds against held-out real responses (mean ± std over seeds, with the noise ceiling)."""
    from crowdllm.data.splits import SPLIT_BY
    from crowdllm.evaluate.metrics import DEFAULT_AGGREGATORS
    from crowdllm.evaluate.runner import DEFAULT_METHODS, method_spec, run_experiment

    if split not in SPLIT_BY:
        raise ConfigError(f"--split: '{split}' is not one of {', '.join(SPLIT_BY)}")
    seed_list = opt.parse_seeds(seeds)
    opt.check_per_answer(per_answer)
    method_names = opt.parse_names(methods, "--methods") or list(DEFAULT_METHODS)
    agg_names = opt.parse_names(aggregators, "--aggregators") or list(DEFAULT_AGGREGATORS)
    needs_llm = any(method_spec(name).needs_llm for name in method_names)  # unknown names fail here
    options = opt.method_options(option=option, crowd_param=crowd_param, reference=reference, embedder=embedder)
    started = time.perf_counter()
    ds = data_options.load(dataset)
    usage = out / "results.csv.usage.json" if out is not None else None
    with backend_options.session(needs_llm, usage_file=usage) as llm:
        if llm is not None:
            options["llm"] = llm
        results = run_experiment(ds, methods=method_names, split=split, seeds=seed_list, aggregators=agg_names,
                                 options=options, progress=progress, test_size=test_size,
                                 on_step=_partial_saver(out), per_answer=per_answer, validation=validation)
    _show(results, out, started)


def _partial_saver(out: Path | None) -> Any:
    """Keep the results so far in ``out/results.partial.csv`` (atomically), so a failed run keeps them."""
    from crowdllm._io import atomic_path
    from crowdllm.evaluate.runner import RESULT_COLUMNS

    def save_partial(frame: Any) -> None:
        if out is not None:
            with atomic_path(out / "results.partial.csv") as tmp:
                frame[list(RESULT_COLUMNS)].to_csv(tmp, index=False, float_format="%.6g")

    return save_partial


def _show(results: Any, out: Path | None, started: float) -> None:
    from rich.console import Console

    from crowdllm.evaluate.table import to_rich, write_results

    console = Console()
    if not console.is_terminal:
        console = Console(width=240)
    console.print(to_rich(results))
    if out is not None:
        csv_path, md_path = write_results(results, out)
        (out / "results.partial.csv").unlink(missing_ok=True)
        console.print(f"wrote {csv_path} and {md_path}")
    console.print(f"done in {time.perf_counter() - started:.1f} s")
