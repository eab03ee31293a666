"""The one language-model interface every LLM call in crowdllm goes through.

Small on purpose (in the spirit of Concordia's ``LanguageModel``): a backend can

1. ``generate`` text for a batch of prompts (``n`` samples each, temperature, max tokens, seed, stop),
2. ``choice_probs``: the probability of each allowed answer in a fixed choice set (e.g. "1".."5"),
   read from token log-probabilities where the backend has them.

A prompt is a list of chat messages (``{"role": "system"|"user"|"assistant", "content": str}``); text from
data always travels as message *content*, never spliced into a format string, so it cannot break out
of its template. A trailing ``assistant`` message is an answer *prefix* the model continues
(e.g. ``"Rating: "``).

Caching, retries, rate limits and usage accounting are wrappers around a backend (see ``cache.py``,
``usage.py``), not code inside each backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = Mapping[str, str]
Prompt = Sequence[Message]


def as_prompt(prompt: str | Prompt) -> list[dict[str, str]]:
    """Normalise a bare string (one user message) or a message list to a list of plain dicts."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    out = []
    for m in prompt:
        role, content = m.get("role"), m.get("content")
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise ValueError(f"bad chat message {dict(m)!r}: need role system/user/assistant and str content")
        out.append({"role": role, "content": content})
    return out


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for :meth:`LanguageModel.generate` (part of every cache key)."""

    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 64
    seed: int | None = None
    stop: tuple[str, ...] = ()
    #: samples are numbered ``first_sample .. first_sample + n - 1``; a backend makes sample ``i`` the
    #: same whether it is asked for alone or in a batch (the cache asks for just the missing ones)
    first_sample: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "seed": self.seed, "stop": list(self.stop), "first_sample": self.first_sample}

    def sample_seed(self, index: int) -> int | None:
        """The seed of sample ``index`` (``seed + index``), or None when no seed was given."""
        return None if self.seed is None else int(self.seed) + int(index)


@dataclass
class Completion:
    """One generated sample."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    cached: bool = False
    error: str | None = None  # set (with text="") when the backend returned garbage/nothing; never hidden

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "finish_reason": self.finish_reason,
                "error": self.error}


@dataclass
class ChoiceDistribution:
    """Probability of each allowed answer, renormalised over the choice set.

    ``method`` says how it was obtained: ``"logprobs"`` (one call, read from token log-probabilities)
    or ``"sampling"`` (fallback: ``n_samples`` generations parsed and counted).
    ``mass`` is the raw probability the model put on the choice set before renormalising
    (1.0 for sampling), a useful check that the prompt made the model answer in format."""

    choices: tuple[str, ...]
    probs: tuple[float, ...]
    method: str = "logprobs"
    mass: float = 1.0
    n_samples: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    parse_failures: int = 0
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.choices, self.probs, strict=True))

    def expected_value(self) -> float:
        """Mean of the choices read as numbers (ratings)."""
        return float(sum(float(c) * p for c, p in zip(self.choices, self.probs, strict=True)))

    def argmax(self) -> str:
        best = max(range(len(self.probs)), key=lambda i: self.probs[i])
        return self.choices[best]


class LanguageModel(ABC):
    """Abstract backend. Subclasses implement :meth:`_generate` and optionally :meth:`_choice_probs`.

    Backends that answer concurrently (HTTP) may instead implement the streaming hooks
    :meth:`_iter_generate` / :meth:`_iter_choice_probs`, which yield each answer as soon as it arrives;
    the disk cache stores every answer the moment it is yielded, so a killed run loses nothing answered.
    """

    #: short backend id used in cache keys and reports, e.g. "llama-cpp", "openai", "fake"
    backend: str = "abstract"
    #: model identifier (file name + hash, served model name, ...)
    model: str = "unknown"
    #: whether :meth:`choice_probs` reads real log-probabilities (else it falls back to sampling)
    supports_logprobs: bool = False

    # ---------------------------------------------------------------- public API
    def generate(
        self,
        prompts: Sequence[str | Prompt],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 64,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> list[list[Completion]]:
        """``n`` completions for each prompt, in order."""
        params = GenerationParams(n=n, temperature=temperature, max_tokens=max_tokens, seed=seed,
                                  stop=tuple(stop))
        return self._generate([as_prompt(p) for p in prompts], params)

    def iter_generate(
        self,
        prompts: Sequence[str | Prompt],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 64,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> Iterator[tuple[int, int, Completion]]:
        """Like :meth:`generate`, but yields ``(prompt position, sample index, completion)`` as each
        answer arrives (in any order). Use it to show progress on long runs."""
        params = GenerationParams(n=n, temperature=temperature, max_tokens=max_tokens, seed=seed,
                                  stop=tuple(stop))
        return self._iter_generate([as_prompt(p) for p in prompts], params)

    def choice_probs(
        self,
        prompts: Sequence[str | Prompt],
        choices: Sequence[str],
        *,
        fallback_samples: int = 8,
        seed: int | None = None,
    ) -> list[ChoiceDistribution]:
        """Distribution over ``choices`` for each prompt (log-probs, else sampling + parsing fallback)."""
        out: list[ChoiceDistribution | None] = [None] * len(prompts)
        for pos, dist in self.iter_choice_probs(prompts, choices, fallback_samples=fallback_samples, seed=seed):
            out[pos] = dist
        assert all(d is not None for d in out)
        return out  # type: ignore[return-value]

    def iter_choice_probs(
        self,
        prompts: Sequence[str | Prompt],
        choices: Sequence[str],
        *,
        fallback_samples: int = 8,
        seed: int | None = None,
    ) -> Iterator[tuple[int, ChoiceDistribution]]:
        """Like :meth:`choice_probs`, but yields ``(prompt position, distribution)`` as each arrives."""
        norm = [as_prompt(p) for p in prompts]
        if not choices:
            raise ValueError("choice_probs needs at least one choice")
        if self.supports_logprobs:
            return self._iter_choice_probs(norm, tuple(choices), fallback_samples=fallback_samples, seed=seed)
        return self._iter_choice_probs_by_sampling(norm, tuple(choices), fallback_samples, seed)

    # ---------------------------------------------------------------- to implement
    @abstractmethod
    def _generate(self, prompts: list[list[dict[str, str]]], params: GenerationParams) -> list[list[Completion]]:
        ...

    def _iter_generate(
        self, prompts: list[list[dict[str, str]]], params: GenerationParams
    ) -> Iterator[tuple[int, int, Completion]]:
        """Default: one batch call, then yield its answers. Sample indices start at ``params.first_sample``."""
        for pos, comps in enumerate(self._generate(prompts, params)):
            for j, comp in enumerate(comps):
                yield pos, params.first_sample + j, comp

    def _choice_probs(self, prompts: list[list[dict[str, str]]], choices: tuple[str, ...]) -> list[ChoiceDistribution]:
        raise NotImplementedError(f"{type(self).__name__} has no log-probabilities")

    def _iter_choice_probs(
        self,
        prompts: list[list[dict[str, str]]],
        choices: tuple[str, ...],
        *,
        fallback_samples: int = 8,
        seed: int | None = None,
    ) -> Iterator[tuple[int, ChoiceDistribution]]:
        """Default: one batch :meth:`_choice_probs` call, then yield its distributions."""
        yield from enumerate(self._choice_probs(prompts, choices))

    # ---------------------------------------------------------------- sampling fallback
    def _iter_choice_probs_by_sampling(
        self, prompts: list[list[dict[str, str]]], choices: tuple[str, ...], n: int, seed: int | None
    ) -> Iterator[tuple[int, ChoiceDistribution]]:
        """``n`` samples at temperature 1 per prompt, parsed and counted (yielded once a prompt is complete)."""
        params = GenerationParams(n=n, temperature=1.0, max_tokens=16, seed=seed)
        pending: dict[int, list[Completion]] = {}
        for pos, _index, comp in self._iter_generate(prompts, params):
            got = pending.setdefault(pos, [])
            got.append(comp)
            if len(got) == n:
                yield pos, distribution_from_samples(pending.pop(pos), choices)

    # ---------------------------------------------------------------- events (faults, retries)
    def add_listener(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``callback(event, info)`` on backend events such as ``"fault"`` (``info["kind"]``)."""
        listeners = self.__dict__.setdefault("_listeners", [])
        listeners.append(callback)

    def _notify(self, event: str, **info: Any) -> None:
        for callback in self.__dict__.get("_listeners", ()):
            callback(event, info)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "logprobs": self.supports_logprobs}

    def cache_identity(self) -> dict[str, Any]:
        """What identifies this backend's answers in the disk cache (backend, model, and any setting that
        changes answers for the same prompt, such as the HTTP endpoint type)."""
        return {"backend": self.backend, "model": self.model}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, sockets, model memory)."""

    def __enter__(self) -> LanguageModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WrappedLLM(LanguageModel):
    """Base of the wrappers around a backend (:class:`~crowdllm.llm.cache.CachedLLM`,
    :class:`~crowdllm.llm.usage.MeteredLLM`): ``inner`` does the work. A wrapper takes its backend id,
    model and log-prob support, passes listeners and :meth:`close` on to it, reaches through to its
    other attributes (e.g. ``cache``), and answers :meth:`_generate` by collecting its own
    :meth:`_iter_generate`, which every wrapper implements."""

    def __init__(self, inner: LanguageModel) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.model = inner.model
        self.supports_logprobs = inner.supports_logprobs

    def _generate(self, prompts: list[list[dict[str, str]]], params: GenerationParams) -> list[list[Completion]]:
        out: list[list[Completion | None]] = [[None] * params.n for _ in prompts]
        for pos, index, comp in self._iter_generate(prompts, params):
            out[pos][index - params.first_sample] = comp
        return out  # type: ignore[return-value]

    def add_listener(self, callback: Any) -> None:
        self.inner.add_listener(callback)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # reach through to the wrapped backend's extras; only called for missing names
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def distribution_from_samples(
    comps: Sequence[Completion], choices: tuple[str, ...], **extra: Any
) -> ChoiceDistribution:
    """Count parsed samples into a distribution (``method="sampling"``); unparseable ones are counted
    as ``parse_failures``. With no parseable sample the probabilities are NaN, never a silent default."""
    from crowdllm.llm.parsing import parse_choice

    counts = dict.fromkeys(choices, 0)
    failures = 0
    for c in comps:
        answer = parse_choice(c.text, choices)
        if answer is None:
            failures += 1
        else:
            counts[answer] += 1
    total = sum(counts.values())
    probs = tuple((counts[c] / total) if total else float("nan") for c in choices)
    return ChoiceDistribution(
        choices=choices, probs=probs, method="sampling", mass=1.0, n_samples=len(comps),
        prompt_tokens=sum(c.prompt_tokens for c in comps),
        completion_tokens=sum(c.completion_tokens for c in comps),
        parse_failures=failures, cached=all(c.cached for c in comps) and bool(comps),
        extra=dict(extra),
    )
