"""Reproduce the CrowdLLM paper's Table 1 (POPQUORN offensiveness) and Table 5 (Zurich top-5 votes).

:func:`reproduce` runs every method on every split and seed through the experiment runner with one
LLM backend, after computing the LLM reference of every task once (one log-prob call per task on the
embedded model; cached on disk, so a rerun makes no call). It writes into ``out``:

- ``results.csv``: the long results (dataset, split, seed, method, aggregator, metric, value);
- ``results.md``: one table per split (mean ± std over seeds, noise-ceiling rows), the LLM used, its
  cost (calls, cache hits, tokens, time), the text embedder, and the theory numbers;
- ``references.csv``: the references (``y_ref``, ``p_*``) the methods used;
- ``theory.csv``: Theorem 5 per-task intervals for the first seed of each split (numeric labels), with
  the split-conformal interval calibrated on validation tasks/people beside them (``conformal_*``);
- ``run.json``: settings, timings, usage.

While it runs, ``results.partial.csv`` holds what is finished, so an interrupted run loses nothing
that the cache does not already keep.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crowdllm._io import atomic_path, atomic_write_json, atomic_write_text
from crowdllm.errors import ConfigError

OFFENSIVENESS = "popquorn-offensiveness"
VOTING = "zurich-pb-top5"
RATING_METHODS: tuple[str, ...] = ("random", "global", "per-task", "profile-group", "supervised-text",
                                   "text-ridge", "text+reference", "llm-zero-shot", "llm-multi-persona", "llm-self-consistency", "vae-only",
                                   "crowdllm")
VOTING_METHODS: tuple[str, ...] = ("random", "global", "profile-group", "supervised-text", "text-ridge",
                                   "text+reference", "llm-zero-shot",
                                   "llm-multi-persona", "llm-self-consistency", "vae-only", "crowdllm")


@dataclass
class Reproduction:
    results: pd.DataFrame
    markdown: str
    info: dict[str, Any] = field(default_factory=dict)
    theory: dict[str, str] = field(default_factory=dict)


def _reference_table(ds: Any, llm: Any, options: Mapping[str, Any], progress: bool) -> pd.DataFrame:
    from crowdllm.evaluate.methods._common import (
        default_strategy,
        default_template,
        reference_args,
        reference_kind,
    )
    from crowdllm.llm.reference import compute_references

    strategy = default_strategy(llm, options)
    return compute_references(ds.tasks, llm, kind=reference_kind(ds.label), strategy=strategy,
                              k=int(options.get("reference_k", 8)), template=default_template(ds.name, options),
                              progress=progress, **reference_args(ds.label))


def _theory(ds: Any, split: str, seed: int, options: Mapping[str, Any], reference: pd.DataFrame | None
            ) -> tuple[str, pd.DataFrame | None]:
    """Theorem 5 (and the split-conformal interval beside it) and Theorem 2 numbers for CrowdLLM on one
    split (ratings only)."""
    from crowdllm.crowd.kinds import kind_of

    kind = kind_of(ds.label)
    if kind is None or not kind.rating:
        return "", None
    from crowdllm.data.splits import split_dataset
    from crowdllm.evaluate.methods.crowd import CrowdMethod
    from crowdllm.evaluate.theory import conformal_intervals, risk_decomposition, theorem5_intervals

    parts = split_dataset(ds, by=split, random_state=int(seed))  # type: ignore[arg-type]
    method = CrowdMethod(use_reference=True, dataset=ds.name, split=split, seed=seed, options=dict(options)).fit(
        parts.train)
    intervals = theorem5_intervals(method.crowd_, parts.train, parts.test, reference=reference, random_state=seed)
    conformal = conformal_intervals(
        method.crowd_, lambda train: CrowdMethod(use_reference=True, dataset=ds.name, split=split, seed=seed,
                                                 options=dict(options)).fit(train).crowd_,
        parts.train, parts.test, split=split, reference=reference, random_state=seed)
    risk = risk_decomposition(method.crowd_, parts.test, reference=reference, random_state=seed)
    conf = conformal.per_task.set_index("task")[["lower", "upper", "half_width", "covered"]].add_prefix("conformal_")
    frame = intervals.per_task.join(conf, on="task").assign(split=split, seed=seed)
    return (f"- split by {split} (seed {seed}): {intervals.render()}\n  {conformal.render()}\n  {risk.render()}",
            frame)


def reproduce(
    dataset: str | Any,
    *,
    llm: Any,
    seeds: Sequence[int] = (0,),
    splits: Sequence[str] = ("worker", "task", "both"),
    methods: Sequence[str] | None = None,
    aggregators: Sequence[str] | None = None,
    out: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    theory: bool = True,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    per_answer: int = 0,
) -> Reproduction:
    """Run the paper's comparison on ``dataset`` (a registered name, or a CrowdDataset; see the module
    docstring). ``per_answer > 0`` adds the population protocol (see ``run_experiment``)."""
    from crowdllm.data import load_dataset
    from crowdllm.evaluate.table import to_markdown

    say = log or (lambda msg: None)
    started = time.perf_counter()
    ds = load_dataset(dataset) if isinstance(dataset, str) else dataset
    votes = _check_splits(ds, splits)
    names = list(methods) if methods else list(VOTING_METHODS if votes else RATING_METHODS)
    opts: dict[str, Any] = {"_refs": {}, **dict(options or {}), "llm": llm}
    out_dir = Path(out) if out is not None else None
    # 1. the LLM reference of every task, once
    t0 = time.perf_counter()
    say(f"LLM references for {len(ds.tasks)} tasks ({getattr(llm, 'backend', '?')}: {getattr(llm, 'model', '?')})")
    if opts.get("reference") is None:
        opts["reference"] = _reference_table(ds, llm, opts, progress)
    refs = opts["reference"]
    ref_seconds = time.perf_counter() - t0
    if out_dir is not None:
        from crowdllm.llm.reference import save_references

        out_dir.mkdir(parents=True, exist_ok=True)
        save_references(refs, out_dir / "references.csv")
    # 2. every method, split and seed; 3. the theory numbers
    results, timings = _run_splits(ds, names, splits, seeds, aggregators, opts, progress, out_dir, say, per_answer)
    theory_text: dict[str, str] = {}
    theory_frames = []
    for split in splits if theory else ():
        text, frame = _theory(ds, split, int(seeds[0]), opts, refs)
        if text:
            theory_text[split] = text
            theory_frames.append(frame)
    # 4. tables and the record of the run
    info = {
        "dataset": ds.name, "splits": list(splits), "seeds": list(seeds), "methods": names,
        "llm": {"backend": getattr(llm, "backend", "?"), "model": getattr(llm, "model", "?"),
                "logprobs": bool(getattr(llm, "supports_logprobs", False))},
        "reference_strategy": str(refs.attrs.get("strategy", opts.get("reference_strategy", "logprob"))),
        "reference_seconds": round(ref_seconds, 1), "split_seconds": timings,
        "total_seconds": round(time.perf_counter() - started, 1),
        "usage": llm.usage.as_dict() if getattr(llm, "usage", None) is not None else {},
        "embedder": _embedder_name(opts), "persona_budget": int(opts.get("persona_budget", 300)),
        "python": platform.python_version(),
    }
    markdown = _markdown(results, info, theory_text, to_markdown)
    if out_dir is not None:
        _write(out_dir, results, markdown, info, theory_frames)
    return Reproduction(results=results, markdown=markdown, info=info, theory=theory_text)


def _check_splits(ds: Any, splits: Sequence[str]) -> bool:
    """Check the splits for ``ds``; True when its labels are top-k votes."""
    from crowdllm.crowd.kinds import kind_of
    from crowdllm.data.splits import SPLIT_BY

    kind = kind_of(ds.label)
    votes = kind is not None and kind.votes
    if votes and any(s != "worker" for s in splits):
        raise ConfigError("top-k votes split only by worker (every voter picks k of all items)")
    for s in splits:
        if s not in SPLIT_BY:
            raise ConfigError(f"splits: '{s}' is not one of {', '.join(SPLIT_BY)}")
    return votes


def _run_splits(ds: Any, names: list[str], splits: Sequence[str], seeds: Sequence[int],
                aggregators: Sequence[str] | None, opts: dict[str, Any], progress: bool, out_dir: Path | None,
                say: Callable[[str], None], per_answer: int = 0) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every method on every split and seed; the rows so far are kept in ``results.partial.csv``."""
    from crowdllm.evaluate.metrics import DEFAULT_AGGREGATORS
    from crowdllm.evaluate.runner import RESULT_COLUMNS, run_experiment

    frames: list[pd.DataFrame] = []
    notes: list[str] = []

    def save_partial(frame: pd.DataFrame) -> None:
        if out_dir is not None:
            both = pd.concat([*frames, frame], ignore_index=True)
            with atomic_path(out_dir / "results.partial.csv") as tmp:
                both[[c for c in (*RESULT_COLUMNS, "protocol") if c in both.columns]].to_csv(
                    tmp, index=False, float_format="%.6g")

    timings: dict[str, float] = {}
    for split in splits:
        t1 = time.perf_counter()
        say(f"split by {split}: {', '.join(names)} x {len(seeds)} seed(s)")
        res = run_experiment(ds, methods=names, split=split, seeds=list(seeds),
                             aggregators=list(aggregators or DEFAULT_AGGREGATORS), options=opts, progress=progress,
                             on_step=save_partial, per_answer=per_answer)
        frames.append(res)
        notes += [n for n in res.attrs.get("notes", []) if n not in notes]
        timings[split] = round(time.perf_counter() - t1, 1)
    results = pd.concat(frames, ignore_index=True)
    results.attrs["notes"] = notes
    return results, timings


def _write(out_dir: Path, results: pd.DataFrame, markdown: str, info: Mapping[str, Any],
           theory_frames: list[pd.DataFrame]) -> None:
    from crowdllm.evaluate.table import write_results

    write_results(results, out_dir)
    atomic_write_text(out_dir / "results.md", markdown)
    atomic_write_json(out_dir / "run.json", info)
    if theory_frames:
        with atomic_path(out_dir / "theory.csv") as tmp:
            pd.concat(theory_frames, ignore_index=True).to_csv(tmp, index=False, float_format="%.6g")
    (out_dir / "results.partial.csv").unlink(missing_ok=True)


def _embedder_name(options: Mapping[str, Any]) -> str:
    from crowdllm.belief.embeddings import MINILM, minilm_available

    choice = str(options.get("embedder", "auto"))
    if choice == "hashing" or (choice == "auto" and not minilm_available()):
        return "hashing-512 (fallback)"
    return MINILM


def _markdown(results: pd.DataFrame, info: Mapping[str, Any], theory: Mapping[str, str],
              to_markdown: Callable[[pd.DataFrame], str]) -> str:
    u = info.get("usage", {})
    llm = info["llm"]
    lines = [f"# CrowdLLM reproduction: {info['dataset']}", "",
             f"LLM: {llm['backend']} / {llm['model']} (log-probs: {'yes' if llm['logprobs'] else 'no'}); "
             f"reference strategy: {info['reference_strategy']}; text embedder: {info['embedder']}.",
             f"LLM cost of this run: {u.get('calls', 0)} calls, {u.get('cache_hits', 0)} cache hits, "
             f"{u.get('prompt_tokens', 0):,} prompt + {u.get('completion_tokens', 0):,} completion tokens, "
             f"{u.get('wall_time_s', 0.0):.0f} s in the model"
             + (f", cost {u['cost']:.4f}" if u.get("cost") is not None else "") + ".",
             f"Time: references {info['reference_seconds']:.0f} s, "
             + ", ".join(f"split {k} {v:.0f} s" for k, v in info["split_seconds"].items())
             + f"; total {info['total_seconds']:.0f} s. Seeds: {', '.join(map(str, info['seeds']))}.", "",
             to_markdown(results)]
    if theory:
        lines += ["## Theory (CrowdLLM, first seed)", "", *theory.values(), ""]
    return "\n".join(lines) + "\n"
