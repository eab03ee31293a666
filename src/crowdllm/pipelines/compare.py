"""Pipeline vs single-LLM baseline (and variants) on a set of examples: quality and cost side by side."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm.errors import ConfigError
from crowdllm.llm.base import LanguageModel
from crowdllm.pipelines.budget import Budget
from crowdllm.pipelines.evaluation import Evaluator
from crowdllm.pipelines.examples import load_examples, popquorn_examples
from crowdllm.pipelines.runner import get_pipeline, run_pipeline
from crowdllm.pipelines.spec import Outcome, PipelineSpec, Settings
from crowdllm.pipelines.trace import Trace

COST = ("calls", "tokens", "seconds", "cached")


@dataclass
class Comparison:
    pipeline: str
    rows: pd.DataFrame      #: one row per (example, method): metrics and cost
    summary: pd.DataFrame   #: one row per method: means over examples
    eval_usage: dict[str, Any]
    outcomes: list[Outcome]


def examples_for(spec: PipelineSpec, *, source: str = "builtin", n: int | None = None,
                 seed: int = 0) -> list[dict[str, Any]]:
    """Built-in examples (first ``n``) or, for the editing pipelines, ``n`` POPQUORN emails."""
    if source == "builtin":
        ex = load_examples(spec.name)
        return ex[:n] if n else ex
    if source == "popquorn":
        if not spec.editing:
            raise ConfigError(f"source 'popquorn' is for the editing pipelines, not '{spec.name}'")
        return popquorn_examples(n or 3, seed=seed)
    raise ConfigError(f"unknown example source '{source}' (builtin or popquorn)")


def compare(
    pipeline: str | PipelineSpec,
    llm: LanguageModel,
    *,
    examples: Sequence[Mapping[str, Any]] | None = None,
    source: str = "builtin",
    n: int | None = None,
    methods: Sequence[str] | None = None,
    settings: Settings | None = None,
    seed: int = 0,
    raters: int = 3,
    personas: Sequence[Mapping[str, Any]] | None = None,
    max_calls: int | None = None,
    trace_dir: str | os.PathLike[str] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Run every method on every example, evaluate each output with one rater crowd, and summarise.

    ``max_calls`` is a per-run call budget. ``trace_dir`` gets one trace per (example, method) and
    ``evaluation.jsonl`` with the raters' calls."""
    spec = pipeline if isinstance(pipeline, PipelineSpec) else get_pipeline(pipeline)
    exs = [dict(e) for e in examples] if examples is not None else examples_for(spec, source=source, n=n,
                                                                                seed=seed)
    if not exs:
        raise ConfigError(f"no examples to compare for pipeline '{spec.name}'")
    methods = list(methods) if methods else spec.methods
    for m in methods:
        spec.method(m)  # unknown names fail before any call
    settings = settings or Settings()
    tdir = Path(trace_dir) if trace_dir is not None else None
    eval_trace = Trace(tdir / "evaluation.jsonl" if tdir else None)
    ev = Evaluator(llm, raters=raters, personas=personas, seed=seed + 7919, trace=eval_trace)
    rows, outcomes = [], []
    try:
        for ex in exs:
            for m in methods:
                if on_progress:
                    on_progress(f"{ex.get('id')}: {m}")
                path = tdir / f"{_safe(str(ex.get('id')))}.{m}.jsonl" if tdir else None
                out = run_pipeline(spec, ex, llm, method=m, settings=settings, seed=seed, personas=personas,
                                   budget=Budget(max_calls=max_calls), trace=path)
                outcomes.append(out)
                with ev.run.step(f"{ex.get('id')}/{m}"):
                    metrics = spec.evaluate(ev, ex, out.output)
                extra = {k: out.details[k] for k in spec.metrics
                         if k in out.details and isinstance(out.details[k], int | float)}
                rows.append({"example": ex.get("id"), "method": m, **extra, **metrics,
                             "complete": out.complete, "calls": out.usage["calls"],
                             "tokens": out.usage["tokens"], "seconds": out.usage["seconds"],
                             "cached": out.usage["cached"], "notes": len(out.notes)})
    finally:
        eval_trace.close()
    frame = pd.DataFrame(rows)
    return Comparison(pipeline=spec.name, rows=frame, summary=summarise(frame, spec, methods),
                      eval_usage=ev.usage, outcomes=outcomes)


def summarise(rows: pd.DataFrame, spec: PipelineSpec, methods: Sequence[str]) -> pd.DataFrame:
    """Means per method (bool columns become shares), methods in the given order."""
    cols = ["quality", *[m for m in spec.metrics if m in rows.columns], *COST, "complete"]
    out = []
    for m in methods:
        sub = rows[rows["method"] == m]
        rec: dict[str, Any] = {"method": m, "examples": len(sub)}
        for c in dict.fromkeys(cols):
            if c in sub.columns:
                vals = pd.to_numeric(sub[c], errors="coerce").astype(float)
                rec[c] = float(np.nanmean(vals)) if vals.notna().any() else math.nan
        out.append(rec)
    return pd.DataFrame(out)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60] or "example"
