"""Label aggregation: one algorithm per module, crowd-kit's ``fit_predict(responses) -> Series`` contract.

``responses`` has columns ``task``, ``worker``, ``label``; the result is indexed by task (sorted ids).

- ``mean`` (:class:`Mean`), ``median`` (:class:`Median`): numeric labels only.
- ``mv`` (:class:`MajorityVote`), ``ds`` (:class:`DawidSkene`), ``glad`` (:class:`GLAD`): treat labels
  as categories and return one of the given labels (a float for numeric/ordinal labels).

>>> import pandas as pd
>>> from crowdllm.aggregate import get_aggregator
>>> df = pd.DataFrame({"task": ["a", "a", "a"], "worker": ["x", "y", "z"], "label": [1.0, 2.0, 2.0]})
>>> float(get_aggregator("mv").fit_predict(df)["a"])
2.0
"""

from __future__ import annotations

from typing import Any

from crowdllm.aggregate._base import Aggregator
from crowdllm.aggregate.dawid_skene import DawidSkene
from crowdllm.aggregate.glad import GLAD
from crowdllm.aggregate.mean import Mean
from crowdllm.aggregate.median import Median
from crowdllm.aggregate.mv import MajorityVote
from crowdllm.errors import ConfigError

AGGREGATORS: dict[str, type[Aggregator]] = {
    "mean": Mean,
    "median": Median,
    "mv": MajorityVote,
    "ds": DawidSkene,
    "glad": GLAD,
}

#: Aggregators that need numeric labels.
NUMERIC_ONLY: frozenset[str] = frozenset({"mean", "median"})


def get_aggregator(name: str, **params: Any) -> Aggregator:
    """A new aggregator by name (``mean``, ``median``, ``mv``, ``ds``, ``glad``)."""
    key = str(name).strip().lower()
    if key not in AGGREGATORS:
        raise ConfigError(f"unknown aggregator '{name}'; choose from {', '.join(AGGREGATORS)}")
    return AGGREGATORS[key](**params)


__all__ = ["AGGREGATORS", "GLAD", "NUMERIC_ONLY", "Aggregator", "DawidSkene", "MajorityVote", "Mean",
           "Median", "get_aggregator"]
