"""Pipeline vs baseline comparisons on fake crowds: each asserts what its pipeline is *for*, scored by checks.

Every comparison here runs with ``judge=None`` where the point is the checks (no model asked), so a
number in these tests is what the pipeline produced, not what a rater thought of it.
"""

from __future__ import annotations

import re

import pytest
from pipeline_crowds import after, answer_for, rules_llm, sensible_llm

from crowdllm.errors import ConfigError
from crowdllm.llm.fake import FakeLLM
from crowdllm.pipelines import compare, examples_for, get_pipeline, load_examples, pipelines, read_trace
from crowdllm.pipelines.checks import headings

NUMBERS = [{"id": "n1", "kind": "sort", "job": "Order from smallest to largest.", "items": ["5", "3", "9"],
            "first": "Which number is smaller?", "gold": ["3", "5", "9"]}]


def _by_method(result):
    return result.rows.set_index("method")


def test_compare_puts_the_methods_side_by_side_with_their_costs(tmp_path):
    llm = rules_llm([
        ("Which number is smaller", lambda u, i: answer_for(u, lambda o: min(o.values(), key=float))),
        ("Reply with the ordered list", "9\n5\n3"),  # the one-prompt answer is backwards
    ])
    result = compare("break-it-down", llm, examples=NUMBERS, trace_dir=tmp_path, judge=None)
    s = result.summary.set_index("method")
    assert list(s.index) == ["pipeline", "macro", "baseline"]
    assert s.loc["pipeline", "score"] == 1.0 and s.loc["baseline", "score"] == 0.0
    assert s.loc["pipeline", "checks"] == 1.0 and s.loc["baseline", "checks"] == 0.0  # the gold order check
    assert s.loc["baseline", "calls"] == 1 and s.loc["macro", "calls"] == 3
    assert s.loc["pipeline", "calls"] == 3 * s.loc["pipeline", "comparisons"]
    assert s.loc["pipeline", "tokens"] > s.loc["baseline", "tokens"]
    # one folder per input with one trace per method, plus the judge's (empty without a judge)
    assert sorted(p.name for p in (tmp_path / "n1").iterdir()) == ["baseline.jsonl", "macro.jsonl", "pipeline.jsonl"]
    assert read_trace(tmp_path / "n1" / "macro.jsonl")[0]["method"] == "macro"
    assert result.judge is None and result.eval_usage["calls"] == 0


def test_find_fix_verify_fixes_exactly_the_known_typo_and_nothing_else():
    text = "The meeting is on Tuesday. Please bring the the report and your laptop."
    ex = {"id": "typo", "text": text, "goal": "proofread", "checks": {"fix": {"the the": "the"}}}
    llm = rules_llm([
        # finders point at the part with the doubled word, the fixers remove it, verifiers accept
        ("answer with their numbers", lambda u, i: next(
            n for n, part in re.findall(r"^(\d+)\. (.*)$", u, re.M) if "the the" in part)),
        ("Rewrite only this part", lambda u, i: "Please bring the report and your laptop"),
        ("after this change", "yes"),
        ("Rewrite the text", text),  # the one-prompt baseline changes nothing
    ])
    result = compare("find-fix-verify", llm, examples=[ex], judge=None)
    rows = _by_method(result)
    pipeline = next(o for o in result.outcomes if o.method == "pipeline")
    assert pipeline.output == "The meeting is on Tuesday. Please bring the report and your laptop."
    assert rows.loc["pipeline", "checks"] == 1.0  # fixed, and nothing else changed
    # the baseline returned its input: the typo stays, so the text is not "the input with the fix" either
    assert rows.loc["baseline", "checks"] == 0.0 and bool(rows.loc["baseline", "unchanged"])
    assert "fix (not fixed: the the)" in rows.loc["baseline", "failed"]


def test_map_reduce_keeps_every_section_once():
    outline = "Origins\nHow it works\nOrigins\nWhy people ride"  # a repeated heading in the outline
    llm = rules_llm([
        ("section headings", outline),
        ("one short, true fact", lambda u, i: f"Fact {i + 1} about {after(u, 'Section:').splitlines()[0]}."),
        ("Write one paragraph", lambda u, i: "A paragraph: " + " ".join(
            line[2:] for line in u.splitlines() if line.startswith("- "))),
        ("Write a short, factual article", "## Origins\n\nBikes.\n\n## Origins\n\nBikes again."),
    ])
    ex = {"id": "bike", "topic": "the bicycle", "sections": 3, "max_words": 400}
    result = compare("map-reduce", llm, examples=[ex], judge=None)
    article = next(o for o in result.outcomes if o.method == "pipeline").output
    assert headings(article) == ["Origins", "How it works", "Why people ride"]  # each section once, in order
    for h in ("Origins", "How it works", "Why people ride"):
        assert article.count(f"Fact 1 about {h}.") == 1
    rows = _by_method(result)
    assert rows.loc["pipeline", "checks"] == 1.0
    assert "sections" in rows.loc["baseline", "failed"] and "repeated: origins" in rows.loc["baseline", "failed"]


def test_price_divide_solve_stops_at_its_depth_limit_and_covers_the_parts():
    llm = rules_llm([
        (("SOLVE or SPLIT", "SPLIT or SOLVE"), "SPLIT"),  # a crowd that would split forever
        ("Divide this task", lambda u, i: "Plan the morning\nPlan lunch\nPlan the afternoon"),
        ("Your task:", lambda u, i: f"done: {after(u, 'Your task:').splitlines()[0]}"),
        ("Combine these partial answers", lambda u, i: " + ".join(
            line for line in u.splitlines() if line.startswith("done:"))),
        ("complete the task well", "yes"),
    ])
    ex = {"id": "day", "task": "Plan a museum day", "must_cover": ["morning", "lunch", "afternoon"]}
    from crowdllm.pipelines import Settings

    result = compare("price-divide-solve", llm, examples=[ex], judge=None,
                     settings=Settings(max_depth=1, max_parts=3, voters=3))
    pipe = next(o for o in result.outcomes if o.method == "pipeline")
    assert pipe.output == "done: Plan the morning + done: Plan lunch + done: Plan the afternoon"
    assert sum("depth limit 1 reached" in n for n in pipe.notes) == 3
    # price the job 3, divide 1, solve 3 parts directly (no pricing at the limit), merge 1, verify 3
    assert pipe.usage["calls"] == 3 + 1 + 3 + 1 + 3
    assert _by_method(result).loc["pipeline", "checks"] == 1.0


def test_iterative_keeps_the_version_the_voters_prefer_and_the_checks_see_the_facts():
    ex = {"id": "cat", "goal": "improve", "text": "cat lost. grey. call 555.",
          "checks": {"keep": ["grey", "555", "cat"]}}
    improved = "Our grey cat is lost. Please call 555."
    llm = rules_llm([
        ("Write an improved version", lambda u, i: improved if "cat lost" in u else "Lost: a cat."),
        ("Answer with one letter", lambda u, i: answer_for(u, lambda o: max(o.values(), key=len))),
    ])
    result = compare("iterative", llm, examples=[ex], judge=None)
    rows = _by_method(result)
    assert next(o for o in result.outcomes if o.method == "pipeline").output == improved
    assert rows.loc["pipeline", "checks"] == 1.0 and not rows.loc["pipeline", "unchanged"]


def test_humor_returns_the_joke_its_crowd_rated_highest():
    llm = rules_llm([
        ("associate with this topic", "beans\nmugs"),
        ("surprising twist", lambda u, i: "Expected: normal\nTwist: not"),
        ("Write one short joke", lambda u, i: f"A joke about coffee {after(u, 'Association:').splitlines()[0]}."),
        ("How funny", lambda u, i: "5" if "mugs" in u else "1"),
        ("funny joke", "A joke about tea."),  # the baseline's joke is off topic
    ])
    result = compare("humor", llm, examples=[{"id": "c", "topic": "coffee", "keywords": ["coffee"],
                                              "max_words": 50}], judge=None)
    assert next(o for o in result.outcomes if o.method == "pipeline").output == "A joke about coffee mugs."
    rows = _by_method(result)
    assert rows.loc["pipeline", "checks"] == 1.0 and rows.loc["baseline", "checks"] == 0.5


def test_task_paraphrase_is_scored_against_gold_without_a_model():
    example = next(e for e in load_examples("task-paraphrase") if e["id"] == "maria-bike")
    llm = rules_llm([("List the verbs", "bought"),
                     ("question-answer pairs", "Who bought something? | Maria\nWhat did someone buy? | a used bike"),
                     ("Is this answer correct", "yes")])
    result = compare("task-paraphrase", llm, examples=[example], judge=None)
    rows = _by_method(result)
    # 2 of 4 gold pairs found, both right: precision 1, recall 0.5, F1 2/3
    assert rows.loc["pipeline", "score"] == pytest.approx(2 / 3)
    assert rows.loc["pipeline", "precision"] == 1.0 and rows.loc["pipeline", "recall"] == 0.5


def test_the_judge_is_marked_counted_apart_and_compared_with_the_checks():
    judge = FakeLLM("x", choice_script=lambda m, c: [1.0] * len(c), model="judge-model")
    result = compare("find-fix-verify", sensible_llm(), n=1, raters=2, judge=judge)
    assert result.judge["model"] == "judge-model" and result.judge["same"] is False
    assert result.eval_usage["calls"] == 2 * 2  # meaning kept, for pipeline and baseline: 2 raters each
    assert not any(c["kind"] == "choice_probs" for c in getattr(result.outcomes[0], "calls", []))
    assert "judged" in result.rows.columns and "score" not in result.rows.columns
    assert _by_method(result).loc["baseline", "calls"] == 1


def test_judge_agreement_counts_pairs_whose_checks_differ():
    import pandas as pd

    from crowdllm.pipelines.compare import judge_agreement

    rows = pd.DataFrame({"example": ["a", "a", "a", "b", "b"], "method": ["p", "q", "r", "p", "q"],
                         "checks": [1.0, 0.5, 0.5, 1.0, 1.0], "judged": [0.9, 0.2, 0.95, 0.1, 0.2]})
    # pairs with differing checks: (a:p, a:q) same way round, (a:p, a:r) the other way; b has none
    assert judge_agreement(rows) == {"agreement": 0.5, "pairs": 2}


@pytest.mark.parametrize("name", list(pipelines()))
def test_every_pipeline_compares_on_its_first_builtin_example_with_checks(name):
    result = compare(name, sensible_llm(), n=1, raters=1)
    spec = get_pipeline(name)
    assert list(result.summary["method"]) == spec.methods
    assert (result.rows["checks_total"] >= 1).all() or name in ("task-paraphrase",) or \
        load_examples(name)[0].get("kind") == "questions"
    col = "judged" if spec.judged else "score"
    assert col in result.rows.columns


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
