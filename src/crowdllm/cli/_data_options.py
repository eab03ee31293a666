"""Shared data flags for every command that reads a crowd file (one spelling everywhere).

How to use it in a CLI module::

    from crowdllm.cli._data_options import DataOptions, with_data_options

    @app.command()
    @with_data_options
    def mycommand(dataset: str, data_options: DataOptions) -> None:
        ds = data_options.load(dataset)          # a registered name or a file, joined and validated

The flags: ``--map task=COL,worker=COL,label=COL[,text=COL][,profile=A+B]`` (the responses file),
``--kind``/``--scale``/``--categories``/``--k`` (the label; default: inferred), ``--tasks FILE
--task-map task=COL,text=COL`` (task texts in their own file), ``--workers FILE --worker-map
worker=COL[,profile=A+B]`` (people's profiles in their own file) and ``--strict`` (a response whose task
or person is missing from those files is an error instead of a counted warning).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer

from crowdllm.cli._grouped import add_option_group
from crowdllm.errors import ConfigError

MAP_HELP = ("Column map of the responses file, KEY=COLUMN,...: task, worker, label, text (task text), "
            "profile (columns joined by +). E.g. task=instance_id,worker=user_id,label=offensiveness")


def label_from_options(kind: str | None, scale: str | None, categories: str | None, k: int | None) -> Any:
    """A LabelSpec from the CLI flags, or None (infer it from the file); errors name the flags."""
    from crowdllm.cli.data import parse_scale
    from crowdllm.data import LABEL_KINDS, LabelSpec

    if kind is None and scale is None and categories is None and k is None:
        return None
    if kind is None:
        kind = "ordinal" if scale else "categorical" if categories else "topk"
    if kind not in LABEL_KINDS:
        raise ConfigError(f"--kind: '{kind}' is not one of {', '.join(LABEL_KINDS)}")
    cats = tuple(c.strip() for c in categories.split(",") if c.strip()) if categories else None
    from crowdllm.data.kinds import kind_named

    what = kind_named(kind)
    if what.nominal and not cats:
        raise ConfigError(f"--kind {kind} needs --categories, comma-separated (e.g. --categories no,yes or "
                          "--categories=-1,1)")
    if what.integer_scale and not scale:
        raise ConfigError(f"--kind {kind} needs --scale (e.g. --scale 1-5)")
    if what.votes and (k is None or k < 1):
        raise ConfigError(f"--kind {kind} needs --k, the number of items each voter selects (e.g. --k 5)")
    if cats is not None and len(set(cats)) != len(cats):
        raise ConfigError(f"--categories: '{categories}' names a category twice")
    return LabelSpec(kind, scale=parse_scale(scale) if scale else None,  # type: ignore[arg-type]
                     categories=cats, k=k)


@dataclass
class DataOptions:
    column_map: str | None = None
    kind: str | None = None
    scale: str | None = None
    categories: str | None = None
    k: int | None = None
    tasks: str | None = None
    task_map: str | None = None
    workers: str | None = None
    worker_map: str | None = None
    strict: bool = False

    @property
    def custom(self) -> bool:
        """True when any flag describes the user's own file."""
        return any(v not in (None, False) for v in (self.column_map, self.kind, self.scale, self.categories,
                                                    self.k, self.tasks, self.task_map, self.workers,
                                                    self.worker_map))

    def label(self) -> Any:
        return label_from_options(self.kind, self.scale, self.categories, self.k)

    def load(self, name_or_file: str, *, echo: Callable[[str], None] | None = None) -> Any:
        """The data set: a registered name (fixed layout), or the user's file joined with --tasks/--workers.

        Warnings (rows left out, an inferred label kind) are printed as ``warning: ...`` lines."""
        from crowdllm.data import REGISTRY, load_dataset
        from crowdllm.data.loaders import load_joined_dataset

        say = echo or (lambda line: typer.echo(line, err=True))
        if self.task_map is not None and self.tasks is None:
            raise ConfigError("--task-map describes the --tasks file; give --tasks FILE too")
        if self.worker_map is not None and self.workers is None:
            raise ConfigError("--worker-map describes the --workers file; give --workers FILE too")
        label = self.label()
        spec = REGISTRY.get(name_or_file)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if spec is not None:
                    if spec.tested and self.custom:
                        raise ConfigError(f"'{name_or_file}' is a registered data set with a fixed layout; "
                                          "--map/--kind/--scale/--categories/--tasks/--workers apply to your own files")
                    return load_dataset(name_or_file)
                if self.tasks is None and self.workers is None:
                    return load_dataset(name_or_file, column_map=self.column_map, label=label)
                return load_joined_dataset(name_or_file, column_map=self.column_map, label=label, tasks=self.tasks,
                                           task_map=self.task_map, workers=self.workers,
                                           worker_map=self.worker_map, strict=self.strict)
            finally:
                for w in caught:
                    say(f"warning: {' '.join(str(w.message).split())}")


_OPTIONS: list[tuple[str, Any, Any]] = [
    ("column_map", str | None, typer.Option(None, "--map", help=MAP_HELP)),
    ("kind", str | None, typer.Option(None, "--kind", help="Label kind: continuous, ordinal, categorical, topk "
                                      "or text (default: inferred; two distinct values are categorical).")),
    ("scale", str | None, typer.Option(None, "--scale", help="Label scale low-high, e.g. 1-5.")),
    ("categories", str | None, typer.Option(None, "--categories", help="Label categories, comma-separated "
                                            "(numbers work as codes: --categories=-1,1).")),
    ("k", int | None, typer.Option(None, "--k", help="Top-k: how many items each voter selects.")),
    ("tasks", str | None, typer.Option(None, "--tasks", help="A file of task texts, joined on the task id.")),
    ("task_map", str | None, typer.Option(None, "--task-map", help="Columns of --tasks: task=COL,text=COL "
                                          "(other columns become task metadata).")),
    ("workers", str | None, typer.Option(None, "--workers", help="A file of people's profiles, joined on the "
                                         "person id.")),
    ("worker_map", str | None, typer.Option(None, "--worker-map", help="Columns of --workers: worker=COL"
                                            "[,profile=A+B] (default: every other column is a profile attribute).")),
    ("strict", bool, typer.Option(False, "--strict", help="A response whose task or person is missing from "
                                  "--tasks/--workers is an error (default: counted, named, left out).")),
]
OPTION_NAMES = tuple(name for name, _, _ in _OPTIONS)
#: the declarations, for commands that build their signature themselves (``crowdllm analyze``)
DATA_OPTIONS = tuple(_OPTIONS)


def with_data_options(func: Callable[..., Any] | None = None, *, without: tuple[str, ...] = ()) -> Any:
    """Decorator for a Typer command: adds the data flags; the command gets ``data_options``.

    ``@with_data_options(without=("k",))`` leaves flags out for a command where that spelling already
    means something else (``crowdllm reference --k`` is the number of samples per task)."""
    if func is None:
        return functools.partial(with_data_options, without=without)
    unknown = set(without) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(f"with_data_options: no data option(s) {unknown}")
    options = [o for o in _OPTIONS if o[0] not in without]
    return add_option_group(func, "data_options", options, lambda values: DataOptions(**values))
