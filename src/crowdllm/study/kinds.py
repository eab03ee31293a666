"""What the study layer needs to know about a label kind, in one place (no string tests elsewhere).

The crowd's own kind objects (:mod:`crowdllm.crowd.kinds`) hold what differs inside the model; this
small table holds what the study commands do differently: which LLM reference they ask for, whether
answers are category names or numbers, the default decision per task, and whether real answers can be
mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from crowdllm.data.dataset import LabelSpec
from crowdllm.errors import ConfigError


@dataclass(frozen=True)
class StudyKind:
    name: str
    reference: str  # the compute_references kind: rating, choice or topk
    categories: bool = False  # answers are category names
    rating: bool = False  # answers are numbers on a scale (mixable by a shift of the decision)
    votes: bool = False  # top-k votes (0/1 per item)
    aggregator: str = "mean"  # the default decision per task

    @property
    def mixable(self) -> bool:
        return self.categories or self.rating


KINDS: dict[str, StudyKind] = {
    "continuous": StudyKind("continuous", "rating", rating=True),
    "ordinal": StudyKind("ordinal", "rating", rating=True),
    "categorical": StudyKind("categorical", "choice", categories=True, aggregator="mv"),
    "topk": StudyKind("topk", "topk", votes=True),
}


def study_kind(label: LabelSpec) -> StudyKind:
    """The study kind of ``label``; free text has none (a digital crowd cannot sample it)."""
    kind = KINDS.get(label.kind)
    if kind is None:
        raise ConfigError(f"a digital crowd samples numeric, categorical or top-k labels, not {label.kind}")
    return kind


def level_names(label: LabelSpec) -> list[str]:
    """The answer levels as text: the categories, the points of a whole-number scale, 0/1 for votes;
    none for a continuous label."""
    kind = study_kind(label)
    if kind.categories:
        return [str(c) for c in (label.categories or ())]
    try:
        return [str(int(v)) for v in label.levels]
    except ValueError:
        return []
