"""Run one method of a pipeline on one input, with a trace and a budget; the registry of pipelines."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from crowdllm.errors import ConfigError
from crowdllm.llm.base import LanguageModel
from crowdllm.pipelines.budget import Budget, BudgetExceeded
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.spec import Example, Outcome, PipelineSpec, Settings
from crowdllm.pipelines.trace import Trace

_ORDER = ("map-reduce", "find-fix-verify", "iterative", "humor", "price-divide-solve", "task-paraphrase",
          "break-it-down")


def pipelines() -> dict[str, PipelineSpec]:
    """The seven pipelines by name, in the order of the paper's list."""
    from crowdllm.pipelines import (
        break_it_down,
        find_fix_verify,
        humor,
        iterative,
        map_reduce,
        price_divide_solve,
        task_paraphrase,
    )

    specs = [m.SPEC for m in (map_reduce, find_fix_verify, iterative, humor, price_divide_solve,
                              task_paraphrase, break_it_down)]
    by_name = {s.name: s for s in specs}
    return {n: by_name[n] for n in _ORDER}


def get_pipeline(name: str) -> PipelineSpec:
    table = pipelines()
    key = name.strip().lower().replace("_", "-")
    if key not in table:
        raise ConfigError(f"unknown pipeline '{name}' (known: {', '.join(table)})")
    return table[key]


def run_pipeline(
    pipeline: str | PipelineSpec,
    example: Example | str,
    llm: LanguageModel,
    *,
    method: str = "pipeline",
    settings: Settings | None = None,
    seed: int = 0,
    personas: Sequence[Mapping[str, Any]] | None = None,
    budget: Budget | None = None,
    trace: Trace | str | os.PathLike[str] | None = None,
) -> Outcome:
    """Run ``method`` ("pipeline", a variant, or "baseline") of a pipeline on one input.

    When the budget runs out the run stops, notes it in the trace, and the outcome holds the best
    result kept so far (``complete=False``). Other errors are written to the trace, then raised."""
    spec = pipeline if isinstance(pipeline, PipelineSpec) else get_pipeline(pipeline)
    ex = spec.from_text(example) if isinstance(example, str) else dict(example)
    if not str(ex.get(spec.input_key) or "").strip():
        raise ConfigError(f"example '{ex.get('id', '?')}' has no '{spec.input_key}' for pipeline {spec.name}")
    fn = spec.method(method)
    settings = settings or Settings()
    budget = budget or Budget()
    own_trace = not isinstance(trace, Trace)
    tr = trace if isinstance(trace, Trace) else Trace(trace)
    run = Run(llm, trace=tr, budget=budget, seed=seed, personas=personas, max_tokens=settings.max_tokens)
    try:
        run.record("start", pipeline=spec.name, title=spec.title, method=method, example=ex,
                   settings={k: v for k, v in settings.as_dict().items() if k in spec.uses},
                   backend=llm.describe(), seed=seed, budget=budget.as_dict(),
                   personas=len(run.personas))
        complete = True
        try:
            output = fn(run, ex, settings)
        except BudgetExceeded as err:
            complete = False
            kept = "the best result so far" if run.has_best else "no result (nothing was finished)"
            run.note(f"{err}; stopped and returned {kept}")
            output = run.best if run.has_best else spec.empty(ex)
        except Exception as err:
            run.record("error", error=f"{type(err).__name__}: {err}")
            raise
        text = spec.render(output)
        unchanged = spec.editing and text.strip() == str(ex.get(spec.input_key, "")).strip()
        if unchanged:
            run.note("the output equals the input: the run changed nothing")
        run.record("result", output=output, text=text, complete=complete, unchanged=unchanged,
                   status=status_of(complete, unchanged), notes=run.notes, usage=run.usage,
                   details=run.details)
    finally:
        if own_trace:
            tr.close()
    return Outcome(pipeline=spec.name, method=method, example_id=str(ex.get("id", "input")), output=output,
                   text=text, complete=complete, unchanged=unchanged, notes=list(run.notes), usage=run.usage,
                   details=dict(run.details), trace_path=str(tr.path) if tr.path else None)


def status_of(complete: bool, unchanged: bool) -> str:
    """The one-line status of a run: complete or stopped early, and whether it changed its input."""
    status = "complete" if complete else "stopped early: best result so far"
    return status + (" \u00b7 unchanged: the output equals the input" if unchanged else "")
