"""The label-kind objects (crowdllm.data.kinds): one per kind name, and their flags say what the data model does."""

from __future__ import annotations

import pandas as pd
import pytest

from crowdllm.data.dataset import LABEL_KINDS, CrowdDataset, LabelSpec
from crowdllm.data.kinds import KINDS_BY_NAME, kind_named
from crowdllm.errors import ConfigError, CrowdDataError

SPECS = {"continuous": LabelSpec("continuous", scale=(0, 1)), "ordinal": LabelSpec("ordinal", scale=(1, 5)),
         "categorical": LabelSpec("categorical", categories=("no", "yes")), "topk": LabelSpec("topk", k=1),
         "text": LabelSpec("text")}


def test_one_object_per_kind_name_and_a_spec_finds_it() -> None:
    assert list(KINDS_BY_NAME) == list(LABEL_KINDS) == list(SPECS)
    for name, spec in SPECS.items():
        assert spec.kind_ is KINDS_BY_NAME[name] and spec.kind_.name == name
    with pytest.raises(ConfigError, match="label kind 'likert' is not one of continuous, ordinal"):
        kind_named("likert")


def test_levels_exist_exactly_for_the_kinds_on_levels() -> None:
    for spec in SPECS.values():
        if spec.kind_.on_levels:
            assert len(spec.levels) >= 2
        else:
            with pytest.raises(ValueError, match="no finite set of levels"):
                _ = spec.levels


def _validated(spec: LabelSpec, label: object) -> pd.Series:
    """The label column a one-response data set keeps for ``label`` (or the error it raises)."""
    ds = CrowdDataset(responses=pd.DataFrame({"task": ["t"], "worker": ["w"], "label": [label]}),
                      tasks=pd.DataFrame({"task": ["t"], "text": ["a text"]}),
                      workers=pd.DataFrame({"worker": ["w"]}), label=spec)
    return ds.validate().responses["label"]


def test_numeric_kinds_read_numbers_and_the_others_keep_names() -> None:
    answer = {"continuous": "0.5", "ordinal": "3", "categorical": "yes", "topk": "1", "text": "a rewrite"}
    for name, spec in SPECS.items():
        kept = _validated(spec, answer[name]).iloc[0]
        assert isinstance(kept, str) != spec.kind_.numeric, name
        assert spec.is_numeric == spec.kind_.numeric
    # integer_scale: an ordinal label must be one of its integers, a continuous one anywhere on the scale
    assert _validated(SPECS["continuous"], 0.25).iloc[0] == 0.25
    with pytest.raises(CrowdDataError, match=r"must be an integer in 1\.\.5"):
        _validated(SPECS["ordinal"], 2.5)


def test_descriptions_and_what_the_llm_is_asked() -> None:
    assert {name: spec.kind_.describe(spec) for name, spec in SPECS.items()} == {
        "continuous": "continuous [0, 1]", "ordinal": "ordinal 1..5", "categorical": "categorical (2)",
        "topk": "top-1", "text": "text"}
    assert LabelSpec("continuous").kind_.describe(LabelSpec("continuous")) == "continuous"
    assert {name: spec.kind_.reference_kind for name, spec in SPECS.items()} == {
        "continuous": "rating", "ordinal": "rating", "categorical": "choice", "topk": "topk", "text": "text"}
    assert SPECS["categorical"].kind_.answer_value("yes") == "yes"
    assert SPECS["ordinal"].kind_.answer_value("4") == 4.0
