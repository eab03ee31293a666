"""Microtasks vs a macrotask: merge sort by voted comparisons, per-question votes, Borda, garbage."""

from __future__ import annotations

import pytest
from pipeline_crowds import answer_for, rules_llm

from crowdllm.errors import ConfigError
from crowdllm.pipelines import Budget, Evaluator, Settings, get_pipeline, load_examples, run_pipeline

NUMBERS = {"id": "n", "kind": "sort", "job": "Order from smallest to largest.", "items": ["418", "97", "1203", "88"],
           "first": "Which number is smaller?", "gold": ["88", "97", "418", "1203"]}
NOTICE = {"id": "q", "kind": "questions", "job": "Answer.", "document": "The club meets on Wednesdays in room 12.",
          "questions": ["Which day?", "Which room?"], "gold": ["Wednesday|Wednesdays", "12"]}


def _smaller(u, i):
    return answer_for(u, lambda o: min(o.values(), key=float))


def test_microtask_comparisons_sort_exactly():
    llm = rules_llm([("Which number is smaller", _smaller)])
    out = run_pipeline("break-it-down", NUMBERS, llm)
    assert out.output == ["88", "97", "418", "1203"]
    assert 3 <= out.details["comparisons"] <= 5 and out.usage["calls"] == 3 * out.details["comparisons"]
    assert get_pipeline("break-it-down").evaluate(Evaluator(llm), NUMBERS, out.output)["quality"] == 1.0


def test_macrotask_crowd_combines_orders_by_borda_count():
    orders = ["88\n97\n418\n1203", "97\n88\n418\n1203", "88\n97\n1203\n418"]
    llm = rules_llm([("Reply with the ordered list", lambda u, i: orders[i])])
    out = run_pipeline("break-it-down", NUMBERS, llm, method="macro")
    assert out.output == ["88", "97", "418", "1203"] and out.usage["calls"] == 3


def test_baseline_parses_one_answer_and_loses_pairs_with_missing_items():
    llm = rules_llm([("Reply with the ordered list", "Here you go:\n1. 97\n2. 88\n3. 418")])
    out = run_pipeline("break-it-down", NUMBERS, llm, method="baseline")
    assert out.output == ["97", "88", "418"]
    m = get_pipeline("break-it-down").evaluate(Evaluator(llm), NUMBERS, out.output)
    assert m["quality"] == 2 / 6 and m["answered"] is False  # (97,418), (88,418) right; 1203 missing


def test_questions_as_microtasks_are_settled_by_plurality_with_ties_noted():
    answers = {"Which day?": ["Wednesday", "wednesday."], "Which room?": ["room 12", "in Room 21"]}
    llm = rules_llm([("Question: Which day?", lambda u, i: answers["Which day?"][i]),
                     ("Question: Which room?", lambda u, i: answers["Which room?"][i % 2])])
    out = run_pipeline("break-it-down", NOTICE, llm, settings=Settings(workers=2))
    assert out.output[0] == "Wednesday"
    assert any("question 2: tie" in n for n in out.notes)
    m = get_pipeline("break-it-down").evaluate(Evaluator(llm), NOTICE, out.output)
    assert m["quality"] == 1.0  # the tie went to the shorter answer


def test_numbered_macro_answers_and_garbage():
    llm = rules_llm([("one line per question", "1. Wednesdays\n2. Room 12")])
    assert run_pipeline("break-it-down", NOTICE, llm, method="baseline").output == ["Wednesdays", "Room 12"]
    garbage = rules_llm([], default="???")
    out = run_pipeline("break-it-down", NUMBERS, garbage, method="baseline")
    assert out.output == []


def test_budget_returns_a_partial_order_that_still_lists_every_item():
    llm = rules_llm([("Which number is smaller", _smaller)])
    out = run_pipeline("break-it-down", NUMBERS, llm, budget=Budget(max_calls=7))
    assert not out.complete and sorted(out.output) == sorted(NUMBERS["items"])


def test_jobs_must_say_what_they_are():
    with pytest.raises(ConfigError, match="needs kind 'sort' or 'questions'"):
        run_pipeline("break-it-down", {"id": "x", "job": "do it"}, rules_llm([]))
    with pytest.raises(ConfigError, match="lacks first"):
        run_pipeline("break-it-down", {**NUMBERS, "first": ""}, rules_llm([]))


def test_builtin_jobs_have_consistent_gold():
    for ex in load_examples("break-it-down"):
        if ex["kind"] == "sort":
            assert sorted(ex["items"]) == sorted(ex["gold"])
        else:
            assert len(ex["questions"]) == len(ex["gold"])
