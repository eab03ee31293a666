"""Price-Divide-Solve: votes to split, recursion and its depth limit, merge, verify, revise, budget."""

from __future__ import annotations

from pipeline_crowds import after, first_offered, rules_llm

from crowdllm.pipelines import Budget, Settings, read_trace, run_pipeline

JOB = {"id": "day", "task": "Plan a museum day"}


def _crowd(price, verdict=lambda u, i: "yes", divide="Plan the morning\nPlan the afternoon"):
    return rules_llm([
        ("Write an improved answer", "revised plan"),
        (("SOLVE or SPLIT", "SPLIT or SOLVE"), price),
        ("Divide this task", divide),
        ("Your task:", lambda u, i: f"done: {after(u, 'Your task:').splitlines()[0]}"),
        ("Combine these partial answers", lambda u, i: " + ".join(
            line for line in u.splitlines() if line.startswith("done:"))),
        ("complete the task well", verdict),
    ])


def test_the_crowd_splits_once_and_solves_the_parts():
    llm = _crowd(lambda u, i: "SPLIT" if "museum day" in u else "SOLVE")
    out = run_pipeline("price-divide-solve", JOB, llm, settings=Settings(voters=3, max_depth=2))
    assert out.output == "done: Plan the morning + done: Plan the afternoon"
    assert out.details["verified"] is True and out.complete
    # price root 3, divide 1, price each part 3+3, solve 1+1, merge 1, verify 3
    assert out.usage["calls"] == 3 + 1 + 6 + 2 + 1 + 3


def test_recursion_stops_at_the_depth_limit(tmp_path):
    llm = _crowd(lambda u, i: "SPLIT")  # the crowd would split forever
    out = run_pipeline("price-divide-solve", JOB, llm, settings=Settings(max_depth=2), trace=tmp_path / "t.jsonl")
    assert out.complete
    limit_notes = [n for n in out.notes if "depth limit 2 reached" in n]
    assert len(limit_notes) == 4  # 2 parts x 2 sub-parts are solved directly at depth 2
    steps = [r["step"] for r in read_trace(tmp_path / "t.jsonl") if r["kind"] == "call" and r["task"] == "solve"]
    assert len(steps) == 4 and all(s.count("subtask") == 2 for s in steps)
    zero = run_pipeline("price-divide-solve", JOB, llm, settings=Settings(max_depth=0))
    assert zero.output == "done: Plan a museum day" and zero.usage["calls"] == 1 + 3


def test_a_tied_price_vote_solves_directly():
    llm = _crowd(first_offered)  # voters who pick whichever is offered first: the offer alternates
    out = run_pipeline("price-divide-solve", JOB, llm, settings=Settings(voters=2))
    assert out.output == "done: Plan a museum day" and any("tie" in n for n in out.notes)


def test_an_unusable_division_is_solved_directly():
    llm = _crowd(lambda u, i: "SPLIT", divide="no")
    out = run_pipeline("price-divide-solve", JOB, llm)
    assert out.output == "done: Plan a museum day" and any("division unusable" in n for n in out.notes)


def test_a_rejected_answer_is_revised_and_kept_only_if_the_revision_passes():
    llm = _crowd(lambda u, i: "SOLVE", verdict=lambda u, i: "yes" if "revised plan" in u else "no")
    out = run_pipeline("price-divide-solve", JOB, llm)
    assert out.output == "revised plan" and out.details["verified"] is True
    stubborn = _crowd(lambda u, i: "SOLVE", verdict=lambda u, i: "no")
    out2 = run_pipeline("price-divide-solve", JOB, stubborn)
    assert out2.output == "done: Plan a museum day" and out2.details["verified"] is False


def test_budget_mid_recursion_returns_the_parts_solved_so_far():
    llm = _crowd(lambda u, i: "SPLIT" if "museum day" in u else "SOLVE")
    # price 3 + divide 1 + price part 1 (3) + solve 1 = 8; pricing part 2 needs 3 more
    out = run_pipeline("price-divide-solve", JOB, llm, budget=Budget(max_calls=10))
    assert not out.complete and out.output == "done: Plan the morning"
