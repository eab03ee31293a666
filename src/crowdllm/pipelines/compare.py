"""Pipeline vs single-LLM baseline (and variants) on a set of inputs: checks, judged quality and cost."""

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
from crowdllm.pipelines.checks import checks_for, input_text, run_checks, summarise_checks
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
    judge: dict[str, Any] | None = None      #: the judge's backend (None: no judge)
    agreement: dict[str, Any] | None = None  #: the judge's agreement with the checks (judge_agreement)


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


#: ``judge="same"``: the raters are the worker model itself (asked through its own rater prompts and
#: log-probs, not the workers' prompts); None: no judge at all; a LanguageModel: that model judges.
SAME = "same"


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
    judge: LanguageModel | str | None = SAME,
) -> Comparison:
    """Run every method on every example, score each output by its checks (no model), optionally
    have a judge rate it, and summarise.

    Scores: ``checks`` (share of the example's declared checks passed; see
    :mod:`crowdllm.pipelines.checks`), ``score`` for pipelines with an exact measure (QA-SRL F1,
    order accuracy, answers right), and ``judged`` (the rater crowd's quality) for the others, from
    ``judge`` (see :data:`SAME`). ``max_calls`` is a per-run call budget. ``trace_dir`` gets one
    folder per input with one trace per method, and ``evaluation.jsonl`` with the judge's calls."""
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
    judge_llm = llm if judge == SAME else judge
    if isinstance(judge_llm, str):
        raise ConfigError(f"judge must be 'same', None or a LanguageModel, not '{judge}'")
    ev = Evaluator(judge_llm, raters=raters, personas=personas, seed=seed + 7919, trace=eval_trace)
    quality_col = "judged" if spec.judged else "score"
    rows, outcomes = [], []
    try:
        for ex in exs:
            checks = checks_for(spec.name, ex)
            for m in methods:
                if on_progress:
                    on_progress(f"{ex.get('id')}: {m}")
                path = tdir / _safe(str(ex.get("id"))) / f"{m}.jsonl" if tdir else None
                out = run_pipeline(spec, ex, llm, method=m, settings=settings, seed=seed, personas=personas,
                                   budget=Budget(max_calls=max_calls), trace=path)
                outcomes.append(out)
                with ev.run.step(f"{ex.get('id')}/{m}"):
                    metrics = dict(spec.evaluate(ev, ex, out.output))
                quality = metrics.pop("quality", math.nan)
                checked = summarise_checks(run_checks(checks, input_text(spec.input_key, ex), out.text))
                extra = {k: out.details[k] for k in spec.metrics
                         if k in out.details and isinstance(out.details[k], int | float)}
                rows.append({"example": ex.get("id"), "method": m, "checks": checked["checks"],
                             "checks_passed": checked["checks_passed"], "checks_total": checked["checks_total"],
                             quality_col: quality, **extra, **metrics,
                             "unchanged": out.unchanged, "complete": out.complete, "calls": out.usage["calls"],
                             "tokens": out.usage["tokens"], "seconds": out.usage["seconds"],
                             "cached": out.usage["cached"], "notes": len(out.notes),
                             "failed": checked["failed"], "trace": out.trace_path})
    finally:
        eval_trace.close()
    frame = pd.DataFrame(rows)
    return Comparison(pipeline=spec.name, rows=frame, summary=summarise(frame, spec, methods),
                      eval_usage=ev.usage, outcomes=outcomes,
                      judge=None if judge_llm is None else {**judge_llm.describe(), "same": judge == SAME},
                      agreement=judge_agreement(frame) if spec.judged and judge_llm is not None else None)


def judge_agreement(rows: pd.DataFrame) -> dict[str, Any] | None:
    """How often the judge orders two methods on the same input as their checks do: over the pairs
    whose share of checks passed differs, the share the judged quality puts the same way round
    (a judged tie counts half). None when no pair has both scores and differing checks."""
    if "judged" not in rows.columns:
        return None
    agree, pairs = 0.0, 0
    for _, sub in rows.groupby("example", sort=False):
        recs = sub[["checks", "judged"]].to_numpy(dtype=float)
        for i in range(len(recs)):
            for j in range(i + 1, len(recs)):
                (ci, ji), (cj, jj) = recs[i], recs[j]
                if not all(math.isfinite(x) for x in (ci, ji, cj, jj)) or ci == cj:
                    continue
                pairs += 1
                agree += 0.5 if ji == jj else float((ji > jj) == (ci > cj))
    return {"agreement": agree / pairs, "pairs": pairs} if pairs else None


def summarise(rows: pd.DataFrame, spec: PipelineSpec, methods: Sequence[str]) -> pd.DataFrame:
    """Means per method (bool columns become shares), methods in the given order."""
    cols = ["checks", "score", "judged", *[m for m in spec.metrics if m in rows.columns], "unchanged", *COST,
            "complete"]
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
