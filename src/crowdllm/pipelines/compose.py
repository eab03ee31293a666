"""Composition: run stages in sequence, map a stage over parts, loop until a criterion.

Each stage runs inside a named trace step. A loop ends after ``rounds`` rounds, when ``until(state)``
is true, or when the budget runs out (the :class:`~crowdllm.pipelines.budget.BudgetExceeded` goes
up to the runner, which returns the best result kept so far).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from crowdllm.pipelines.run import Run

S = TypeVar("S")
P = TypeVar("P")
R = TypeVar("R")


def sequence(run: Run, state: S, stages: Sequence[tuple[str, Callable[[S], S]]]) -> S:
    """Feed ``state`` through the named stages in order."""
    for name, stage in stages:
        with run.step(name):
            state = stage(state)
    return state


def map_parts(run: Run, parts: Sequence[P], fn: Callable[[int, P], R], *, name: str) -> list[R]:
    """``fn(i, part)`` for every part, each in its own step ``"<name> <i+1>"``."""
    out = []
    for i, part in enumerate(parts):
        with run.step(f"{name} {i + 1}"):
            out.append(fn(i, part))
    return out


def loop(run: Run, state: S, body: Callable[[S, int], S], *, rounds: int,
         until: Callable[[S], bool] | None = None, name: str = "round") -> S:
    """Apply ``body(state, round)`` up to ``rounds`` times, stopping early when ``until(state)``."""
    for r in range(rounds):
        with run.step(f"{name} {r + 1}"):
            state = body(state, r)
        if until is not None and until(state):
            run.record("decision", what="stop", value=f"criterion met after {r + 1} {name}(s)")
            break
    return state


def first_nonempty(*values: Any) -> Any:
    """The first value that is not empty (used for fallbacks)."""
    for v in values:
        if v:
            return v
    return values[-1] if values else None
