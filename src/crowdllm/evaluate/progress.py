"""The one progress bar of the evaluation code (the runner and the analyses): rich, on stderr, or
nothing when disabled or when stderr is not a terminal (a bar written into a log, or left above a
failed command's one ``error:`` line, is noise)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any


class ProgressBar:
    """``with ProgressBar(enabled, total) as bar``: ``bar.start(description)`` before a step,
    ``bar.done()`` after. ``transient``: the bar disappears when finished."""

    def __init__(self, enabled: bool, total: int, description: str = "evaluating", *, transient: bool = True,
                 width: int | None = 32) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total, self.description = total, description
        self.transient, self.width = transient, width
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            text = "{task.description:<" + str(self.width) + "}" if self.width else "{task.description}"
            self._bar = Progress(TextColumn(text), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=self.transient)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def start(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=description)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextlib.contextmanager
def steps(total: int, label: str, *, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yield ``advance()`` for a loop of ``total`` steps (the analyses' form of :class:`ProgressBar`)."""
    with ProgressBar(enabled, total, label, transient=False, width=None) as bar:
        yield bar.done
