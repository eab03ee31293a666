"""Usage accounting: a wrapper around any backend that counts what a run cost.

``MeteredLLM(inner)`` passes every call through and records, in ``.usage`` (:class:`Usage`):

- ``calls``: answers the backend actually produced (one per prompt per sample, or one per log-prob
  distribution; a distribution that fell back to sampling counts its samples, plus the log-prob request
  that came back without log-probs),
- ``cache_hits``: answers served from the disk cache (no backend work),
- prompt / completion tokens of the real calls (cached answers are free), wall time,
- ``fallbacks``: distributions obtained by sampling + parsing because no log-probs were available,
- ``parse_failures``: answers no parser could read (reported by the parsers' callers),
- ``faults``: backend faults by kind (``rate_limit``, ``server_error``, ``timeout``, ``connection``...),
  reported by the backend through :meth:`LanguageModel.add_listener`, and ``retries``,
- ``cost``: from prices per million prompt / completion tokens, when given.

Put it outside the cache (``MeteredLLM(CachedLLM(backend))``, as :func:`crowdllm.llm.open_backend`
does) so it sees cache hits too. ``usage.render()`` is the summary printed at the end of every run;
``usage.save(path)`` writes it as JSON next to the results.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from crowdllm._io import atomic_write_json
from crowdllm.llm.base import ChoiceDistribution, Completion, GenerationParams, LanguageModel, WrappedLLM


@dataclass
class Usage:
    """Counters of one run (thread-safe updates)."""

    backend: str = ""
    model: str = ""
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_time_s: float = 0.0
    parse_failures: int = 0
    fallbacks: int = 0
    retries: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    price_in: float | None = None   # per million prompt tokens
    price_out: float | None = None  # per million completion tokens
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # ---------------------------------------------------------------- recording
    def add_completion(self, comp: Completion) -> None:
        with self._lock:
            if comp.cached:
                self.cache_hits += 1
                return
            self.calls += 1
            self.prompt_tokens += int(comp.prompt_tokens)
            self.completion_tokens += int(comp.completion_tokens)

    def add_distribution(self, dist: ChoiceDistribution) -> None:
        with self._lock:
            # fallbacks and parse failures describe the answers, so cached ones count too
            if dist.method == "sampling":
                self.fallbacks += 1
            self.parse_failures += int(dist.parse_failures)
            if dist.cached:
                self.cache_hits += 1
                return
            self.calls += int(dist.extra.get("calls", 1))
            self.prompt_tokens += int(dist.prompt_tokens)
            self.completion_tokens += int(dist.completion_tokens)

    def add_parse_failures(self, n: int = 1) -> None:
        with self._lock:
            self.parse_failures += int(n)

    def add_event(self, event: str, info: dict[str, Any]) -> None:
        with self._lock:
            if event == "fault":
                kind = str(info.get("kind", "other"))
                self.faults[kind] = self.faults.get(kind, 0) + 1
            elif event == "retry":
                self.retries += 1

    def add_time(self, seconds: float) -> None:
        with self._lock:
            self.wall_time_s += float(seconds)

    # ---------------------------------------------------------------- reporting
    @property
    def cost(self) -> float | None:
        if self.price_in is None and self.price_out is None:
            return None
        return (self.prompt_tokens * (self.price_in or 0.0) + self.completion_tokens * (self.price_out or 0.0)) / 1e6

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": self.backend, "model": self.model, "calls": self.calls, "cache_hits": self.cache_hits,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "wall_time_s": round(self.wall_time_s, 3), "parse_failures": self.parse_failures,
                "fallbacks_to_sampling": self.fallbacks, "retries": self.retries,
                "faults": dict(sorted(self.faults.items())), "price_in_per_mtok": self.price_in,
                "price_out_per_mtok": self.price_out, "cost": self.cost,
            }

    def render(self) -> str:
        """A few human-readable lines for the end of a run."""
        d = self.as_dict()
        lines = [
            f"LLM usage ({d['backend']}, {d['model']}): {d['calls']} calls, {d['cache_hits']} cache hits, "
            f"{d['wall_time_s']:.1f} s",
            f"  tokens: {d['prompt_tokens']:,} prompt + {d['completion_tokens']:,} completion",
        ]
        if d["parse_failures"] or d["fallbacks_to_sampling"]:
            lines.append(f"  parse failures: {d['parse_failures']}, fallbacks to sampling (no log-probs): "
                         f"{d['fallbacks_to_sampling']}")
        if d["faults"] or d["retries"]:
            faults = ", ".join(f"{k} {v}" for k, v in d["faults"].items()) or "none"
            lines.append(f"  faults: {faults}; retries: {d['retries']}")
        if d["cost"] is not None:
            lines.append(f"  cost: {d['cost']:.4f} (at {d['price_in_per_mtok'] or 0} in / "
                         f"{d['price_out_per_mtok'] or 0} out per million tokens)")
        return "\n".join(lines)

    def save(self, path: str) -> None:
        atomic_write_json(path, self.as_dict())


class MeteredLLM(WrappedLLM):
    """Counts calls, cache hits, tokens, time, fallbacks and faults of ``inner`` into ``self.usage``."""

    def __init__(self, inner: LanguageModel, usage: Usage | None = None) -> None:
        super().__init__(inner)
        self.usage = usage or Usage()
        self.usage.backend = self.usage.backend or inner.backend
        self.usage.model = self.usage.model or inner.model
        inner.add_listener(self.usage.add_event)

    def _iter_generate(
        self, prompts: list[list[dict[str, str]]], params: GenerationParams
    ) -> Iterator[tuple[int, int, Completion]]:
        start = time.perf_counter()
        try:
            for pos, index, comp in self.inner._iter_generate(prompts, params):
                self.usage.add_completion(comp)
                yield pos, index, comp
        finally:
            self.usage.add_time(time.perf_counter() - start)

    def _iter_choice_probs(
        self, prompts: list[list[dict[str, str]]], choices: tuple[str, ...], *,
        fallback_samples: int = 8, seed: int | None = None,
    ) -> Iterator[tuple[int, ChoiceDistribution]]:
        start = time.perf_counter()
        try:
            for pos, dist in self.inner._iter_choice_probs(prompts, choices, fallback_samples=fallback_samples,
                                                           seed=seed):
                self.usage.add_distribution(dist)
                yield pos, dist
        finally:
            self.usage.add_time(time.perf_counter() - start)

    def _iter_choice_probs_by_sampling(
        self, prompts: list[list[dict[str, str]]], choices: tuple[str, ...], n: int, seed: int | None
    ) -> Iterator[tuple[int, ChoiceDistribution]]:
        # samples are counted one by one through self._iter_generate; count only the fallback here
        for pos, dist in super()._iter_choice_probs_by_sampling(prompts, choices, n, seed):
            with self.usage._lock:
                self.usage.fallbacks += 1
                self.usage.parse_failures += dist.parse_failures
            yield pos, dist

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()
