"""Reference decisions: what the LLM says about each task, as in the CrowdLLM paper.

:func:`compute_references` returns one row per task (index ``task``) with ``y_ref`` and, where known, the
distribution over the answers (``p_1`` .. ``p_5``), the ``strategy``, ``n_calls`` (LLM calls the
reference rests on, whether made now or served from the cache) and ``parse_failures``.

Strategies for ratings (``kind="rating"``, scale ``(lo, hi)``):

- ``logprob``: ONE call per task; the next-token distribution over the scale points read from the
  log-probabilities; ``y_ref`` = its expected value. Backends without log-probs fall back to sampling
  (counted in the usage report).
- ``zero-shot``: ``k`` samples at temperature 0 (K = 8 as in the paper; each sample index is its own
  cache entry), parsed; ``y_ref`` = their mean, ``y_majority`` = the most frequent answer.
- ``self-consistency``: ``k`` samples at temperature 0.5; ``y_ref`` = the majority answer, ``y_mean``
  the mean, and the distribution of the answers.

Top-k votes (``kind="topk"``; a task is an item, each voter picks ``top_k`` of the items): ``y_ref`` =
the probability that a voter picks the item. ``logprob`` asks one yes/no question per item ("would a
typical voter put this among their k picks?") and reads P(yes); ``zero-shot`` / ``self-consistency``
ask ``k`` times for a whole ballot of ``top_k`` items and count how often each item is on it.

Categorical tasks (``kind="choice"``, ``choices=``): ``y_ref`` = the most likely choice and ``p_<choice>``
its distribution. Free text (``kind="text"``): ``text`` = the temperature-0 answer.

Hidden states: with the embedded backend opened with ``hidden_states=True`` (``crowdllm reference
--hidden-states``) each ``logprob`` rating or choice row also holds ``h_0 ... h_<d-1>``, the model's
last-layer state at the answer position, read in the same call (the crowd uses them as task features;
:mod:`crowdllm.crowd.reference`). They are cached with the answer, like it.

Several wordings (``template=[a, b, ...]``, ``crowdllm reference --template A --template B``; log-prob
ratings and choices): each task is asked once per wording and the answer distributions (and hidden
states) are averaged, ``y_ref`` read from the average; ``y_ref_<i>`` keeps each wording's own, and
``n_calls`` counts every call. On POPQUORN offensiveness two wordings (the packaged one and
``popquorn-offensiveness-rudeness``) lowered the crowd's population MAE on inner validation tasks of the
training parts by 0.005 (10 splits, 9 better; docs/llm.md) for one more call per task.

Multi-persona prompting: :func:`persona_choice_probs` asks once per (task, persona) pair.

References are written with :func:`save_references` (CSV or Parquet, atomically) and read back with
:func:`load_references`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import atomic_path
from crowdllm.errors import ConfigError, CrowdDataError
from crowdllm.llm.base import ChoiceDistribution, LanguageModel
from crowdllm.llm.parsing import parse_choice, parse_rating, parse_topk
from crowdllm.llm.prompts import PromptTemplate, build_prompt, get_template

STRATEGIES = ("logprob", "zero-shot", "self-consistency")
REFERENCE_KINDS = ("rating", "choice", "topk", "text")
SC_TEMPERATURE = 0.5
SAMPLE_MAX_TOKENS = {"rating": 12, "choice": 12, "topk": 48, "text": 256}
TemplateLike = str | os.PathLike[str] | Mapping[str, Any] | PromptTemplate


# ------------------------------------------------------------------------------ helpers
def _task_frame(tasks: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    if not isinstance(tasks, pd.DataFrame):
        raise ConfigError("tasks must be a pandas DataFrame with columns 'task' and 'text'")
    frame = tasks
    if "task" not in frame.columns:
        if frame.index.name == "task":
            frame = frame.reset_index()
        else:
            raise CrowdDataError("tasks have no 'task' column", column="task")
    if "text" not in frame.columns:
        raise CrowdDataError("tasks have no 'text' column (the text the LLM is asked about)", column="text")
    frame = frame.drop_duplicates("task")
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"limit must be at least 1 (got {limit})")
        frame = frame.iloc[:limit]
    bad = frame["text"].isna()
    if bad.any():
        row = frame.index[int(np.argmax(bad.to_numpy()))]
        raise CrowdDataError(f"task {frame.loc[row, 'task']!r} has no text", row=int(row) if isinstance(row, (int, np.integer)) else None,
                             column="text")
    out = frame[["task", "text"]].copy()
    out["task"] = out["task"].astype(str)
    out["text"] = out["text"].astype(str)
    return out.reset_index(drop=True)


class _Progress:
    """A rich progress bar (or nothing)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self._bar = None
        if enabled and total > 0:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self._bar.start()
            self._id = self._bar.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._id, n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _record_parse_failures(backend: LanguageModel, n: int) -> None:
    usage = getattr(backend, "usage", None)
    if n and usage is not None and hasattr(usage, "add_parse_failures"):
        usage.add_parse_failures(n)


def _majority(values: Sequence[float]) -> float:
    """Most frequent value; ties go to the one nearest the mean, then the smaller."""
    if not values:
        return float("nan")
    counts = Counter(values)
    top = max(counts.values())
    tied = [v for v, c in counts.items() if c == top]
    mean = float(np.mean(values))
    return float(min(tied, key=lambda v: (abs(v - mean), v)))


def _levels(scale: tuple[int, int]) -> list[int]:
    lo, hi = int(scale[0]), int(scale[1])
    if not lo < hi:
        raise ConfigError(f"scale {scale} must be two integers low < high")
    if hi - lo > 100:
        raise ConfigError(f"scale {scale} has more than 101 points; use a coarser scale")
    return list(range(lo, hi + 1))


# ------------------------------------------------------------------------------ the one log-prob path
@dataclass(frozen=True)
class _LogprobRead:
    """One prompt's answer distribution as the reference tables report it."""

    dist: ChoiceDistribution
    probs: np.ndarray

    @property
    def ok(self) -> bool:
        return bool(np.all(np.isfinite(self.probs)))

    def columns(self, labels: Sequence[str]) -> dict[str, float]:
        """``p_<label>`` for each allowed answer."""
        return {f"p_{lab}": float(p) for lab, p in zip(labels, self.probs, strict=True)}

    def hidden(self) -> dict[str, float]:
        """``h_0 ... h_<d-1>``: the model's hidden state at the answer position, when the backend read it
        (the embedded model with ``hidden_states=True``); nothing otherwise."""
        return {f"h_{i}": float(v) for i, v in enumerate(self.dist.extra.get("hidden") or ())}

    def argmax(self) -> str | None:
        """The most likely answer, or None when the distribution is unknown."""
        return self.dist.argmax() if self.ok else None

    def meta(self) -> dict[str, Any]:
        """How the distribution was obtained: method, mass on the answers, calls it rests on (a fallback to
        sampling counts its samples), parse failures (a distribution with no probabilities counts as one)
        and, when there is no distribution, the backend's reason."""
        d = self.dist
        failures = int(d.parse_failures) + (0 if self.ok or d.parse_failures else 1)
        out: dict[str, Any] = {"method": d.method, "mass": float(d.mass),
                               "n_calls": int(d.extra.get("calls", 1 if d.method == "logprobs" else d.n_samples)),
                               "parse_failures": failures}
        if not self.ok and d.extra.get("error"):
            out["error"] = str(d.extra["error"])
        return out


def _averaged(reads: Sequence[_LogprobRead]) -> _LogprobRead:
    """Several wordings' reads of one task as one: the mean of their distributions and hidden states (over
    the wordings that gave a distribution), their calls and parse failures summed."""
    if len(reads) == 1:
        return reads[0]
    good = [r for r in reads if r.ok] or list(reads)
    probs = np.mean([r.probs for r in good], axis=0)
    hidden = [r.dist.extra["hidden"] for r in good if r.dist.extra.get("hidden")]
    metas = [r.meta() for r in reads]
    extra = {"calls": sum(m["n_calls"] for m in metas), **({"hidden": np.mean(hidden, axis=0).tolist()}
                                                          if len(hidden) == len(good) else {})}
    errors = [m["error"] for m in metas if "error" in m]
    if errors and not any(r.ok for r in reads):
        extra["error"] = errors[0]
    first = good[0].dist
    dist = ChoiceDistribution(choices=first.choices, probs=tuple(float(p) for p in probs), method=first.method,
                              mass=float(np.mean([r.dist.mass for r in good])), n_samples=first.n_samples,
                              parse_failures=sum(m["parse_failures"] for m in metas), extra=extra)
    return _LogprobRead(dist, probs)


def _wording_pass(backend: LanguageModel, frame: pd.DataFrame, kind: str, templates: Sequence[Any],
                  labels: Sequence[str], *, k: int, seed: int, progress: bool,
                  **prompt_args: Any) -> tuple[list[_LogprobRead], list[list[_LogprobRead]]]:
    """The log-prob pass for every wording (one call per task each), and their per-task average."""
    per = []
    tpls = [get_template(kind, template) for template in templates]  # a bad one fails before any call
    for i, tpl in enumerate(tpls):
        prompts = [build_prompt(t, kind=kind, template=tpl, **prompt_args) for t in frame["text"]]
        label = "log-prob references" + (f" (wording {i + 1} of {len(templates)})" if len(templates) > 1 else "")
        per.append(_logprob_pass(backend, prompts, labels, k=k, seed=seed, progress=progress, label=label))
    return [_averaged(reads) for reads in zip(*per, strict=True)], per


def _per_wording(per: list[list[_LogprobRead]], pos: int, value: Any) -> dict[str, Any]:
    """``y_ref_<i>``: each wording's own reference, when there are several."""
    return {f"y_ref_{i + 1}": value(reads[pos]) for i, reads in enumerate(per)} if len(per) > 1 else {}


def _logprob_pass(backend: LanguageModel, prompts: list[list[dict[str, str]]], labels: Sequence[str], *, k: int,
                  seed: int, progress: bool, label: str = "log-prob references") -> list[_LogprobRead]:
    """The distribution over ``labels`` for every prompt: one log-prob call each (cached; a backend without
    log-probs falls back to ``k`` samples), in prompt order, with a progress bar."""
    reads: list[_LogprobRead | None] = [None] * len(prompts)
    bar = _Progress(progress, len(prompts), label)
    try:
        for pos, dist in backend.iter_choice_probs(prompts, list(labels), fallback_samples=k, seed=seed):
            reads[pos] = _LogprobRead(dist, np.asarray(dist.probs, dtype=float))
            bar.advance()
    finally:
        bar.close()
    return reads  # type: ignore[return-value]


# ------------------------------------------------------------------------------ main entry
def compute_references(
    tasks: pd.DataFrame,
    backend: LanguageModel,
    *,
    kind: str = "rating",
    strategy: str = "logprob",
    k: int = 8,
    scale: tuple[int, int] = (1, 5),
    items: Sequence[str] | None = None,
    top_k: int | None = None,
    choices: Sequence[str] | None = None,
    template: TemplateLike | Sequence[TemplateLike] | None = None,
    limit: int | None = None,
    progress: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """References per task (see the module docstring). ``tasks``: a frame with ``task`` and ``text``.

    ``k``: samples per task for the sampling strategies. ``items`` (top-k only): the lines listing the
    items in the prompt (default: ``"<task>: <text>"`` for each task); ``top_k``: how many a voter picks.
    ``template``: a packaged template name or a user file (see :mod:`crowdllm.llm.prompts`), or a list of
    them: several wordings, averaged (log-prob ratings and choices; see the module docstring)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if kind not in REFERENCE_KINDS:
        raise ConfigError(f"reference kind {kind!r}: use one of {', '.join(REFERENCE_KINDS)}")
    if strategy != "logprob" and k < 1:
        raise ConfigError(f"k must be at least 1 (got {k})")
    templates = list(template) if isinstance(template, (list, tuple)) else [template]
    if not templates:
        raise ConfigError("template: give at least one template (or None for the default)")
    if len(templates) > 1 and (strategy != "logprob" or kind not in ("rating", "choice")):
        raise ConfigError(f"template: several wordings are averaged for log-prob ratings and choices only, "
                          f"not for a {kind} reference with strategy {strategy!r}")
    frame = _task_frame(tasks, limit)
    if kind == "rating":
        out = _rating_refs(frame, backend, strategy, k, scale, templates, progress, seed)
    elif kind == "choice":
        if not choices:
            raise ConfigError("a choice reference needs the allowed choices")
        out = _choice_refs(frame, backend, strategy, k, [str(c) for c in choices], templates, progress, seed)
    elif kind == "topk":
        if top_k is None or top_k < 1:
            raise ConfigError("a top-k reference needs top_k (how many items each voter picks)")
        out = _topk_refs(frame, backend, strategy, k, items, int(top_k), templates[0], progress, seed)
    else:
        out = _text_refs(frame, backend, templates[0], progress, seed)
    out.index.name = "task"
    out.attrs.update({"kind": kind, "strategy": strategy, "k": k, "backend": backend.backend, "model": backend.model})
    usage = getattr(backend, "usage", None)
    if usage is not None and hasattr(usage, "as_dict"):
        out.attrs["usage"] = usage.as_dict()
    return out


def _sample_params(strategy: str) -> float:
    return 0.0 if strategy == "zero-shot" else SC_TEMPERATURE


def _rating_refs(frame: pd.DataFrame, backend: LanguageModel, strategy: str, k: int, scale: tuple[int, int],
                 templates: list[Any], progress: bool, seed: int) -> pd.DataFrame:
    """Rating references; ``templates``: the wordings (several only for ``logprob``)."""
    levels = _levels(scale)
    labels = [str(v) for v in levels]
    if strategy == "logprob":
        reads, per = _wording_pass(backend, frame, "rating", templates, labels, k=k, seed=seed, progress=progress,
                                   scale=scale)

        def expected(read: _LogprobRead) -> float:
            return float(np.dot(read.probs, levels)) if read.ok else float("nan")

        rows = [{"y_ref": expected(read), **read.columns(labels), **_per_wording(per, pos, expected),
                 "strategy": strategy, **read.meta(), **read.hidden()} for pos, read in enumerate(reads)]
        return pd.DataFrame(rows, index=pd.Index(frame["task"].tolist(), name="task"))
    tpl = get_template("rating", templates[0])
    prompts = [build_prompt(t, kind="rating", template=tpl, scale=scale) for t in frame["text"]]
    rows: list[dict[str, Any]] = [{} for _ in prompts]
    prefix = tpl.answer_prefix
    samples = _collect_samples(backend, prompts, strategy, k, seed, SAMPLE_MAX_TOKENS["rating"], progress)
    failures_total = 0
    for pos, comps in enumerate(samples):
        values, failed = [], []
        for c in comps:
            v = parse_rating(prefix + c.text, scale) if c.error is None else None
            if v is None:
                failed.append(c.text if c.error is None else f"<{c.error}>")
            else:
                values.append(v)
        failures_total += len(failed)
        counts = Counter(values)
        mean = float(np.mean(values)) if values else float("nan")
        majority = _majority(values)
        row = {"y_ref": mean if strategy == "zero-shot" else majority, "y_mean": mean, "y_majority": majority}
        row.update({f"p_{lab}": (counts[v] / len(values)) if values else float("nan")
                    for lab, v in zip(labels, levels, strict=True)})
        row.update(_sampled(strategy, comps, failed))
        rows[pos] = row
    _record_parse_failures(backend, failures_total)
    return pd.DataFrame(rows, index=pd.Index(frame["task"].tolist(), name="task"))


def _sampled(strategy: str, comps: Sequence[Any], failed: list[str]) -> dict[str, Any]:
    """The columns closing every reference row read from samples: the strategy, ``method="sampling"``,
    the calls, and the answers no parser could read (count and texts, as JSON)."""
    return {"strategy": strategy, "method": "sampling", "n_calls": len(comps), "parse_failures": len(failed),
            "failed_answers": json.dumps(failed, ensure_ascii=False) if failed else ""}


def _collect_samples(backend: LanguageModel, prompts: list[list[dict[str, str]]], strategy: str, k: int,
                     seed: int, max_tokens: int, progress: bool) -> list[list[Any]]:
    temperature = _sample_params(strategy)
    out: list[list[Any]] = [[None] * k for _ in prompts]
    bar = _Progress(progress, len(prompts) * k, f"{strategy} samples (k={k})")
    try:
        for pos, index, comp in backend.iter_generate(prompts, n=k, temperature=temperature, max_tokens=max_tokens,
                                                      seed=seed):
            out[pos][index] = comp
            bar.advance()
    finally:
        bar.close()
    return out


def _choice_refs(frame: pd.DataFrame, backend: LanguageModel, strategy: str, k: int, choices: list[str],
                 templates: list[Any], progress: bool, seed: int) -> pd.DataFrame:
    """Choice references; ``templates``: the wordings (several only for ``logprob``)."""
    if strategy == "logprob":
        reads, per = _wording_pass(backend, frame, "choice", templates, choices, k=k, seed=seed, progress=progress,
                                   choices=choices)
        rows = [{"y_ref": read.argmax(), **read.columns(choices), **_per_wording(per, pos, _LogprobRead.argmax),
                 "strategy": strategy, **read.meta(), **read.hidden()} for pos, read in enumerate(reads)]
        return pd.DataFrame(rows, index=pd.Index(frame["task"].tolist(), name="task"))
    tpl = get_template("choice", templates[0])
    prompts = [build_prompt(t, kind="choice", template=tpl, choices=choices) for t in frame["text"]]
    rows: list[dict[str, Any]] = [{} for _ in prompts]
    samples = _collect_samples(backend, prompts, strategy, k, seed, SAMPLE_MAX_TOKENS["choice"], progress)
    failures_total = 0
    for pos, comps in enumerate(samples):
        picked, failed = [], []
        for c in comps:
            v = parse_choice(tpl.answer_prefix + c.text, choices) if c.error is None else None
            (failed.append(c.text) if v is None else picked.append(v))
        failures_total += len(failed)
        counts = Counter(picked)
        top = max(counts.values()) if counts else 0
        best = next((c for c in choices if counts[c] == top), None) if counts else None
        row = {"y_ref": best}
        row.update({f"p_{c}": (counts[c] / len(picked)) if picked else float("nan") for c in choices})
        row.update(_sampled(strategy, comps, failed))
        rows[pos] = row
    _record_parse_failures(backend, failures_total)
    return pd.DataFrame(rows, index=pd.Index(frame["task"].tolist(), name="task"))


def item_lines(frame: pd.DataFrame) -> list[str]:
    """Default item list for top-k prompts: ``"<task>: <text>"`` per task."""
    return [f"{t}: {x}" for t, x in zip(frame["task"], frame["text"], strict=True)]


def _topk_refs(frame: pd.DataFrame, backend: LanguageModel, strategy: str, k: int, items: Sequence[str] | None,
               top_k: int, template: Any, progress: bool, seed: int) -> pd.DataFrame:
    lines = list(items) if items is not None else item_lines(frame)
    ids = frame["task"].tolist()
    if top_k > len(ids):
        raise ConfigError(f"top_k={top_k} is more than the {len(ids)} items")
    if strategy == "logprob":
        tpl = get_template("topk_item", template)
        per_item = lines if items is None or len(lines) == len(ids) else item_lines(frame)
        prompts = [build_prompt(line, kind="topk_item", template=tpl, items=lines, k=top_k) for line in per_item]
        reads = _logprob_pass(backend, prompts, ["Yes", "No"], k=k, seed=seed, progress=progress)
        rows = [{"y_ref": float(r.probs[0]), "p_yes": float(r.probs[0]), "p_no": float(r.probs[1]),
                 "strategy": strategy, **r.meta()} for r in reads]
        return pd.DataFrame(rows, index=pd.Index(ids, name="task"))
    tpl = get_template("topk", template)
    prompt = build_prompt(None, kind="topk", template=tpl, items=lines, k=top_k)
    comps = _collect_samples(backend, [prompt], strategy, k, seed, SAMPLE_MAX_TOKENS["topk"], progress)[0]
    counts: Counter[str] = Counter()
    failed = []
    n_ok = 0
    for c in comps:
        picked = parse_topk(tpl.answer_prefix + c.text, ids, top_k) if c.error is None else None
        if picked is None:
            failed.append(c.text)
            continue
        n_ok += 1
        counts.update(picked)
    _record_parse_failures(backend, len(failed))
    rows = [{"y_ref": (counts[t] / n_ok) if n_ok else float("nan"), "votes": int(counts[t]),
             **_sampled(strategy, comps, failed)} for t in ids]
    return pd.DataFrame(rows, index=pd.Index(ids, name="task"))


def _text_refs(frame: pd.DataFrame, backend: LanguageModel, template: Any, progress: bool, seed: int) -> pd.DataFrame:
    tpl = get_template("text", template)
    prompts = [build_prompt(t, kind="text", template=tpl) for t in frame["text"]]
    samples = _collect_samples(backend, prompts, "zero-shot", 1, seed, SAMPLE_MAX_TOKENS["text"], progress)
    rows = [{"y_ref": float("nan"), "text": (c[0].text if c[0].error is None else ""), "strategy": "zero-shot",
             "method": "sampling", "n_calls": 1, "parse_failures": int(c[0].error is not None)} for c in samples]
    return pd.DataFrame(rows, index=pd.Index(frame["task"].tolist(), name="task"))


# ------------------------------------------------------------------------------ personas
def persona_choice_probs(
    backend: LanguageModel,
    tasks: pd.DataFrame,
    profiles: pd.DataFrame,
    *,
    pairs: pd.DataFrame | Iterable[tuple[str, str]] | None = None,
    kind: str = "rating",
    scale: tuple[int, int] = (1, 5),
    choices: Sequence[str] | None = None,
    template: str | os.PathLike[str] | Mapping[str, Any] | PromptTemplate | None = None,
    progress: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Multi-persona prompting: one log-prob call per (task, persona) pair.

    ``profiles``: one row per worker (``worker`` + profile columns, or a ``Description`` column);
    ``pairs``: the (task, worker) pairs to ask (a frame with those columns, e.g. the responses; default:
    every task with every worker). Returns a frame with ``task``, ``worker``, ``y`` (expected rating, or
    the most likely choice) and ``p_<choice>``. Each pair is cached, so reruns cost nothing.

    Equivalent by hand: ``backend.choice_probs([build_prompt(text, kind="rating", persona=profile)], ["1",..])``."""
    frame = _task_frame(tasks, None)
    if "worker" not in profiles.columns:
        raise CrowdDataError("profiles have no 'worker' column", column="worker")
    prof = profiles.drop_duplicates("worker").copy()
    prof["worker"] = prof["worker"].astype(str)
    by_worker = {w: {k: v for k, v in row.items() if k != "worker"} for w, row in
                 zip(prof["worker"], prof.to_dict("records"), strict=True)}
    texts = dict(zip(frame["task"], frame["text"], strict=True))
    if pairs is None:
        todo = [(t, w) for t in frame["task"] for w in prof["worker"]]
    elif isinstance(pairs, pd.DataFrame):
        todo = list(dict.fromkeys(zip(pairs["task"].astype(str), pairs["worker"].astype(str), strict=True)))
    else:
        todo = list(dict.fromkeys((str(t), str(w)) for t, w in pairs))
    for t, w in todo:
        if t not in texts:
            raise CrowdDataError(f"pair ({t}, {w}): task {t!r} is not among the tasks", column="task")
        if w not in by_worker:
            raise CrowdDataError(f"pair ({t}, {w}): worker {w!r} has no profile", column="worker")
    if kind == "rating":
        labels = [str(v) for v in _levels(scale)]
    elif kind == "choice" and choices:
        labels = [str(c) for c in choices]
    else:
        raise ConfigError("persona_choice_probs supports kind='rating' (with scale) or kind='choice' (with choices)")
    tpl = get_template(kind, template)
    prompts = [build_prompt(texts[t], kind=kind, template=tpl, persona=by_worker[w], scale=scale, choices=labels)
               for t, w in todo]
    rows = []
    reads = _logprob_pass(backend, prompts, labels, k=8, seed=seed, progress=progress, label="persona log-probs")
    for (t, w), read in zip(todo, reads, strict=True):
        y: Any = (float(np.dot(read.probs, [float(x) for x in labels])) if read.ok else float("nan")) \
            if kind == "rating" else read.argmax()
        meta = read.meta()
        rows.append({"task": t, "worker": w, "y": y, **read.columns(labels), "method": meta["method"],
                     "parse_failures": meta["parse_failures"]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ files
def save_references(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write references to CSV or Parquet (by suffix), atomically. Returns the path."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"{target}: references are written to a .csv or .parquet file")
    frame = df.copy()
    frame.index.name = "task"
    frame = frame.reset_index()
    with atomic_path(target) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return target


def load_references(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read references written by :func:`save_references` (index ``task``, ids as strings)."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"references file {source} does not exist")
    suffix = source.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(source, dtype={"task": str}, keep_default_na=True)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(source)
        else:
            raise ConfigError(f"{source}: references are .csv or .parquet files")
    except (ValueError, OSError) as err:
        raise CrowdDataError(f"cannot read references: {' '.join(str(err).split())[:200]}", file=str(source)) from None
    if "task" not in frame.columns or "y_ref" not in frame.columns:
        raise CrowdDataError("references need the columns 'task' and 'y_ref'", file=str(source))
    frame["task"] = frame["task"].astype(str)
    if "failed_answers" in frame.columns:
        frame["failed_answers"] = frame["failed_answers"].fillna("")
    return frame.set_index("task")
