"""One way to add a group of shared flags to a Typer command (backend flags, data flags): the command
declares one parameter (``backend_options``, ``data_options``) and receives the flags bundled in it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

#: One declared flag: (parameter name, annotation, ``typer.Option(...)`` default).
OptionDecl = tuple[str, Any, Any]


def add_option_group(func: Callable[..., Any], param: str, options: Sequence[OptionDecl],
                     build: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """Return ``func`` with ``options`` as keyword-only parameters in its signature; at call time their
    values are removed from the keywords and passed as ``param=build(values)``."""
    names = tuple(name for name, _, _ in options)
    sig = inspect.signature(func)
    if param not in sig.parameters:
        raise TypeError(f"{func.__name__} needs a parameter named '{param}'")
    clash = set(names) & set(sig.parameters)
    if clash:
        raise TypeError(f"{func.__name__} already has parameter(s) {clash}")
    kept = [p for p in sig.parameters.values() if p.name != param]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
             for name, annotation, default in options]
    # positional-or-keyword parameters must precede keyword-only ones
    positional = [p for p in kept if p.kind != inspect.Parameter.KEYWORD_ONLY]
    keyword = [p for p in kept if p.kind == inspect.Parameter.KEYWORD_ONLY]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in names if name in kwargs}
        return func(*args, **{param: build(values)}, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*positional, *keyword, *added])  # type: ignore[attr-defined]
    annotations = {k: v for k, v in getattr(func, "__annotations__", {}).items() if k != param}
    annotations.update({name: annotation for name, annotation, _ in options})
    wrapper.__annotations__ = annotations
    return wrapper
