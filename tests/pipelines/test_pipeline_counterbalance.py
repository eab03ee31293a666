"""Votes that read the content: counterbalanced comparisons, find's reading of 'all'/'none', the swap test."""

from __future__ import annotations

import re

from pipeline_crowds import rules_llm

from crowdllm.llm.fake import FakeLLM
from crowdllm.pipelines import Run, Settings, read_trace, run_pipeline
from crowdllm.pipelines.bias import base_texts, damage, misspell, swap_pairs, swap_test
from crowdllm.pipelines.steps import SHORT_TEXT_PARTS, compare, find_spans, vote
from crowdllm.pipelines.worker import make_workers

GOOD = {t["text"] for t in base_texts()}


def _letters(prompt: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z])\) (.*)$", prompt, re.M))


def _reader(messages, i, params):
    """A voter that reads: picks the undamaged text, wherever it is shown."""
    return next((k for k, v in _letters(messages[-1]["content"]).items() if v in GOOD), "A")


def test_a_voter_following_position_does_not_count_and_the_trace_says_so():
    run = Run(FakeLLM("A"))
    result = compare(run, make_workers(3, "R."), "Which is better?", "the first text", "the second text", task="vote")
    assert result.winner is None and result.valid == 0  # every voter named A in both orders
    rec = [r for r in run.trace.records if r["kind"] == "vote"][-1]
    assert rec["followed_position"] == 3 and rec["picks"] == {f"w{i}": [0, 1] for i in (1, 2, 3)}
    assert any("picked the same position in both orders" in n for n in run.notes)
    # every voter was asked both orders
    shown = [list(_letters(c["messages"][-1]["content"]).values()) for c in run.llm.calls]
    assert shown.count(["the first text", "the second text"]) == 3
    assert shown.count(["the second text", "the first text"]) == 3


def test_a_voter_reading_the_texts_counts_in_either_order():
    t = base_texts()[0]
    for first, second, want in ((t["text"], misspell(t["text"]), "0"), (misspell(t["text"]), t["text"], "1")):
        run = Run(FakeLLM(_reader))
        result = compare(run, make_workers(3, "R."), "Which is better?", first, second, task="vote")
        assert result.winner == want and result.tally[want] == 3


def test_vote_orders_are_balanced_and_recorded():
    llm = rules_llm([("Pick one", "A")])
    run = Run(llm, seed=3)
    vote(run, make_workers(4, "R."), "Pick one.", ["a first long option text", "a second long option text"],
         task="v", by_name=False)
    rec = [r for r in run.trace.records if r["kind"] == "vote"][-1]
    assert sorted(map(tuple, rec["orders"].values())) == [(0, 1), (0, 1), (1, 0), (1, 0)]
    assert rec["tally"] == {"0": 2, "1": 2} and rec["tie"]  # "always A" is split evenly: no winner


def test_iterative_with_position_following_voters_keeps_the_text_and_says_it_is_unchanged(tmp_path):
    llm = rules_llm([("Write an improved version", "a different text"), ("Answer with one letter", "A")])
    out = run_pipeline("iterative", {"id": "x", "text": "draft", "goal": "improve"}, llm,
                       settings=Settings(rounds=2, voters=3), trace=tmp_path / "t.jsonl")
    assert out.output == "draft" and out.unchanged
    assert out.status == "complete \u00b7 unchanged: the output equals the input"
    assert read_trace(tmp_path / "t.jsonl")[-1]["unchanged"] is True


def test_find_reads_all_of_them_so_the_misspelled_sentence_gets_fixed():
    # the new user's story: one finder names part 1, one part 2, the third says "All parts contain ..."
    text = "Teh weathr was nice, and we walkd to the parc."
    finds = ["1", "2", "All parts contain spelling or grammar errors."]
    fixes = {"Teh weathr was nice": "The weather was nice", "and we walkd to the parc": "and we walked to the park"}
    llm = rules_llm([
        ("answer with their numbers", lambda u, i: finds[i]),
        ("Rewrite only this part", lambda u, i: next(v for k, v in fixes.items() if f'"{k}"' in u)),
        ("after this change", "yes"),
    ])
    out = run_pipeline("find-fix-verify", {"id": "t", "text": text, "goal": "proofread"}, llm)
    assert out.output == "The weather was nice, and we walked to the park."
    assert not out.unchanged and out.status == "complete"


def test_every_part_named_but_none_agreed_falls_back_to_the_union_on_a_short_text():
    text = "We will, in the event that it rains, move the party indoors."  # 3 parts
    picks = ["1", "2", "3"]
    run = Run(rules_llm([("answer with their numbers", lambda u, i: picks[i])]))
    spans = find_spans(run, make_workers(3, "R."), text, "Which parts are wordy?", agree=2, max_spans=2)
    assert [text[a:b] for a, b in spans] == ["We will", "in the event that it rains"]  # most-named, then order
    assert any("named every part between them" in n and "union" in n for n in run.notes)
    rec = [r for r in run.trace.records if r["kind"] == "vote"][-1]
    assert rec["fallback"] == "union"


def test_every_part_named_on_a_long_text_leaves_it_unchanged_and_says_so():
    text = "One, two, three, four, five, six."
    assert SHORT_TEXT_PARTS < 6
    picks = ["1, 2", "3, 4", "5, 6"]
    run = Run(rules_llm([("answer with their numbers", lambda u, i: picks[i])]))
    assert find_spans(run, make_workers(3, "R."), text, "Which?", agree=2) == []
    assert any("left as it is" in n for n in run.notes)
    # not every part named: no fallback, no such note
    run2 = Run(rules_llm([("answer with their numbers", "1")]))
    assert find_spans(run2, make_workers(3, "R."), text, "Which?", agree=4) == []
    assert not any("every part" in n for n in run2.notes)


def test_damaged_copies_are_clearly_worse():
    entry = base_texts()[0]
    typos = misspell(entry["text"], seed=1)
    assert typos != entry["text"] and len(typos.split()) == len(entry["text"].split())
    assert sum(a != b for a, b in zip(typos.split(), entry["text"].split(), strict=True)) == 4
    dropped = damage(entry, "dropped")
    assert len(dropped.split(". ")) == len(entry["text"].split(". ")) - 1
    assert damage(entry, "contradiction").endswith(entry["contradiction"])
    pairs = swap_pairs(9)
    assert {p["damage"] for p in pairs} == {"typos", "dropped", "contradiction"}
    assert all(p["better"] in GOOD and p["worse"] not in GOOD for p in pairs)


def test_swap_test_tells_a_position_follower_from_a_reader():
    pos = swap_test(FakeLLM("A"), n=6, voters=3).summary.set_index("order")
    assert pos.loc["better first", "single better"] == 1.0 and pos.loc["better second", "single better"] == 0.0
    assert (pos["follows position"] == 1.0).all()
    assert (pos["step better"] == 0.0).all() and (pos["step no winner"] == 1.0).all()
    reader = swap_test(FakeLLM(_reader), n=6, voters=3)
    s = reader.summary.set_index("order")
    assert (s["single better"] == 1.0).all() and (s["follows position"] == 0.0).all()
    assert (s["step better"] == 1.0).all()
    # 6 pairs x (3 voters x 2 orders single + 2 steps x 3 voters x 2 orders)
    assert reader.usage["calls"] == 6 * (6 + 12)


def test_bias_command_prints_the_swap_table_and_writes_rows(tmp_path, monkeypatch, capsys):
    from crowdllm.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr("crowdllm.cli.pipeline.open_llm", lambda *a, **k: FakeLLM("A"))
    out = tmp_path / "swap.csv"
    assert main(["pipeline", "bias", "--n", "3", "--voters", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "swap test" in printed and "follows position" in printed
    import pandas as pd

    rows = pd.read_csv(out)
    assert len(rows) == 6 and set(rows["step_winner"]) == {"none"}
    assert main(["pipeline", "bias", "--n", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --n must be 1..72") and len(err.strip().splitlines()) == 1


def _leaning_reader(messages, choices):
    """Log-probs of a voter that leans to A by a constant but reads a little: P(A) is 0.9 when A is the
    undamaged text and 0.6 when it is the damaged one."""
    a_good = _letters(messages[-1]["content"]).get("A") in GOOD
    p_a = 0.9 if a_good else 0.6
    return [p_a, 1 - p_a]


def test_log_prob_comparison_cancels_a_constant_lean_to_one_letter():
    t = base_texts()[1]
    worse = misspell(t["text"])
    for first, second, want in ((t["text"], worse, "0"), (worse, t["text"], "1")):
        run = Run(FakeLLM("A", choice_script=_leaning_reader))
        res = compare(run, make_workers(1, "R."), "Which is better?", first, second, task="vote", by="logprobs")
        assert res.winner == want  # (0.9 + (1 - 0.6)) / 2 = 0.65 for the better text, in either order
        rec = [r for r in run.trace.records if r["kind"] == "vote"][-1]
        assert rec["probs"]["w1"][int(want)] == 0.65
        # the same voter answering by its top letter always says A: both orders -> no vote counted
        run2 = Run(FakeLLM("A", choice_script=_leaning_reader))
        assert compare(run2, make_workers(1, "R."), "Which?", first, second, task="vote").winner is None
    summary = swap_test(FakeLLM("A", choice_script=_leaning_reader), n=4, voters=1, logprobs=True).summary
    assert (summary["log-prob step better"] == 1.0).all() and (summary["step better"] == 0.0).all()


def test_iterative_can_read_its_votes_from_log_probs():
    import pytest

    from crowdllm.errors import ConfigError

    def choice(messages, choices):  # prefers the version ending in "!", leaning to A by a constant
        opts = _letters(messages[-1]["content"])
        return [0.9, 0.1] if opts.get("A", "").endswith("!") else [0.6, 0.4]

    llm = FakeLLM(lambda m, i, p: "Please come!", choice_script=choice)
    out = run_pipeline("iterative", {"id": "x", "text": "Come.", "goal": "polite"}, llm,
                       settings=Settings(rounds=1, voters=1).updated({"compare_by": "logprobs"}))
    assert out.output == "Please come!"
    assert [c["kind"] for c in llm.calls] == ["generate", "choice_probs", "choice_probs"]
    with pytest.raises(ConfigError, match="compare_by='coin' must be 'answers', 'logprobs' or 'checklist'"):
        Settings().updated({"compare_by": "coin"})


def _checklist_reader(messages, choices):
    """Log-probs of a voter answering the checklist: it spots misspellings and sees what a text lacks."""
    user = messages[-1]["content"]
    if "spelling mistakes" in user:
        text = user.split("Text:\n", 1)[1].split("\n\n", 1)[0]
        return [0.1, 0.9] if text in GOOD else [0.7, 0.3]
    if "state every fact" in user:
        t1 = user.split("Text 1:\n", 1)[1].split("\n\nText 2:", 1)[0]
        return [0.8, 0.2] if t1 in GOOD else [0.4, 0.6]
    return [0.5, 0.5]  # contradictions: no idea


def test_checklist_comparison_asks_about_each_version_alone():
    import pytest

    t = base_texts()[2]
    worse = misspell(t["text"])
    for first, second, want in ((t["text"], worse, "0"), (worse, t["text"], "1")):
        run = Run(FakeLLM("A", choice_script=_checklist_reader))
        res = compare(run, make_workers(1, "R."), "Which is better?", first, second, task="vote", by="checklist")
        assert res.winner == want
        asked = [c["messages"][-1]["content"] for c in run.llm.calls]
        assert len(asked) == 2 * 2 + 2 and not any("A) " in a for a in asked)  # no lettered options at all
        rec = [r for r in run.trace.records if r["kind"] == "vote"][-1]
        good, bad = rec["scores"]["w1"][int(want)], rec["scores"]["w1"][1 - int(want)]
        assert good == pytest.approx(0.9 + 0.5 + 0.8) and bad == pytest.approx(0.3 + 0.5 + 0.4)
    s = swap_test(FakeLLM("A", choice_script=_checklist_reader), n=6, voters=1, by=["checklist"]).summary
    typos_only = s["checklist step better"]
    assert (typos_only >= 0.5).all()  # the reader sees typos and dropped sentences, not contradictions
