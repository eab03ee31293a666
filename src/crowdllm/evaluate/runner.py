"""The experiment runner: split, fit each method, ask for one virtual response per held-out pair, score.

For each seed the data set is split (:func:`crowdllm.data.split_dataset`, ``test_size`` 0.2 by
default). Every method is built from its factory, fitted on the training part, and asked for one
virtual response per held-out real response: a *digital twin* of that worker (``pairs`` = the test
responses' ``task``/``worker``; ``workers`` = those workers' profiles; ``tasks`` = those tasks with
their text and metadata). The virtual crowd is scored against the held-out real one with
:func:`crowdllm.evaluate.metrics.evaluate_predictions`, and the noise-ceiling rows
(:func:`crowdllm.evaluate.noise.noise_ceiling`) are added for the same test set.

Methods are looked up by name in :data:`METHODS`. Other modules add theirs with
:func:`register_method`; a module placed in the package ``crowdllm.evaluate.methods`` is imported
automatically the first time a method is looked up, so a new method needs no edit here::

    # src/crowdllm/evaluate/methods/llm.py
    from crowdllm.evaluate.runner import ExperimentContext, register_method

    def _zero_shot(ctx: ExperimentContext):
        return ZeroShotMethod(backend=ctx.options["llm"], seed=ctx.seed)

    register_method("llm-zero-shot", _zero_shot, needs_llm=True)

The result is a long frame with exactly the columns :data:`RESULT_COLUMNS`; methods that were skipped
(e.g. a seen-tasks-only method on a task split) are listed, with the reason, in
``results.attrs["notes"]``.
"""

from __future__ import annotations

import importlib
import pkgutil
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crowdllm.aggregate import NUMERIC_ONLY, get_aggregator
from crowdllm.crowd.kinds import kind_of
from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.data.splits import Split, split_dataset
from crowdllm.errors import ConfigError, CrowdLLMError
from crowdllm.evaluate.baselines import (
    GlobalDistribution,
    Method,
    PerTaskEmpirical,
    ProfileGroup,
    UniformRandom,
)
from crowdllm.evaluate.metrics import DEFAULT_AGGREGATORS, MATCHED, POPULATION, evaluate_predictions
from crowdllm.evaluate.noise import CEILING_METHODS, NOISE_CEILING, SAMPLING_ORACLE, SPLIT_HALF, noise_ceiling
from crowdllm.evaluate.progress import ProgressBar
from crowdllm.evaluate.protocols import population_scores

RESULT_COLUMNS: tuple[str, ...] = ("dataset", "split", "seed", "method", "aggregator", "metric", "value")
DEFAULT_METHODS: tuple[str, ...] = ("random", "global", "per-task", "profile-group")
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
# which protocol's table each floor row belongs in (the noise ceiling is the population protocol's floor,
# shown in both for continuity with the paper's tables)
_CEILING_PROTOCOLS = {NOISE_CEILING: (MATCHED, POPULATION), SAMPLING_ORACLE: (MATCHED,), SPLIT_HALF: (MATCHED,)}


@dataclass(frozen=True)
class ExperimentContext:
    """What a method factory knows about the experiment: data set name, split kind, seed, label, and
    a free ``options`` dict (LLM backend, reference table, call budget, ...)."""

    dataset: str
    split: str
    seed: int
    label: LabelSpec
    options: Mapping[str, Any] = field(default_factory=dict)


#: The one contract of a method: built from the experiment's context, then ``fit(train)`` and
#: ``sample(tasks, workers, pairs=..., random_state=...)``. The analyses take the same registered
#: methods (:func:`crowdllm.evaluate.analyses._common.registered_methods`).
MethodFactory = Callable[[ExperimentContext], Method]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    factory: MethodFactory
    needs_llm: bool = False
    seen_tasks_only: bool = False
    label_kinds: tuple[str, ...] | None = None  # None: every scored kind
    description: str = ""

    def skip_reason(self, split: str, label: LabelSpec) -> str | None:
        """Why this method cannot run on a ``split`` split of ``label`` labels (None: it can)."""
        if self.seen_tasks_only and split in ("task", "both"):
            return (f"method '{self.name}' skipped: it answers only tasks seen in training, and a "
                    f"'{split}' split holds out whole tasks")
        if self.label_kinds is not None and label.kind not in self.label_kinds:
            return f"method '{self.name}' skipped: not defined for '{label.kind}' labels"
        return None

    def fit(self, ctx: ExperimentContext, train: CrowdDataset) -> Method:
        """Build the method for ``ctx`` and fit it; a library error names the method and seed."""
        try:
            return self.factory(ctx).fit(train)
        except CrowdLLMError as err:
            raise type(err)(f"method '{self.name}' (seed {ctx.seed}): {err}") from err


#: name -> factory (``ExperimentContext -> Method``); see :func:`register_method`.
METHODS: dict[str, MethodFactory] = {}
_SPECS: dict[str, MethodSpec] = {}
_PLUGINS_LOADED = False


def register_method(name: str, factory: MethodFactory, *, needs_llm: bool = False, seen_tasks_only: bool = False,
                    label_kinds: Iterable[str] | None = None, description: str = "") -> None:
    """Make a method available to :func:`run_experiment` and ``crowdllm evaluate --methods``.

    ``needs_llm``: the method calls a language model (the CLI says so; factories read the backend from
    ``ctx.options``). ``seen_tasks_only``: it cannot answer tasks absent from training, so the runner
    skips it on task and both splits. ``label_kinds``: the label kinds it supports (default: all).
    Registering an existing name replaces it."""
    key = str(name).strip()
    if not key or key in CEILING_METHODS:
        raise ConfigError(f"'{name}' cannot be used as a method name")
    METHODS[key] = factory
    _SPECS[key] = MethodSpec(key, factory, needs_llm, seen_tasks_only,
                             tuple(label_kinds) if label_kinds is not None else None, description)


def method_spec(name: str) -> MethodSpec:
    """The registration of a method (loads plugin modules first); unknown name -> ConfigError."""
    load_method_plugins()
    if name not in _SPECS:
        raise ConfigError(f"unknown method '{name}'; choose from {', '.join(sorted(_SPECS))}")
    return _SPECS[name]


def load_method_plugins() -> None:
    """Import every module of the package ``crowdllm.evaluate.methods`` (they register methods)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    package = importlib.import_module("crowdllm.evaluate.methods")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


register_method("random", lambda ctx: UniformRandom(), description="every level equally likely")
register_method("global", lambda ctx: GlobalDistribution(),
                description="label distribution of all training responses (top-k: item popularity)")
register_method("per-task", lambda ctx: PerTaskEmpirical(), seen_tasks_only=True,
                label_kinds=("continuous", "ordinal", "categorical"),
                description="training workers' label distribution for the task")
register_method("profile-group", lambda ctx: ProfileGroup(),
                description="label distribution of people with the same profile (x task on seen tasks)")


# ---------------------------------------------------------------- running
def method_seed(seed: int, name: str) -> int:
    """The sampling seed of ``name`` under experiment seed ``seed`` (stable across runs and processes)."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(1)[0])


def _load(dataset: CrowdDataset | str) -> CrowdDataset:
    if isinstance(dataset, CrowdDataset):
        return dataset
    from crowdllm.data import load_dataset

    return load_dataset(str(dataset))


def _test_inputs(test: CrowdDataset) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    pairs = test.responses[["task", "worker"]].reset_index(drop=True)
    tasks = test.tasks[test.tasks["task"].isin(set(pairs["task"]))].reset_index(drop=True)
    workers = test.workers[test.workers["worker"].isin(set(pairs["worker"]))].reset_index(drop=True)
    return tasks, workers, pairs


def _check_prediction(pred: Any, pairs: pd.DataFrame, name: str) -> pd.DataFrame:
    if not isinstance(pred, pd.DataFrame) or not {"task", "worker", "label"} <= set(pred.columns):
        raise ConfigError(f"method '{name}' must return a frame with columns task, worker, label")
    if len(pred) != len(pairs):
        raise ConfigError(f"method '{name}' returned {len(pred)} responses for {len(pairs)} requested pairs")
    got = pd.MultiIndex.from_arrays([pred["task"].astype(str), pred["worker"].astype(str)])
    want = pd.MultiIndex.from_arrays([pairs["task"].astype(str), pairs["worker"].astype(str)])
    if not got.sort_values().equals(want.sort_values()):
        raise ConfigError(f"method '{name}' answered other (task, worker) pairs than those requested")
    return pred


def _usable_aggregators(aggregators: Sequence[str], label: LabelSpec, notes: list[str]) -> list[str]:
    names = [str(a).strip().lower() for a in aggregators]
    for name in names:
        get_aggregator(name)  # unknown name -> ConfigError before any work
    if not label.is_numeric:
        dropped = [a for a in names if a in NUMERIC_ONLY]
        if dropped:
            notes.append(f"aggregator(s) {', '.join(dropped)} skipped: categorical labels have no mean/median")
        names = [a for a in names if a not in NUMERIC_ONLY]
    return names


#: ``run_experiment(validation=True)`` splits a seed's training part again with ``random_state = seed + this``
VALIDATION_OFFSET = 100


def run_experiment(dataset: CrowdDataset | str, *, methods: Sequence[str] = DEFAULT_METHODS, split: str = "worker",
                   seeds: Sequence[int] = DEFAULT_SEEDS, aggregators: Sequence[str] = DEFAULT_AGGREGATORS,
                   options: Mapping[str, Any] | None = None, progress: bool = True, test_size: float = 0.2,
                   noise: bool = True, on_step: Callable[[pd.DataFrame], None] | None = None,
                   per_answer: int = 0, validation: bool = False) -> pd.DataFrame:
    """Run every method on every seed's split and return the long results frame (:data:`RESULT_COLUMNS`).

    ``dataset``: a :class:`CrowdDataset`, a registered name or a file path. ``noise``: add the
    noise-ceiling and split-half rows. ``on_step``: called with the results so far after each method
    and seed (the CLI uses it to save partial results). ``per_answer > 0``: score every method in
    both protocols (:mod:`crowdllm.evaluate.protocols`; a ``protocol`` column says which): matched
    (one answer per real answer, with the ``sampling-oracle`` floor) and population (``per_answer``
    answers per real one, with the ``noise-ceiling`` floor). ``validation``: never score on a seed's test
    part; split its training part again the same way (``random_state = seed +``
    :data:`VALIDATION_OFFSET`), fit on the inner training part and score on the inner held-out part, with
    the floors computed from the training part alone: the scores to choose settings by. Deterministic for
    given seeds."""
    ds = _load(dataset)
    label = ds.label
    kind = kind_of(label)
    if kind is None:
        raise ConfigError(f"data set '{ds.name}' has free-text labels, which the numeric metrics cannot score")
    if not seeds:
        raise ConfigError("seeds: give at least one seed")
    if isinstance(per_answer, bool) or not isinstance(per_answer, int) or per_answer < 0:
        raise ConfigError(f"per_answer={per_answer!r}: give 0 (matched protocol only) or a positive whole number")
    names = [str(m).strip() for m in methods]
    if not names:
        raise ConfigError("methods: give at least one method")
    specs = [method_spec(n) for n in names]
    notes: list[str] = []
    aggs = _usable_aggregators(aggregators, label, notes)
    if not aggs and not kind.votes:
        raise ConfigError("aggregators: none of the given aggregators can score these labels")
    runnable = _runnable(specs, split, label, notes)
    if validation:
        notes.append(f"validation: scored on an inner split of each seed's training part (split by {split} again, "
                     f"random_state = seed + {VALIDATION_OFFSET}); no test part was used")

    frames: list[pd.DataFrame] = []

    def add(frame: pd.DataFrame, seed: int, method: str, protocol: str = MATCHED) -> None:
        frame = frame.assign(dataset=ds.name, split=split, seed=int(seed), method=method)
        extra = ["protocol"] if per_answer else []
        frames.append(frame.assign(protocol=protocol)[[*RESULT_COLUMNS, *extra]])
        if on_step is not None:
            on_step(_finish(frames, notes))

    steps = len(seeds) * (len(runnable) + (1 if noise else 0))
    with ProgressBar(progress, steps) as bar:
        for seed in seeds:
            parts, population = _seed_parts(ds, split, test_size, int(seed), validation)
            tasks, workers, pairs = _test_inputs(parts.test)
            gold = parts.test.responses
            for spec in runnable:
                bar.start(f"seed {seed}: {spec.name}")
                ctx = ExperimentContext(dataset=ds.name, split=split, seed=int(seed), label=label,
                                        options=dict(options or {}))
                method = spec.fit(ctx, parts.train)
                try:
                    pred = method.sample(tasks, workers, pairs=pairs, random_state=method_seed(seed, spec.name))
                except CrowdLLMError as err:
                    raise type(err)(f"method '{spec.name}' (seed {seed}): {err}") from err
                pred = _check_prediction(pred, pairs, spec.name)
                add(evaluate_predictions(pred, gold, label, aggs), seed, spec.name)
                if per_answer:
                    add(population_scores(method, tasks, workers, pairs, gold, label, aggs, per_answer=per_answer,
                                          random_state=method_seed(seed, spec.name) + 1), seed, spec.name, POPULATION)
                bar.done()
            if noise:
                bar.start(f"seed {seed}: noise ceiling")
                ceiling = noise_ceiling(gold, label, full=population, aggregators=aggs,
                                        random_state=method_seed(seed, "noise-ceiling"),
                                        with_sampling_oracle=bool(per_answer))
                for method_name, part in ceiling.groupby("method", sort=False):
                    for protocol in _CEILING_PROTOCOLS[str(method_name)] if per_answer else (MATCHED,):
                        add(part.drop(columns="method"), seed, str(method_name), protocol)
                bar.done()
    return _finish(frames, notes)


def _seed_parts(ds: CrowdDataset, split: str, test_size: float, seed: int, validation: bool
                ) -> tuple[Split, pd.DataFrame]:
    """The seed's train/test split and the answers its floors come from. ``validation``: the test part
    stays unseen; the training part is split again (``random_state = seed + VALIDATION_OFFSET``) and is
    also where the floors come from."""
    parts = split_dataset(ds, by=split, test_size=test_size, random_state=seed)  # type: ignore[arg-type]
    if not validation:
        return parts, ds.responses
    inner = split_dataset(parts.train, by=split, test_size=test_size,  # type: ignore[arg-type]
                          random_state=seed + VALIDATION_OFFSET)
    return inner, parts.train.responses


def _runnable(specs: list[MethodSpec], split: str, label: LabelSpec, notes: list[str]) -> list[MethodSpec]:
    """The methods that can run on this split and label kind; a note says why each other one cannot."""
    runnable: list[MethodSpec] = []
    for spec in specs:
        reason = spec.skip_reason(split, label)
        if reason is None:
            runnable.append(spec)
        else:
            notes.append(reason)
    return runnable


def _finish(frames: list[pd.DataFrame], notes: list[str]) -> pd.DataFrame:
    out = (pd.concat(frames, ignore_index=True) if frames
           else pd.DataFrame({c: pd.Series(dtype=object) for c in RESULT_COLUMNS}))
    out["seed"] = out["seed"].astype(int)
    out["value"] = out["value"].astype(float)
    out.attrs["notes"] = list(notes)
    return out


# ---------------------------------------------------------------- summaries
SUMMARY_COLUMNS: tuple[str, ...] = ("dataset", "split", "method", "aggregator", "metric", "mean", "std", "n_seeds")


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (``ddof=1``; NaN with one seed) over seeds, one row per
    (dataset, split, method, aggregator, metric) -- and protocol, when the results have that column --
    in the order the rows first appear."""
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ConfigError(f"results need the columns {', '.join(RESULT_COLUMNS)} (missing: {', '.join(missing)})")
    keys = ["dataset", "split", *(["protocol"] if "protocol" in results.columns else []), "method", "aggregator",
            "metric"]
    grouped = results.groupby(keys, sort=False, dropna=False)["value"]
    out = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["n_seeds"] = out["n_seeds"].astype(int)
    out.attrs["notes"] = list(results.attrs.get("notes", []))
    return out[[*SUMMARY_COLUMNS, *(["protocol"] if "protocol" in results.columns else [])]]
