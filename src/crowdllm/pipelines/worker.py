"""A virtual crowd worker: a role prompt, an optional persona, and sampling settings.

The worker does not hold the backend: every call goes through a :class:`~crowdllm.pipelines.run.Run`,
which owns the LanguageModel, the trace and the budget. A persona is a profile dict
(``{"gender": "Woman", "age": "25-29", "occupation": "Student", ...}``, as in the crowd data's workers
table); it is rendered into one sentence (:func:`crowdllm.llm.prompts.persona_sentence`, the same
sentence the digital crowd uses) appended to the role prompt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crowdllm.llm.prompts import persona_sentence


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


@dataclass(frozen=True)
class Worker:
    """One virtual worker."""

    name: str
    role: str
    persona: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)
    temperature: float = 0.7

    def system_prompt(self) -> str:
        sentence = persona_sentence(self.persona)
        return f"{self.role} {sentence}".strip()

    def messages(self, content: str) -> list[dict[str, str]]:
        """The chat prompt for one microtask: system = role (+ persona), user = the task text."""
        return [{"role": "system", "content": self.system_prompt()}, {"role": "user", "content": content}]


def make_workers(n: int, role: str, *, personas: Sequence[Mapping[str, Any]] | None = None,
                 temperature: float = 0.7, prefix: str = "w", offset: int = 0) -> list[Worker]:
    """``n`` workers sharing a role; personas are handed out in order (cycling), starting at ``offset``."""
    out = []
    for i in range(n):
        persona = personas[(offset + i) % len(personas)] if personas else None
        out.append(Worker(name=f"{prefix}{i + 1}", role=role, persona=persona, temperature=temperature))
    return out
