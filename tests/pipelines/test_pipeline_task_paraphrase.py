"""QA-SRL task paraphrase: verbs by agreement, template pairs, crowd verification, gold F1."""

from __future__ import annotations

from pipeline_crowds import first_offered, rules_llm

from crowdllm.pipelines import Budget, Evaluator, Settings, get_pipeline, load_examples, run_pipeline
from crowdllm.pipelines.task_paraphrase import parse_pairs

SENT = "Maria bought a used bike from her neighbour last spring."


def _crowd(verbs, pairs, verdict=lambda u, i: "yes"):
    return rules_llm([("List the verbs", lambda u, i: verbs[i % len(verbs)]),
                      ("question-answer pairs", pairs), ("Is this answer correct", verdict)])


def test_verified_pairs_match_the_gold_annotation():
    example = next(e for e in load_examples("task-paraphrase") if e["id"] == "maria-bike")
    pairs = ("Who bought something? | Maria\n"
             "What did someone buy? | a used bike\n"
             "When did someone buy something? | her neighbour\n"     # wrong answer: voted out
             "Where is the moon? | space\n")                        # breaks the template: dropped
    llm = _crowd(["bought", "bought\nused", "flew"], pairs,
                 verdict=lambda u, i: "no" if "When did" in u else "yes")
    out = run_pipeline("task-paraphrase", example, llm)
    assert [(p["question"], p["answer"]) for p in out.output] == [("Who bought something?", "Maria"),
                                                                    ("What did someone buy?", "a used bike")]
    assert out.details["generated"] == 3 and out.details["agreement"] == 1.0
    assert any("broke the template" in n for n in out.notes)
    m = get_pipeline("task-paraphrase").evaluate(Evaluator(llm), example, out.output)
    assert m["precision"] == 1.0 and m["recall"] == 0.5 and abs(m["quality"] - 2 / 3) < 1e-9


def test_verbs_without_agreement_fall_back_to_all_named_verbs():
    llm = _crowd(["bought", "sold"], "Who bought something? | Maria")
    out = run_pipeline("task-paraphrase", {"id": "s", "sentence": "Maria bought and sold bikes."}, llm,
                       settings=Settings(workers=2, agree=2))
    assert any("no verb reached agreement" in n for n in out.notes)
    gen = [c for c in llm.calls if "question-answer pairs" in c["messages"][-1]["content"]]
    assert len(gen) == 2  # one generation per verb


def test_tied_and_unusable_votes_drop_the_pair(garbage):
    llm = _crowd(["bought"], "Who bought something? | Maria", verdict=first_offered)
    out = run_pipeline("task-paraphrase", {"id": "s", "sentence": SENT}, llm, settings=Settings(voters=2))
    assert out.output == [] and any("tied vote" in n for n in out.notes)
    assert run_pipeline("task-paraphrase", {"id": "s", "sentence": SENT}, garbage).output == []


def test_budget_keeps_the_pairs_verified_so_far():
    llm = _crowd(["bought"], "Who bought something? | Maria\nWhat did someone buy? | a used bike")
    out = run_pipeline("task-paraphrase", {"id": "s", "sentence": SENT}, llm, budget=Budget(max_calls=9))
    assert not out.complete and [p["answer"] for p in out.output] == ["Maria"]


def test_parse_pairs_reads_the_usual_layouts():
    text = ("1. Who bought something? | Maria\nQ: What did someone buy? A: a bike\n"
            "When did someone buy? last spring\nWho sold it?? | her neighbour")
    assert [(p["question"], p["answer"]) for p in parse_pairs(text)] == [
        ("Who bought something?", "Maria"), ("What did someone buy?", "a bike"),
        ("When did someone buy?", "last spring"), ("Who sold it?", "her neighbour")]


def test_verbs_named_in_another_form_are_still_asked_about():
    llm = _crowd(["buy", "Buy", "bought"], "Who bought something? | Maria")
    out = run_pipeline("task-paraphrase", {"id": "s", "sentence": SENT}, llm)
    assert [p["predicate"] for p in out.output] == ["buy"]  # 'buy' by two workers; 'bought' by one
    llm2 = _crowd(["Tasted", "taste"], "Who tasted something? | The chef")
    out2 = run_pipeline("task-paraphrase", {"id": "c", "sentence": "The chef tasted the soup."}, llm2,
                        settings=Settings(workers=2))
    assert [p["predicate"] for p in out2.output] == ["tasted"]
