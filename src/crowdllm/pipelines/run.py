"""One pipeline run: the single gate every LLM call of a pipeline goes through.

A :class:`Run` holds the LanguageModel, the :class:`~crowdllm.pipelines.trace.Trace`, the
:class:`~crowdllm.pipelines.budget.Budget`, the seed and the persona pool. ``ask`` / ``ask_each`` send
microtasks to workers (checking the budget first, then tracing prompt, answer, tokens and wall time);
``choose`` reads a probability for each allowed answer (used by evaluation raters). ``keep`` records
the best result so far, which the runner returns when the budget runs out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from crowdllm._io import rng as make_rng
from crowdllm.llm.base import ChoiceDistribution, LanguageModel
from crowdllm.pipelines.budget import Budget
from crowdllm.pipelines.trace import Trace
from crowdllm.pipelines.worker import Worker, is_missing, make_workers

_COUNTERS = ("calls", "prompt_tokens", "completion_tokens", "seconds", "cached", "errors")


class Run:
    """The context of one run (pipeline, variant or baseline) on one input."""

    def __init__(
        self,
        llm: LanguageModel,
        *,
        trace: Trace | None = None,
        budget: Budget | None = None,
        seed: int = 0,
        personas: Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int = 160,
    ) -> None:
        self.llm = llm
        self.trace = trace if trace is not None else Trace()
        self.budget = budget if budget is not None else Budget()
        self.seed = int(seed)
        self.personas = list(personas) if personas else []
        self.max_tokens = int(max_tokens)
        self.rng = make_rng(self.seed)
        self.best: Any = None
        self.has_best = False
        self.notes: list[str] = []
        self.details: dict[str, Any] = {}
        self.counts: dict[str, float] = dict.fromkeys(_COUNTERS, 0)
        self._persona_cursor = 0

    # ------------------------------------------------------------------ workers
    def workers(self, n: int, role: str, *, temperature: float = 0.7, prefix: str = "w") -> list[Worker]:
        """``n`` workers for a role; successive crowds take the next personas from the pool."""
        crowd = make_workers(n, role, personas=self.personas or None, temperature=temperature,
                             prefix=prefix, offset=self._persona_cursor)
        if self.personas:
            self._persona_cursor = (self._persona_cursor + n) % len(self.personas)
        return crowd

    # ------------------------------------------------------------------ steps and records
    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A named step; on exit its calls, tokens and seconds go into a ``step_end`` record."""
        before = dict(self.counts)
        with self.trace.step(name):
            try:
                yield
            finally:
                delta = {k: self.counts[k] - before[k] for k in _COUNTERS}
                delta["seconds"] = round(delta["seconds"], 3)
                self.trace.write("step_end", name=name, **delta)

    def record(self, kind: str, **fields: Any) -> None:
        self.trace.write(kind, **fields)

    def note(self, message: str, **fields: Any) -> None:
        """Something a reader of the trace must see: a tie, garbage, a limit, the budget."""
        self.notes.append(message)
        self.trace.write("note", message=message, **fields)

    def keep(self, output: Any, why: str = "") -> None:
        """Remember ``output`` as the best result so far."""
        self.best, self.has_best = output, True
        self.trace.write("keep", why=why, output=output)

    @property
    def usage(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: int(v) for k, v in self.counts.items() if k != "seconds"}
        out["seconds"] = round(float(self.counts["seconds"]), 3)
        out["tokens"] = out["prompt_tokens"] + out["completion_tokens"]
        return out

    # ------------------------------------------------------------------ LLM calls
    def _next_seed(self) -> int:
        return (self.seed * 1_000_003 + int(self.counts["calls"])) % (2**31 - 1)

    def ask(self, worker: Worker, content: str, *, task: str, max_tokens: int | None = None,
            stop: Sequence[str] = ()) -> str:
        """One worker's answer to one microtask (raw text; an errored call answers "")."""
        return self.ask_each([worker], [content], task=task, max_tokens=max_tokens, stop=stop)[0]

    def ask_each(self, workers: Sequence[Worker], contents: str | Sequence[str], *, task: str,
                 max_tokens: int | None = None, stop: Sequence[str] = ()) -> list[str]:
        """Each worker's answer to its microtask (one content for all, or one per worker).

        Sent as few backend requests as possible: identical prompts become ``n`` samples of one
        prompt, distinct prompts with the same settings one batch."""
        if isinstance(contents, str):
            contents = [contents] * len(workers)
        if len(contents) != len(workers):
            raise ValueError("ask_each needs one content per worker")
        if not workers:
            return []
        self.budget.reserve(len(workers))
        max_tokens = int(max_tokens or self.max_tokens)
        prompts = [w.messages(c) for w, c in zip(workers, contents, strict=True)]
        # unique prompt -> worker indices; then bucket unique prompts by (temperature, multiplicity)
        unique: dict[tuple[str, float], list[int]] = {}
        for i, (w, p) in enumerate(zip(workers, prompts, strict=True)):
            unique.setdefault((json.dumps(p, sort_keys=True), w.temperature), []).append(i)
        buckets: dict[tuple[float, int], list[list[int]]] = {}
        for (_, temp), idx in unique.items():
            buckets.setdefault((temp, len(idx)), []).append(idx)
        answers: list[str] = [""] * len(workers)
        for (temp, n), groups in buckets.items():
            seed = self._next_seed()
            t0 = time.perf_counter()
            outs = self.llm.generate([prompts[g[0]] for g in groups], n=n, temperature=temp,
                                     max_tokens=max_tokens, seed=seed, stop=tuple(stop))
            seconds = (time.perf_counter() - t0) / max(1, len(groups) * n)
            for g, comps in zip(groups, outs, strict=True):
                for i, comp in zip(g, comps, strict=False):
                    answers[i] = comp.text if not comp.error else ""
                    self._count(comp.prompt_tokens, comp.completion_tokens, seconds, comp.cached,
                                comp.error)
                    self.trace.write(
                        "call", task=task, worker=workers[i].name, persona=_plain(workers[i].persona),
                        messages=prompts[i], answer=comp.text, prompt_tokens=comp.prompt_tokens,
                        completion_tokens=comp.completion_tokens, seconds=round(seconds, 4),
                        cached=comp.cached, error=comp.error, seed=seed, temperature=temp)
        return answers

    def choose(self, workers: Sequence[Worker], contents: str | Sequence[str], choices: Sequence[str],
               *, task: str) -> list[ChoiceDistribution]:
        """Each worker's probability of each allowed answer (log-probs where the backend has them)."""
        if isinstance(contents, str):
            contents = [contents] * len(workers)
        if not workers:
            return []
        self.budget.reserve(len(workers))
        prompts = [w.messages(c) for w, c in zip(workers, contents, strict=True)]
        t0 = time.perf_counter()
        dists = self.llm.choice_probs(prompts, tuple(choices), seed=self._next_seed())
        seconds = (time.perf_counter() - t0) / len(prompts)
        for w, p, d in zip(workers, prompts, dists, strict=True):
            self._count(d.prompt_tokens, d.completion_tokens, seconds, d.cached, None)
            self.trace.write(
                "call", task=task, worker=w.name, persona=_plain(w.persona), messages=p,
                choices=list(d.choices), probs=[round(float(x), 4) for x in d.probs], method=d.method,
                prompt_tokens=d.prompt_tokens, completion_tokens=d.completion_tokens,
                seconds=round(seconds, 4), cached=d.cached, error=None)
        return dists

    def _count(self, prompt_tokens: int, completion_tokens: int, seconds: float, cached: bool,
               error: str | None) -> None:
        self.counts["calls"] += 1
        self.counts["prompt_tokens"] += int(prompt_tokens or 0)
        self.counts["completion_tokens"] += int(completion_tokens or 0)
        self.counts["seconds"] += seconds
        self.counts["cached"] += int(bool(cached))
        self.counts["errors"] += int(bool(error))
        self.budget.spend_tokens(int(prompt_tokens or 0) + int(completion_tokens or 0))


def _plain(persona: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not persona:
        return None
    return {str(k): (v if isinstance(v, str | int | float | bool) else str(v))
            for k, v in persona.items() if not is_missing(v)}
