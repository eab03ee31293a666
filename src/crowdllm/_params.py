"""Hyper-parameters read from the constructor, scikit-learn style, for every estimator of the package.

A constructor stores each argument unchanged under its own name; :class:`Params` reads them back by the
constructor's signature, so a new argument needs no second list to keep in step.

>>> class Smoother(Params):
...     def __init__(self, alpha: float = 1.0, folds: int = 5) -> None:
...         self.alpha, self.folds = alpha, folds
>>> Smoother(alpha=2.0).clone(folds=3)
Smoother(alpha=2.0, folds=3)
"""

from __future__ import annotations

import inspect
from typing import Any, Self


class Params:
    """``get_params`` (the constructor's arguments, as stored), ``clone`` and a ``repr`` showing them."""

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, as stored."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name, p in names.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def clone(self, **changes: Any) -> Self:
        """An unfitted copy with the same hyper-parameters, except ``changes``."""
        return type(self)(**{**self.get_params(), **changes})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"
