"""Pipeline vs baseline comparison: every method on every example, costs counted apart from evaluation."""

from __future__ import annotations

import math

import pytest
from pipeline_crowds import answer_for, rules_llm, sensible_llm

from crowdllm.errors import ConfigError
from crowdllm.pipelines import compare, examples_for, get_pipeline, load_examples, pipelines, read_trace

NUMBERS = [{"id": "n1", "kind": "sort", "job": "Order from smallest to largest.", "items": ["5", "3", "9"],
            "first": "Which number is smaller?", "gold": ["3", "5", "9"]}]


def test_compare_puts_the_methods_side_by_side_with_their_costs(tmp_path):

    llm = rules_llm([
        ("Which number is smaller", lambda u, i: answer_for(u, lambda o: min(o.values(), key=float))),
        ("Reply with the ordered list", "9\n5\n3"),  # the one-prompt answer is backwards
    ])
    result = compare("break-it-down", llm, examples=NUMBERS, trace_dir=tmp_path)
    s = result.summary.set_index("method")
    assert list(s.index) == ["pipeline", "macro", "baseline"]
    assert s.loc["pipeline", "quality"] == 1.0 and s.loc["baseline", "quality"] == 0.0
    assert s.loc["baseline", "calls"] == 1 and s.loc["macro", "calls"] == 3
    assert s.loc["pipeline", "calls"] == 3 * s.loc["pipeline", "comparisons"]
    assert s.loc["pipeline", "tokens"] > s.loc["baseline", "tokens"]
    # one trace per example and method, plus the raters'
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["evaluation.jsonl", "n1.baseline.jsonl", "n1.macro.jsonl", "n1.pipeline.jsonl"]
    assert read_trace(tmp_path / "n1.macro.jsonl")[0]["method"] == "macro"


def test_evaluation_calls_are_not_billed_to_the_methods():
    result = compare("find-fix-verify", sensible_llm(), n=1, raters=2)
    assert result.eval_usage["calls"] == 2 * 2  # meaning kept, for pipeline and baseline: 2 raters each
    row = result.rows.set_index("method")
    assert row.loc["baseline", "calls"] == 1


@pytest.mark.parametrize("name", list(pipelines()))
def test_every_pipeline_compares_on_its_first_builtin_example(name):
    result = compare(name, sensible_llm(), n=1, raters=1)
    spec = get_pipeline(name)
    assert list(result.summary["method"]) == spec.methods
    assert all(0.0 <= q <= 1.0 for q in result.summary["quality"] if not math.isnan(q))
    assert (result.rows["calls"] >= 1).all()


def test_sources_and_methods_are_checked():
    with pytest.raises(ConfigError, match="source 'popquorn' is for the editing pipelines"):
        examples_for(get_pipeline("humor"), source="popquorn")
    with pytest.raises(ConfigError, match="no method 'parallel'"):
        compare("humor", sensible_llm(), n=1, methods=["parallel"])
    with pytest.raises(ConfigError, match="unknown pipeline 'shakespeare'"):
        compare("shakespeare", sensible_llm())


def test_every_builtin_example_has_the_input_its_pipeline_reads():
    for name, spec in pipelines().items():
        examples = load_examples(name)
        assert len(examples) >= 3
        assert len({e["id"] for e in examples}) == len(examples)
        assert all(str(e.get(spec.input_key, "")).strip() for e in examples), name
