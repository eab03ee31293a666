"""A rich progress bar for the analyses' loops (silent unless asked for)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def steps(total: int, label: str, *, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yield ``advance()``; shows a bar on stderr with ``total`` steps when ``enabled`` and stderr is a
    terminal (a bar written into a log, or left above a failed command's one ``error:`` line, is noise)."""
    if not enabled or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)
