"""A call/token budget for one pipeline run.

The run asks the budget before every LLM call; when a call would go over a limit the budget raises
:class:`BudgetExceeded`. The pipeline runner catches it and returns the best result kept so far,
with a note in the trace (see :func:`crowdllm.pipelines.runner.run_pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass

from crowdllm.errors import ConfigError, CrowdLLMError


class BudgetExceeded(CrowdLLMError):
    """A pipeline asked for more LLM calls or tokens than its budget allows."""

    def __init__(self, what: str, used: int, limit: int, wanted: int = 0) -> None:
        self.what, self.used, self.limit, self.wanted = what, used, limit, wanted
        more = f" (+{wanted} requested)" if wanted else ""
        super().__init__(f"budget exhausted: {used} of {limit} {what} used{more}")


@dataclass
class Budget:
    """At most ``max_calls`` LLM calls and ``max_tokens`` tokens (prompt + completion); None = no limit."""

    max_calls: int | None = None
    max_tokens: int | None = None
    calls: int = 0
    tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ConfigError(f"budget setting {name}={v!r} must be a whole number >= 0")

    def reserve(self, n_calls: int) -> None:
        """Book ``n_calls`` calls, or raise :class:`BudgetExceeded` (booking nothing)."""
        if self.max_calls is not None and self.calls + n_calls > self.max_calls:
            raise BudgetExceeded("LLM calls", self.calls, self.max_calls, n_calls)
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            raise BudgetExceeded("tokens", self.tokens, self.max_tokens)
        self.calls += n_calls

    def spend_tokens(self, n: int) -> None:
        self.tokens += int(n)

    def as_dict(self) -> dict[str, int | None]:
        return {"max_calls": self.max_calls, "max_tokens": self.max_tokens, "calls": self.calls,
                "tokens": self.tokens}
