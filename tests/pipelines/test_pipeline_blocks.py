"""Building blocks: text helpers, trace, budget, workers and personas, the Run gate, crowd steps."""

from __future__ import annotations

import json

import pytest
from pipeline_crowds import VOTE, answer_for, first_offered, rules_llm

from crowdllm.errors import ConfigError, CrowdDataError
from crowdllm.llm.fake import FakeLLM
from crowdllm.pipelines import Budget, BudgetExceeded, Run, Settings, Trace, read_trace, usage_of
from crowdllm.pipelines._text import clean_answer, locate, mentions, parse_list
from crowdllm.pipelines.compose import loop, map_parts
from crowdllm.pipelines.steps import agreed, decide, find_spans, rate, segments, tally, verify, vote
from crowdllm.pipelines.worker import make_workers


# ---------------------------------------------------------------------- text helpers
def test_clean_answer_strips_chatter_quotes_and_fences():
    assert clean_answer('Sure! Here is the rewritten text:\n"The meeting moved to room 7."') == \
        "The meeting moved to room 7."
    assert clean_answer("```\nshort text\n```") == "short text"
    assert clean_answer("New text.\n\nNote: I removed two words.") == "New text."


def test_parse_list_handles_bullets_numbers_commas_and_preambles():
    assert parse_list("Here are the headings:\n1. Origins\n2) Parts\n- Uses\n* Uses") == ["Origins", "Parts", "Uses"]
    assert parse_list("beans, mugs, mornings") == ["beans", "mugs", "mornings"]
    assert parse_list("NONE") == []
    assert parse_list("a\nb\nc\nd", max_items=2) == ["a", "b"]


def test_locate_is_exact_then_case_and_space_insensitive():
    text = "The  Meeting was moved."
    assert locate("Meeting was", text) == (5, 16)
    assert locate("the meeting WAS", text) == (0, 16)
    assert locate("not here", text) is None


def test_mentions_matches_word_prefixes_and_alternatives():
    assert mentions("Pedals turn the chain.", "pedal")
    assert mentions("It opens on Tue.", "tuesday|tue")
    assert not mentions("A red car.", "bicycle")
    assert mentions("a first-aid kit", "first aid")


# ---------------------------------------------------------------------- trace
def test_trace_is_written_line_by_line_and_read_back(tmp_path):
    path = tmp_path / "t.jsonl"
    tr = Trace(path)
    tr.write("start", pipeline="x")
    with tr.step("find"):
        tr.write("call", worker="w1", answer="a", prompt_tokens=3, completion_tokens=2, seconds=0.5)
        # flushed already: another reader sees both lines while the run goes on
        assert len(path.read_text().splitlines()) == 3
    tr.close()
    recs = read_trace(path)
    assert [r["kind"] for r in recs] == ["start", "step", "call"]
    assert recs[2]["step"] == "find"
    assert usage_of(recs) == {"calls": 1, "prompt_tokens": 3, "completion_tokens": 2, "seconds": 0.5,
                              "cached": 0, "errors": 0}


def test_trace_never_holds_api_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "abcdefgh12345678secret")
    path = tmp_path / "t.jsonl"
    with Trace(path) as tr:
        tr.write("start", backend={"backend": "openai", "api_key": "xyz", "model": "m"},
                 note="key sk-ABCDEFGHIJKLMNOPQRST and abcdefgh12345678secret")
    raw = path.read_text()
    assert "xyz" not in raw and "sk-ABCDEFGHIJKLMNOPQRST" not in raw and "abcdefgh12345678secret" not in raw
    assert json.loads(raw)["backend"] == {"backend": "openai", "model": "m"}


def test_read_trace_skips_a_cut_off_last_line_but_names_a_bad_middle_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"kind": "start"}\n{"kind": "call", "ans')
    assert [r["kind"] for r in read_trace(path)] == ["start"]
    path.write_text('{"kind": "start"}\nnot json\n{"kind": "result"}\n')
    with pytest.raises(CrowdDataError, match=r"t.jsonl, row 2"):
        read_trace(path)
    with pytest.raises(CrowdDataError, match="no such trace"):
        read_trace(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------------- budget and settings
def test_budget_refuses_the_call_that_would_go_over():
    b = Budget(max_calls=5)
    b.reserve(3)
    with pytest.raises(BudgetExceeded, match="3 of 5 LLM calls used"):
        b.reserve(3)
    assert b.calls == 3  # nothing booked by the refused request
    b.reserve(2)
    t = Budget(max_tokens=10)
    t.reserve(1)
    t.spend_tokens(12)
    with pytest.raises(BudgetExceeded, match="tokens"):
        t.reserve(1)
    with pytest.raises(ConfigError, match="max_calls"):
        Budget(max_calls=-1)


def test_settings_validate_and_take_string_overrides():
    s = Settings().updated({"workers": "5", "temperature": "0.2", "agree": None})
    assert (s.workers, s.temperature, s.agree) == (5, 0.2, 2)
    with pytest.raises(ConfigError, match="unknown pipeline setting 'wrkers'"):
        Settings().updated({"wrkers": 2})
    with pytest.raises(ConfigError, match="rounds=0"):
        Settings(rounds=0)
    with pytest.raises(ConfigError, match="not a int"):
        Settings().updated({"voters": "many"})


# ---------------------------------------------------------------------- workers and personas
def test_a_persona_becomes_one_sentence_after_the_role():
    from crowdllm.llm.prompts import persona_sentence

    profile = {"gender": "Woman", "age": "25-29", "occupation": "Student", "hobby": float("nan")}
    w = make_workers(1, "You check texts.", personas=[profile])[0]
    system = w.messages("task")[0]["content"]
    assert system == "You check texts. " + persona_sentence(profile)
    assert "woman" in system and "nan" not in system
    assert make_workers(1, "You check texts.")[0].system_prompt() == "You check texts."


def test_workers_take_successive_personas_from_the_pool():
    pool = [{"gender": "Woman"}, {"gender": "Man"}, {"gender": "Non-binary"}]
    run = Run(FakeLLM("x"), personas=pool)
    first = run.workers(2, "Role.")
    second = run.workers(2, "Role.")
    assert [w.persona["gender"] for w in first + second] == ["Woman", "Man", "Non-binary", "Woman"]
    assert first[0].messages("Do it.")[0]["content"].startswith("Role. You are a woman")


# ---------------------------------------------------------------------- the Run gate
def test_identical_prompts_become_samples_and_every_call_is_traced():
    llm = FakeLLM(lambda m, i, p: f"answer {i}")
    run = Run(llm, seed=3)
    answers = run.ask_each(make_workers(3, "Role."), "Same task", task="t")
    assert answers == ["answer 0", "answer 1", "answer 2"]  # three samples, not three copies
    assert len({json.dumps(c["params"]) for c in llm.calls}) == 1 and llm.calls[0]["params"]["n"] == 3
    calls = [r for r in run.trace.records if r["kind"] == "call"]
    assert [c["worker"] for c in calls] == ["w1", "w2", "w3"]
    assert run.usage["calls"] == 3 and run.usage["tokens"] == sum(c["prompt_tokens"] + c["completion_tokens"]
                                                                  for c in calls)


def test_the_seed_makes_runs_repeatable_and_changes_between_calls():
    seeds = []
    llm = FakeLLM(lambda m, i, p: (seeds.append(p.seed), "a")[1])
    run = Run(llm, seed=1)
    run.ask(make_workers(1, "R.")[0], "q", task="t")
    run.ask(make_workers(1, "R.")[0], "q", task="t")
    again = []
    run2 = Run(FakeLLM(lambda m, i, p: (again.append(p.seed), "a")[1]), seed=1)
    run2.ask(make_workers(1, "R.")[0], "q", task="t")
    assert seeds[0] != seeds[1] and again[0] == seeds[0]


def test_step_end_records_the_cost_of_the_step():
    run = Run(FakeLLM("one two"))
    with run.step("s"):
        run.ask_each(make_workers(2, "R."), ["a", "b"], task="t")
    end = run.trace.records[-1]
    assert end["kind"] == "step_end" and end["calls"] == 2 and end["completion_tokens"] == 4


# ---------------------------------------------------------------------- crowd steps
def test_tally_reports_ties_and_abstentions():
    assert tally({"a": "yes", "b": "yes", "c": "no"}, ["yes", "no"]) == ({"yes": 2, "no": 1}, "yes", False)
    assert tally({"a": "yes", "b": "no", "c": None}, ["yes", "no"]) == ({"yes": 1, "no": 1}, None, True)
    assert tally({"a": None}, ["yes", "no"]) == ({"yes": 0, "no": 0}, None, False)


def test_agreed_keeps_items_named_by_k_workers():
    named = {"w1": ["Bought", "sold"], "w2": ["bought"], "w3": ["sold", "flew", "flew"]}
    assert agreed(named, 2) == ["Bought", "sold"]
    assert agreed(named, 3) == []


def test_vote_maps_shuffled_letters_back_to_options():
    # every voter picks the option that says "best", wherever the shuffle put it
    llm = rules_llm([(VOTE, lambda u, i: answer_for(u, lambda o: next(v for v in o.values()
                                                                                           if "best" in v)))])
    run = Run(llm, seed=0)
    result = vote(run, make_workers(5, "R."), "Pick one.", ["plain", "the best one", "meh"], task="v")
    assert result.winner == "1" and result.tally == {"0": 0, "1": 5, "2": 0} and result.unanimous


def test_short_options_are_answered_by_name_and_long_ones_by_letter():
    # voters choose 'mouse' among short options, and the shorter version among long ones
    llm = rules_llm([(VOTE, lambda u, i: answer_for(u, lambda o: min(o.values(), key=lambda v: (v != "mouse", len(v)))))])
    run = Run(llm, seed=1)
    short = vote(run, make_workers(3, "R."), "Which is lighter?", ["horse", "mouse"], task="v")
    assert short.winner == "1"  # 'mouse', copied by every voter
    prompts = [c["messages"][-1]["content"] for c in llm.calls]
    assert all("- horse" in p and "copied exactly" in p for p in prompts)
    long_options = ["a first version of the text that is rather long", "a second, shorter version"]
    assert vote(run, make_workers(3, "R."), "Which is better?", long_options, task="v").winner == "1"
    assert "A) " in llm.calls[-1]["messages"][-1]["content"]
    # answers naming no option (or a version's text when only letters count) abstain
    odd = Run(rules_llm([(VOTE, "the heavier one")]))
    assert vote(odd, make_workers(2, "R."), "Which?", ["horse", "mouse"], task="v").winner is None
    # a lettered vote answered by copying an option back is read as that option, wherever it was shown
    lettered = Run(rules_llm([(VOTE, "horse")]))
    assert vote(lettered, make_workers(2, "R."), "Which?", ["horse", "mouse"], task="v", by_name=False).winner == "0"
    neither = Run(rules_llm([(VOTE, "a donkey")]))
    assert vote(neither, make_workers(2, "R."), "Which?", ["horse", "mouse"], task="v", by_name=False).valid == 0


def test_a_tied_verify_goes_to_the_default_with_a_note():
    # voters who answer whichever word is offered first: half are offered "yes or no", half "no or yes"
    llm = rules_llm([("Is it fine?", first_offered)])
    run = Run(llm)
    result = verify(run, make_workers(2, "R."), "Is it fine?", task="verify")
    assert result.tie and result.winner is None
    offered = [c["messages"][-1]["content"].splitlines()[-1] for c in llm.calls]
    assert sorted(offered) == ["Answer no or yes.", "Answer yes or no."]
    orders = next(r for r in run.trace.records if r["kind"] == "vote")["orders"]
    assert sorted(orders.values()) == [["no", "yes"], ["yes", "no"]]  # the trace says who saw which
    assert decide(run, result, default="no", what="check") == "no"
    assert any("check: tie" in n for n in run.notes)


def test_garbage_votes_abstain_and_ratings_average_the_valid_ones():
    llm = rules_llm([("Answer with one number", lambda u, i: ["4", "banana", "2"][i])])
    run = Run(llm)
    r = rate(run, make_workers(3, "R."), "How good?", "text", task="rate")
    assert r.ratings == {"w1": 4, "w2": None, "w3": 2} and r.mean == 3.0 and r.valid == 2
    assert any("1 rating(s) unusable" in n for n in run.notes)


def test_segments_are_the_clauses_between_punctuation():
    text = "Pi is 3.14, roughly. Next line:\nthe end!"
    assert [text[a:b] for a, b in segments(text)] == ["Pi is 3.14", "roughly", "Next line", "the end"]


def test_find_spans_keeps_parts_named_by_enough_workers():
    text = "We will, in the event that it rains, move the party indoors."
    picks = ["2", "Parts 2 and 3.", "3, 9"]
    run = Run(rules_llm([("at most 3 parts: answer with their numbers", lambda u, i: picks[i])]))
    spans = find_spans(run, make_workers(3, "R."), text, "Which parts are wordy?", agree=3)
    assert spans == []
    run2 = Run(rules_llm([("at most 3 parts: answer with their numbers", lambda u, i: picks[i])]))
    spans2 = find_spans(run2, make_workers(3, "R."), text, "Which parts are wordy?", agree=2)
    assert [text[a:b] for a, b in spans2] == ["in the event that it rains", "move the party indoors"]
    assert any("do not exist" in n for n in run2.notes)  # part 9
    shown = [r for r in run2.trace.records if r["kind"] == "call"][-1]  # the parts are listed by number
    assert "2. in the event that it rains" in shown["messages"][-1]["content"]
    run3 = Run(rules_llm([("at most 3 parts: answer with their numbers", "NONE")]))
    assert find_spans(run3, make_workers(2, "R."), text, "Which?", agree=1) == []
    assert sum("said no part needs work" in n for n in run3.notes) == 2  # "none" is an answer, not garbage
    run4 = Run(rules_llm([("at most 3 parts: answer with their numbers", "%%% ???")]))
    assert find_spans(run4, make_workers(2, "R."), text, "Which?", agree=1) == []
    assert sum("named no part; abstained" in n for n in run4.notes) == 2


def test_loop_stops_on_its_criterion_and_map_parts_names_steps():
    run = Run(FakeLLM("x"))
    assert loop(run, 0, lambda s, r: s + 1, rounds=10, until=lambda s: s >= 3) == 3
    assert map_parts(run, ["a", "b"], lambda i, p: p * 2, name="part") == ["aa", "bb"]
    names = [r["name"] for r in run.trace.records if r["kind"] == "step"]
    assert names == ["round 1", "round 2", "round 3", "part 1", "part 2"]
