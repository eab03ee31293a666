"""What the study commands ask of a label kind, answered by the kind object (``label.kind_``,
:mod:`crowdllm.data.kinds`), never by testing the kind's name."""

from __future__ import annotations

from crowdllm.data.dataset import LabelSpec
from crowdllm.errors import ConfigError


def sampleable(label: LabelSpec) -> LabelSpec:
    """``label`` when a digital crowd can sample it; free text is one error naming the kind."""
    if label.kind_.free_text:
        raise ConfigError(f"a digital crowd samples numeric, categorical or top-k labels, not {label.kind}")
    return label


def default_aggregator(label: LabelSpec) -> str:
    """The decision per task when none is asked for: majority vote for categories, else the mean."""
    return "mv" if label.kind_.nominal else "mean"


def level_names(label: LabelSpec) -> list[str]:
    """The answer levels as text: the categories, the points of a whole-number scale, 0/1 for votes;
    none for a continuous label."""
    if label.kind_.nominal:
        return [str(c) for c in (label.categories or ())]
    if label.kind_.on_levels:
        return [str(int(v)) for v in label.levels]
    return []
