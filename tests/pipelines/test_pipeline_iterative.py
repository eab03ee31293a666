"""Iterative process and its parallel variant: rounds, votes against position bias, ties, budget."""

from __future__ import annotations

from pipeline_crowds import VOTE, after, answer_for, options_of, rules_llm

from crowdllm.pipelines import Budget, Evaluator, Settings, get_pipeline, run_pipeline


def _improve(user: str, i: int) -> str:
    current = after(user, "Text:\n").split("\n\nWrite an improved")[0]
    return current + "+"


def _prefer_more_plus(user: str, i: int) -> str:
    return answer_for(user, lambda o: max(o.values(), key=lambda v: v.count("+")))


def test_each_round_improves_and_the_crowd_keeps_the_better_version():
    llm = rules_llm([("Write an improved version", _improve), (VOTE, _prefer_more_plus)])
    out = run_pipeline("iterative", {"id": "x", "text": "draft", "goal": "improve"}, llm,
                       settings=Settings(rounds=3, voters=3))
    assert out.output == "draft+++"
    assert out.usage["calls"] == 3 * (1 + 3 * 2)  # each voter sees both orders
    assert out.complete and not out.notes
    # the shuffle put the new version in both positions across the votes, and voters still found it
    votes = [c["messages"][-1]["content"] for c in llm.calls if "Answer with one letter" in c["messages"][-1]["content"]]
    shown = [list(options_of(v).values()) for v in votes]
    assert {texts.index(max(texts, key=lambda t: t.count("+"))) for texts in shown} == {0, 1}


def test_the_step_list_names_the_versions_voted_on(tmp_path):
    from rich.console import Console

    from crowdllm.pipelines import read_trace
    from crowdllm.pipelines.render import print_trace

    llm = rules_llm([("Write an improved version", _improve), (VOTE, _prefer_more_plus)])
    run_pipeline("iterative", {"id": "x", "text": "draft"}, llm, settings=Settings(rounds=1),
                 trace=tmp_path / "t.jsonl")
    console = Console(record=True, width=200)
    print_trace(read_trace(tmp_path / "t.jsonl"), console=console)
    text = console.export_text()
    assert "0 \u00abdraft\u00bb: 0, 1 \u00abdraft+\u00bb: 3" in text and "round 1: the new version won" in text


def test_voters_who_prefer_the_old_version_stop_the_chain():
    prefer_fewer = rules_llm([
        ("Write an improved version", _improve),
        (VOTE, lambda u, i: answer_for(u, lambda o: min(o.values(), key=lambda v: v.count("+")))),
    ])
    out = run_pipeline("iterative", {"id": "x", "text": "draft"}, prefer_fewer, settings=Settings(rounds=2))
    assert out.output == "draft"


def test_a_tie_keeps_the_current_text():
    llm = rules_llm([("Write an improved version", _improve),
                     (VOTE, lambda u, i: answer_for(u, lambda o: sorted(o.values())[i % 2]))])
    out = run_pipeline("iterative", {"id": "x", "text": "draft"}, llm, settings=Settings(rounds=1, voters=2))
    assert out.output == "draft" and any("tie" in n for n in out.notes)


def test_garbage_versions_and_votes_never_replace_the_text(garbage):
    out = run_pipeline("iterative", {"id": "x", "text": "draft"}, garbage, settings=Settings(rounds=2))
    assert out.output == "draft" and any("no usable vote" in n for n in out.notes)


def test_budget_stops_after_the_first_round_with_its_winner():
    llm = rules_llm([("Write an improved version", _improve), (VOTE, _prefer_more_plus)])
    out = run_pipeline("iterative", {"id": "x", "text": "draft"}, llm, settings=Settings(rounds=3),
                       budget=Budget(max_calls=10))
    # round 1: 1 improvement + 3 voters x 2 orders = 7; round 2's improvement makes 8, its vote would need 14
    assert out.output == "draft+" and not out.complete and out.usage["calls"] == 8


def test_parallel_writes_independent_versions_and_votes_once():
    versions = ["draft, polished", "draft, much better", "draft, fine"]
    llm = rules_llm([
        ("Write an improved version", lambda u, i: versions[i]),
        (VOTE, lambda u, i: answer_for(u, lambda o: next(v for v in o.values() if "much" in v))),
    ])
    out = run_pipeline("iterative", {"id": "x", "text": "draft"}, llm, method="parallel",
                       settings=Settings(rounds=3, voters=3))
    assert out.output == "draft, much better"
    assert out.usage["calls"] == 3 + 3
    # every voter saw all four versions (the original included)
    vote_calls = [c["messages"][-1]["content"] for c in llm.calls if any(k in c["messages"][-1]["content"] for k in VOTE)]
    assert len(vote_calls) == 3 and all(len(options_of(v)) == 4 for v in vote_calls)


def test_evaluation_checks_the_facts_of_the_draft_and_the_raters_rating():
    ev = Evaluator(rules_llm([], choice_script=lambda m, c: [1.0 if x in ("yes", "4") else 0.0 for x in c]))
    ex = {"text": "cat lost. grey. call 555.", "goal": "improve", "must_mention": ["grey|gray", "555", "pepper"]}
    m = get_pipeline("iterative").evaluate(ev, ex, "Our grey cat is lost. Please call 555.")
    assert m["coverage"] == 2 / 3 and m["rating"] == 4.0 and m["meaning_kept"] == 1.0
    assert abs(m["quality"] - (0.75 + 2 / 3) / 2) < 1e-9
