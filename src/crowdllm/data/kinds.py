"""One object per label kind: what the early stages (data, profiles, llm, evaluate) need to know about it.

Code asks the kind object (``label.kind_``) what a kind *is* instead of testing its name:

=============  =======  ======  =========  =======  =======  =========  ===============
kind           numeric  rating  on_levels  integer  nominal  votes      reference_kind
                                           _scale                       (what the LLM is asked)
=============  =======  ======  =========  =======  =======  =========  ===============
continuous     yes      yes     -          -        -        -          rating
ordinal        yes      yes     yes        yes      -        -          rating
categorical    -        -       yes        -        yes      -          choice
topk           yes      -       yes        -        -        yes        topk
text           -        -       -          -        -        -          text (free_text)
=============  =======  ======  =========  =======  =======  =========  ===============

:data:`KINDS_BY_NAME` is the one place that maps a kind's *name* (``LabelSpec.kind``, the saved
``"kind"`` field) to its object. :mod:`crowdllm.crowd.kinds` extends these classes with what the
crowd model does differently per kind (model units, losses, task memory, blenders).

>>> from crowdllm.data.dataset import LabelSpec
>>> spec = LabelSpec("ordinal", scale=(1, 5))
>>> spec.kind_.rating, spec.kind_.on_levels, spec.kind_.reference_kind, spec.kind_.describe(spec)
(True, True, 'rating', 'ordinal 1..5')
>>> spec.kind_.prompt_choices(spec), LabelSpec("topk", k=3).kind_.reference_args(LabelSpec("topk", k=3))
(['1', '2', '3', '4', '5'], {'top_k': 3})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from crowdllm.errors import ConfigError

if TYPE_CHECKING:
    from crowdllm.data.dataset import LabelSpec


def rating_scale(label: LabelSpec) -> tuple[int, int]:
    """``(low, high)`` of a rating label, for LLM rating prompts."""
    if label.scale is None:
        raise ConfigError("LLM rating prompts need a label scale (e.g. 1..5)")
    return int(label.scale[0]), int(label.scale[1])


class Kind:
    """What a label kind is (subclasses set the flags; every flag is False here)."""

    name: ClassVar[str] = ""
    #: labels are numbers (continuous, ordinal, top-k 0/1 votes)
    numeric: ClassVar[bool] = False
    #: a rating on a number line (continuous or ordinal): means, intervals and the theory apply
    rating: ClassVar[bool] = False
    #: the label has a finite set of levels (``LabelSpec.levels``): ordinal, categorical, top-k
    on_levels: ClassVar[bool] = False
    #: the labels are the integers low..high of the scale (ordinal)
    integer_scale: ClassVar[bool] = False
    #: one of a fixed list of unordered names (categorical): codes on the metric axis, majority vote
    nominal: ClassVar[bool] = False
    #: top-k votes: answers are 0/1 choices among all items, each voter selecting exactly k
    votes: ClassVar[bool] = False
    #: free text: not scored by the numeric metrics
    free_text: ClassVar[bool] = False
    #: what the LLM is asked for this kind (:mod:`crowdllm.llm.reference`): rating, choice, topk or text
    reference_kind: ClassVar[str] = ""
    #: an LLM's answer names a label (a string) instead of a number
    names_answers: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<{self.name} label kind>"

    def describe(self, label: LabelSpec) -> str:
        """A short description of ``label`` (``ordinal 1..5``, ``top-3``, ``categorical (2)``)."""
        return self.name

    # ------------------------------------------------------------------ asking the LLM
    def reference_args(self, label: LabelSpec) -> dict[str, Any]:
        """The keyword arguments that describe the answer to the LLM (``scale=``, ``choices=``, ``top_k=``)."""
        return {}

    def prompt_choices(self, label: LabelSpec) -> list[str]:
        """The answers an LLM prompt offers (rating levels, categories; none for votes)."""
        return []

    def answer_value(self, choice: Any) -> Any:
        """An LLM's answer (a choice name) as a label value; missing stays NaN."""
        if choice is None or (isinstance(choice, float) and np.isnan(choice)):
            return np.nan
        return str(choice) if self.names_answers else float(choice)


class _Rating(Kind):
    numeric = True
    rating = True
    reference_kind = "rating"

    def reference_args(self, label: LabelSpec) -> dict[str, Any]:
        return {"scale": rating_scale(label)}

    def prompt_choices(self, label: LabelSpec) -> list[str]:
        lo, hi = rating_scale(label)
        return [str(v) for v in range(lo, hi + 1)]


class ContinuousLabels(_Rating):
    """Any real number, optionally bounded by the scale."""

    name = "continuous"

    def describe(self, label: LabelSpec) -> str:
        if label.scale is None:
            return self.name
        return f"continuous [{label.scale[0]:g}, {label.scale[1]:g}]"


class OrdinalLabels(_Rating):
    """The integers low..high of the scale (a 1-5 rating)."""

    name = "ordinal"
    on_levels = True
    integer_scale = True

    def describe(self, label: LabelSpec) -> str:
        assert label.scale is not None
        return f"ordinal {label.scale[0]:g}..{label.scale[1]:g}"


class CategoricalLabels(Kind):
    """One of the label's categories (binary included)."""

    name = "categorical"
    on_levels = True
    nominal = True
    reference_kind = "choice"
    names_answers = True

    def describe(self, label: LabelSpec) -> str:
        return f"categorical ({len(label.categories or ())})"

    def reference_args(self, label: LabelSpec) -> dict[str, Any]:
        return {"choices": list(label.categories or ())}

    def prompt_choices(self, label: LabelSpec) -> list[str]:
        return list(label.categories or ())


class TopKVotes(Kind):
    """0/1 selection of an item; every voter selects exactly k items."""

    name = "topk"
    numeric = True
    on_levels = True
    votes = True
    reference_kind = "topk"

    def describe(self, label: LabelSpec) -> str:
        return f"top-{label.k}"

    def reference_args(self, label: LabelSpec) -> dict[str, Any]:
        return {"top_k": int(label.k or 1)}


class FreeText(Kind):
    """Free text (rewrites, answers)."""

    name = "text"
    free_text = True
    reference_kind = "text"
    names_answers = True


#: the one map from a kind's name to its object
KINDS_BY_NAME: dict[str, Kind] = {kind.name: kind for kind in (
    ContinuousLabels(), OrdinalLabels(), CategoricalLabels(), TopKVotes(), FreeText())}


def kind_named(name: str) -> Kind:
    """The kind object called ``name`` (``LabelSpec.kind``)."""
    try:
        return KINDS_BY_NAME[name]
    except KeyError:
        raise ConfigError(f"label kind '{name}' is not one of {', '.join(KINDS_BY_NAME)}") from None
