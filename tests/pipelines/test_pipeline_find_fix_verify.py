"""Find-Fix-Verify on scripted crowds: agreement on patches, voted-out fixes, ties, garbage, budget."""

from __future__ import annotations

from pipeline_crowds import after, first_offered, rules_llm

from crowdllm.pipelines import Budget, Evaluator, Settings, get_pipeline, read_trace, run_pipeline
from crowdllm.pipelines.find_fix_verify import apply_edits, fit_in

TEXT = ("The meeting, which was planned a long time ago, will be held on Monday in the big room on the second "
        "floor of the old town hall.")
REST = "will be held on Monday in the big room on the second floor of the old town hall."


def _crowd(finds, fixes, verdict):
    return rules_llm([
        ("at most 3 parts: answer with their numbers", lambda u, i: finds[i]),
        ("Rewrite only this part", lambda u, i: fixes[i % len(fixes)]),
        ("after this change", lambda u, i: verdict(u, i)),
    ])


def test_agreed_patch_is_fixed_and_the_meaning_changing_fix_is_voted_out(tmp_path):
    llm = _crowd(
        finds=["2", "Part 2.", "3"],
        fixes=["DELETE", "planned long ago", "planned long ago"],
        # voters reject deleting the clause (it loses information) and accept the shorter wording
        verdict=lambda u, i: "No." if "(nothing" in u else "Yes.",
    )
    out = run_pipeline("find-fix-verify", {"id": "m", "text": TEXT, "goal": "shorten"}, llm,
                       trace=tmp_path / "t.jsonl")
    assert out.output == f"The meeting, planned long ago, {REST}"
    assert out.complete and out.usage["calls"] == 3 + 3 + 2 * 3  # find, fix, verify two candidates
    recs = read_trace(tmp_path / "t.jsonl")
    finds = [r for r in recs if r["kind"] == "vote" and r["question"] == "find"]
    assert finds[0]["kept"] == ["which was planned a long time ago"]  # part 3: one worker only
    assert recs[-1]["kind"] == "result" and recs[-1]["output"] == out.output


def test_shorten_prefers_the_shortest_approved_fix_and_deletes_cleanly():
    llm = _crowd(finds=["2"] * 3, fixes=["DELETE", "planned long ago"],
                 verdict=lambda u, i: "yes")
    out = run_pipeline("find-fix-verify", {"id": "m", "text": TEXT, "goal": "shorten"}, llm)
    assert out.output == f"The meeting {REST}"


def test_a_large_part_cannot_simply_be_deleted():
    text = "Please note, the office is closed tomorrow."  # part 2 is most of the text
    llm = _crowd(finds=["2"] * 3, fixes=["DELETE", "the office closes tomorrow"], verdict=lambda u, i: "yes")
    out = run_pipeline("find-fix-verify", text, llm)
    assert out.output == "Please note, the office closes tomorrow."
    assert any("deletion was proposed for a large part" in n for n in out.notes)
    asked = [c["messages"][-1]["content"] for c in llm.calls if "Rewrite only this part" in c["messages"][-1]["content"]]
    assert all("DELETE" not in a for a in asked)


def test_no_agreement_leaves_the_text_unchanged_with_a_note(garbage):
    out = run_pipeline("find-fix-verify", TEXT, garbage)
    assert out.output == TEXT and out.complete
    assert any("no region reached agreement" in n for n in out.notes)


def test_a_tied_verification_votes_the_candidate_out():
    # verifiers who answer whichever of yes/no is offered first tie: the offer is counterbalanced
    llm = _crowd(finds=["2"] * 2, fixes=["planned long ago"], verdict=first_offered)
    out = run_pipeline("find-fix-verify", {"id": "m", "text": TEXT}, llm, settings=Settings(workers=2, voters=2))
    assert out.output == TEXT
    assert any("tied vote" in n for n in out.notes) and any("voted out" in n for n in out.notes)


def test_budget_runs_out_in_the_second_patch_and_the_first_fix_is_kept(tmp_path):
    text = "In order to win, we must act at this point in time."
    llm = rules_llm([
        ("at most 3 parts: answer with their numbers", "1, 2"),
        ("Rewrite only this part", lambda u, i: "To win" if '"In order to win"' in u else "we must act now"),
        ("after this change", "yes"),
    ])
    # find 3 + patch 1 (fix 3, verify 3) = 9; patch 2 fix = 12; its verify would need 15
    out = run_pipeline("find-fix-verify", text, llm, budget=Budget(max_calls=13), trace=tmp_path / "t.jsonl")
    assert not out.complete
    assert out.output == "To win, we must act at this point in time."
    assert out.usage["calls"] == 12
    assert any("budget exhausted: 12 of 13 LLM calls used" in n for n in out.notes)
    assert read_trace(tmp_path / "t.jsonl")[-1]["complete"] is False


def test_budget_gone_before_anything_returns_the_original():
    out = run_pipeline("find-fix-verify", TEXT, rules_llm([]), budget=Budget(max_calls=2))
    assert out.output == TEXT and not out.complete and out.usage["calls"] == 0


def test_baseline_is_one_call_and_falls_back_on_an_empty_answer():
    out = run_pipeline("find-fix-verify", TEXT, rules_llm([("Rewrite the text", "The meeting is on Monday.")]),
                       method="baseline")
    assert out.output == "The meeting is on Monday." and out.usage["calls"] == 1
    empty = run_pipeline("find-fix-verify", TEXT, rules_llm([]), method="baseline")
    assert empty.output == TEXT and any("empty answer" in n for n in empty.notes)


def test_apply_edits_handles_several_regions_and_deletions():
    t = "Basically, the plan, as you know, works."
    assert apply_edits(t, [(0, 9, ""), (t.index("as you"), t.index(", works"), "")]) == "The plan works."


def test_edit_evaluation_combines_meaning_and_goal():
    # raters: "keeps the meaning" with p=0.8; politeness 5 when the email says please, else 2
    def choice(messages, choices):
        user = messages[-1]["content"]
        if choices == ("yes", "no"):
            return [0.8, 0.2]
        polite = "please" in after(user, "very polite)").lower()
        return [1.0 if c == ("5" if polite else "2") else 0.0 for c in choices]

    ev = Evaluator(rules_llm([], choice_script=choice), raters=2)
    spec = get_pipeline("find-fix-verify")
    short = spec.evaluate(ev, {"text": "one two three four five six seven eight nine ten", "goal": "shorten"},
                          "one two three four five six seven")
    assert round(short["reduction"], 2) == 0.3 and round(short["quality"], 2) == 0.8
    polite = spec.evaluate(ev, {"text": "Send it now.", "goal": "polite"}, "Could you please send it?")
    assert polite["politeness"] == 5.0 and polite["politeness_gain"] == 3.0 and round(polite["quality"], 2) == 0.8
    proof = spec.evaluate(ev, {"text": "teh cat", "goal": "proofread", "errors": [["teh", "the"]]}, "the cat")
    assert proof["errors_fixed"] == 1.0 and round(proof["quality"], 2) == 0.8


def test_a_fix_is_fitted_into_the_middle_of_a_sentence():
    text = "We met Anna, due to the fact that it rained, and left."
    patch = "due to the fact that it rained"
    assert fit_in("Because it rained.", patch, text) == "because it rained"
    assert fit_in('"Anna was wet."', patch, text) == "Anna was wet"  # a name stays capitalised
    assert fit_in("I was wet", patch, text) == "I was wet"
    assert fit_in("Thanks.", "Thank you.", "Thank you.") == "Thanks."  # a sentence may end with a period
    llm = _crowd(finds=["2"] * 3, fixes=["Because it rained."], verdict=lambda u, i: "yes")
    assert run_pipeline("find-fix-verify", text, llm).output == "We met Anna, because it rained, and left."
