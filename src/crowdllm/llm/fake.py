"""A deterministic, scriptable backend for tests (and for trying the library with no model at all).

``FakeLLM(script)`` answers every prompt with ``script(messages, sample_index, params)``; ``script`` may
also be a list of answers (consumed in order, cycling), a dict mapping a substring of the last user
message to an answer, or a string (always the same answer). With no script, the answer is a digit
1-5 derived from a hash of the prompt, so results are stable across runs and processes.

``choice_script`` (optional) returns the probability vector for :meth:`choice_probs`; without it the
fake derives a peaked distribution from the same hash, so it "supports log-probs".
Every call is recorded in ``calls`` (one entry per prompt per sample) for assertions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from crowdllm.llm.base import ChoiceDistribution, Completion, GenerationParams, LanguageModel

Script = Callable[[list[dict[str, str]], int, GenerationParams], str] | Sequence[str] | Mapping[str, str] | str


def prompt_hash(messages: list[dict[str, str]]) -> int:
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _n_tokens(text: str) -> int:
    return max(1, len(text.split()))


class FakeLLM(LanguageModel):
    backend = "fake"

    def __init__(
        self,
        script: Script | None = None,
        *,
        choice_script: Callable[[list[dict[str, str]], tuple[str, ...]], Sequence[float]] | None = None,
        model: str = "fake-1",
        logprobs: bool = True,
    ) -> None:
        self.script = script
        self.choice_script = choice_script
        self.model = model
        self.supports_logprobs = logprobs
        self.calls: list[dict[str, Any]] = []
        self._cursor = 0

    # ------------------------------------------------------------------ answers
    def _answer(self, messages: list[dict[str, str]], index: int, params: GenerationParams) -> str:
        s = self.script
        if s is None:
            h = prompt_hash(messages)
            if params.temperature > 0:
                h ^= (index + 1) * 0x9E3779B97F4A7C15 ^ (params.seed or 0)
            return f"Rating: {1 + h % 5}"
        if isinstance(s, str):
            return s
        if callable(s):
            return s(messages, index, params)
        if isinstance(s, Mapping):
            last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            for key, answer in s.items():
                if key in last_user:
                    return answer
            return s.get("*", "")
        answer = s[self._cursor % len(s)]
        self._cursor += 1
        return answer

    def _generate(self, prompts: list[list[dict[str, str]]], params: GenerationParams) -> list[list[Completion]]:
        out = []
        for messages in prompts:
            samples = []
            for i in range(params.first_sample, params.first_sample + params.n):
                text = self._answer(messages, i, params)
                for stop in params.stop:
                    if stop and stop in text:
                        text = text[: text.index(stop)]
                self.calls.append({"kind": "generate", "messages": messages, "sample": i,
                                   "params": params.to_dict()})
                samples.append(Completion(
                    text=text, prompt_tokens=sum(_n_tokens(m["content"]) for m in messages),
                    completion_tokens=_n_tokens(text), finish_reason="stop",
                ))
            out.append(samples)
        return out

    def _choice_probs(self, prompts: list[list[dict[str, str]]], choices: tuple[str, ...]) -> list[ChoiceDistribution]:
        out = []
        for messages in prompts:
            self.calls.append({"kind": "choice_probs", "messages": messages, "choices": list(choices)})
            if self.choice_script is not None:
                p = np.asarray(self.choice_script(messages, choices), dtype=float)
            else:
                h = prompt_hash(messages)
                center = h % len(choices)
                p = np.exp(-0.8 * np.abs(np.arange(len(choices)) - center))
            p = p / p.sum()
            out.append(ChoiceDistribution(
                choices=choices, probs=tuple(float(x) for x in p), method="logprobs", mass=1.0,
                prompt_tokens=sum(_n_tokens(m["content"]) for m in messages), completion_tokens=1,
            ))
        return out
