"""Real inputs: POPQUORN email originals for the editing pipelines, POPQUORN profiles as personas."""

from __future__ import annotations

import pandas as pd
import pytest
from pipeline_crowds import sensible_llm

from crowdllm.cli import main
from crowdllm.pipelines import compare, popquorn_examples, run_pipeline
from crowdllm.pipelines._text import n_words
from crowdllm.pipelines.personas import load_personas


@pytest.fixture
def emails(shared_data):
    raw = pd.read_csv(shared_data / "popquorn" / "email_rewriting.csv", dtype=str)
    return raw


def test_popquorn_examples_are_original_emails_of_the_right_length(emails):
    picked = popquorn_examples(4, seed=3)
    assert len(picked) == 4 and picked == popquorn_examples(4, seed=3)
    originals = {str(t).strip() for t in emails["original email"]}
    by_id = dict(zip(emails["instance_id"].astype(str), emails["original email"].astype(str), strict=False))
    for ex in picked:
        assert ex["goal"] == "polite" and ex["text"] in originals
        assert ex["text"] == by_id[ex["id"].removeprefix("popquorn-")].strip()
        assert 12 <= n_words(ex["text"]) <= 80
    assert popquorn_examples(4, seed=4) != picked
    assert popquorn_examples(2, seed=3) == picked[:2]  # `--popquorn N` is the N-th of one sequence


def test_find_fix_verify_asks_for_rude_phrases_in_a_real_email(emails):
    email = popquorn_examples(1, seed=0)[0]
    llm = sensible_llm()
    out = run_pipeline("find-fix-verify", email, llm)
    assert out.complete
    finds = [c for c in llm.calls if "at most 3 parts: answer with their numbers" in c["messages"][-1]["content"]]
    assert finds and all("rude, blunt or unfriendly" in c["messages"][-1]["content"] for c in finds)
    assert email["text"] in finds[0]["messages"][-1]["content"]


def test_popquorn_personas_are_real_profiles(emails):
    people = load_personas("popquorn", 6, seed=0)
    assert len(people) == 6
    for p in people:
        for key, value in p.items():
            assert value in set(emails[key].dropna())
    llm = sensible_llm()
    run_pipeline("iterative", {"id": "x", "text": "Send it now."}, llm, personas=people)
    systems = {c["messages"][0]["content"] for c in llm.calls}
    assert len(systems) > 1 and any("You are a" in s for s in systems)


def test_cli_runs_on_a_popquorn_email_and_compares_on_two(emails, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("crowdllm.cli.pipeline.open_llm", lambda *a, **k: sensible_llm())
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["pipeline", "run", "iterative", "--popquorn", "2", "--personas", "popquorn", "--rounds", "1",
                 "--trace", str(tmp_path / "t.jsonl")]) == 0
    result = compare("find-fix-verify", sensible_llm(), source="popquorn", n=2, raters=1)
    assert set(result.rows["example"]) <= {e["id"] for e in popquorn_examples(2, seed=0)}
    assert len(result.rows) == 4 and "politeness" in result.rows.columns
