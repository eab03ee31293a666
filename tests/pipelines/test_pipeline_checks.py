"""Checks that need no model, and the user's own inputs (`pipeline compare NAME --inputs FILE.jsonl`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pipeline_crowds import sensible_llm

from crowdllm.cli import main
from crowdllm.errors import CrowdDataError
from crowdllm.pipelines import read_trace
from crowdllm.pipelines.checks import (
    CheckError,
    checks_for,
    headings,
    load_inputs,
    run_checks,
    validate_checks,
)


def _passed(checks, original, output):
    return {r.name: r.passed for r in run_checks(checks, original, output)}


def test_ratio_keep_and_avoid():
    original = "one two three four five six seven eight nine ten"
    assert _passed({"max_ratio": 0.6}, original, "one two three four five six") == {"max_ratio": True}
    assert _passed({"max_ratio": 0.6}, original, "one two three four five six seven") == {"max_ratio": False}
    assert _passed({"min_ratio": 0.5}, original, "one two three four") == {"min_ratio": False}
    assert _passed({"keep": ["Thursday", "room 7|room seven"]}, "", "On Thursday, room seven.") == {"keep": True}
    assert _passed({"keep": ["Thursday", "catering"]}, "", "On Thursday.") == {"keep": False}
    assert _passed({"avoid": ["ASAP"]}, "", "Send it asap!") == {"avoid": False}


def test_fix_means_the_typos_fixed_and_nothing_else_changed():
    original = "See you tommorow at the libary."
    fixes = {"tommorow": "tomorrow", "libary": "library"}
    assert _passed({"fix": fixes}, original, "See you tomorrow at the library.") == {"fix": True, "unchanged": True}
    # fixed, but also reworded: the second check fails and says where
    res = run_checks({"fix": fixes}, original, "See you tomorrow in the library.")
    assert [(r.name, r.passed) for r in res] == [("fix", True), ("unchanged", False)]
    assert "expected 'at', got 'in'" in res[1].why
    assert _passed({"fix": fixes}, original, original) == {"fix": False, "unchanged": False}


def test_sections_present_once_and_order():
    article = "# Bikes\n\n## Origins\n\nText one here and more.\n\n## Parts\n\nText two here and more."
    assert headings(article) == ["Origins", "Parts"]
    assert _passed({"sections": 2}, "", article) == {"sections": True}
    assert _passed({"sections": ["origins", "parts", "uses"]}, "", article) == {"sections": False}
    twice = article + "\n\n## Origins\n\nText three here and more."
    res = run_checks({"sections": 2}, "", twice)[0]
    assert not res.passed and "repeated: origins" in res.why
    assert _passed({"order": ["mouse", "cat", "horse"]}, "", "1. mouse\n2. cat\n3. horse") == {"order": True}
    assert _passed({"order": ["mouse", "cat", "horse"]}, "", "1. cat\n2. mouse\n3. horse") == {"order": False}


@pytest.mark.parametrize("raw, message", [
    ({"max_ratio": "0.6"}, "'max_ratio' must be a number"),
    ({"keep": "Thursday"}, "'keep' must be a non-empty list"),
    ({"fix": ["tommorow", "tomorrow"]}, "'fix' must be an object"),
    ({"colour": 1}, "unknown check 'colour'"),
    ({"sections": 0}, "'sections' must be a number >= 1"),
    ("max_ratio=0.6", "'checks' must be an object"),
])
def test_badly_declared_checks_name_the_check(raw, message):
    with pytest.raises(CheckError, match=message):
        validate_checks(raw)


def test_builtin_examples_carry_or_derive_their_checks():
    from crowdllm.pipelines import load_examples

    ffv = {e["id"]: e for e in load_examples("find-fix-verify")}
    assert checks_for("find-fix-verify", ffv["wordy-meeting"])["max_ratio"] == 0.8
    assert checks_for("find-fix-verify", ffv["typos-library"])["fix"]["libary"] == "library"
    mr = load_examples("map-reduce")[0]
    assert checks_for("map-reduce", mr) == {"keep": mr["must_cover"], "max_words": 400, "sections": 3}
    bid = load_examples("break-it-down")[0]
    assert checks_for("break-it-down", bid)["order"] == bid["gold"]


LINES = [
    {"id": "memo", "text": "I am writing to say that the meeting on Thursday moves to room 7.", "task": "shorten",
     "checks": {"max_ratio": 0.8, "keep": ["Thursday", "room 7"]}},
    {"text": "See you tommorow.", "task": "proofread", "checks": {"fix": {"tommorow": "tomorrow"}}},
]


def _write(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_inputs_become_examples_with_their_task_and_checks(tmp_path):
    exs = load_inputs(_write(tmp_path / "in.jsonl", LINES), "find-fix-verify", "text")
    assert [e["id"] for e in exs] == ["memo", "line2"] and [e["goal"] for e in exs] == ["shorten", "proofread"]
    assert exs[1]["checks"] == {"fix": {"tommorow": "tomorrow"}}
    topics = load_inputs(_write(tmp_path / "t.jsonl", [{"text": "volcanoes", "task": "article",
                                                        "checks": {"sections": 2}}]), "map-reduce", "topic")
    assert topics[0]["topic"] == "volcanoes"


@pytest.mark.parametrize("bad, message", [
    ("{not json", "line 2: not valid JSON"),
    ('["a list"]', "line 2: expected a JSON object"),
    ({"text": "", "task": "shorten"}, "line 2: 'text' must be a non-empty string"),
    ({"text": "x", "task": "summarise"}, "line 2: 'task' must be one of shorten, proofread, polite, improve"),
    ({"text": "x", "task": "shorten", "checks": {"max_ratio": 2000}}, "line 2: check 'max_ratio' must be"),
    ({"text": "x", "task": "shorten", "chekcs": {}}, "line 2: unknown field 'chekcs'"),
    ({"id": "memo", "text": "x", "task": "shorten"}, "line 2: id 'memo' is used twice"),
])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, bad, message):
    path = _write(tmp_path / "in.jsonl", [LINES[0], bad])
    with pytest.raises(CrowdDataError, match=message) as err:
        load_inputs(path, "find-fix-verify", "text")
    assert str(err.value).startswith(f"{path}, line 2: ")


def test_compare_runs_the_users_inputs_with_a_trace_folder_each(tmp_path, use_llm, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    use_llm(sensible_llm())
    inputs = _write(tmp_path / "in.jsonl", LINES)
    out_csv, traces = tmp_path / "rows.csv", tmp_path / "traces"
    assert main(["pipeline", "compare", "find-fix-verify", "--inputs", str(inputs), "--no-judge",
                 "--trace-dir", str(traces), "--out", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "checks" in out and "no judge" in out and "per input" in out
    rows = pd.read_csv(out_csv)
    assert list(rows["example"]) == ["memo", "memo", "line2", "line2"]
    assert rows["judged"].isna().all() and rows["checks_total"].tolist() == [2, 2, 2, 2]
    for ex in ("memo", "line2"):
        assert sorted(p.name for p in (traces / ex).iterdir()) == ["baseline.jsonl", "pipeline.jsonl"]
    assert read_trace(traces / "memo" / "pipeline.jsonl")[0]["example"]["checks"]["keep"] == ["Thursday", "room 7"]


@pytest.mark.parametrize("argv, message", [
    (["--inputs", "BAD"], "line 1: 'task' must be one of"),
    (["--inputs", "/no/such.jsonl"], "no such inputs file"),
    (["--inputs", "GOOD", "--n", "2"], "--inputs cannot go with --source or --n"),
    (["--no-judge", "--judge-model", "m"], "--no-judge cannot go with"),
])
def test_compare_input_errors_are_one_line_and_exit_2(argv, message, tmp_path, use_llm, capsys):
    use_llm(sensible_llm())
    bad = _write(tmp_path / "bad.jsonl", [{"text": "x", "task": "joke"}])
    good = _write(tmp_path / "good.jsonl", LINES)
    argv = [str(bad) if a == "BAD" else str(good) if a == "GOOD" else a for a in argv]
    assert main(["pipeline", "compare", "find-fix-verify", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_judge_on_another_server_does_the_judging(tmp_path, capsys, monkeypatch):
    from pipeline_crowds import sensible_answer

    from fakeserver import FakeOpenAIServer

    monkeypatch.setenv("COLUMNS", "250")
    inputs = _write(tmp_path / "in.jsonl", LINES[:1])
    with FakeOpenAIServer(answer=lambda req: sensible_answer(req.messages), model="worker-model") as workers, \
            FakeOpenAIServer(answer=lambda req: "Yes", model="judge-model") as judge:
        assert main(["pipeline", "compare", "find-fix-verify", "--inputs", str(inputs), "--raters", "2",
                     "--base-url", workers.url, "--model", "worker-model", "--no-cache",
                     "--judge-base-url", judge.url, "--judge-model", "judge-model",
                     "--trace-dir", str(tmp_path / "tr")]) == 0
        judged_requests, worker_requests = judge.answered, workers.answered
    out = capsys.readouterr().out
    assert "judged* (judge-model)" in out
    assert judged_requests == 2 * 2  # meaning kept: 2 raters, for the pipeline and the baseline
    assert worker_requests >= 1 + 3  # the baseline and at least the finders
