"""`crowdllm pipeline list|run|show|compare` on fake crowds: every pipeline, good and bad paths."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pipeline_crowds import garbage_llm, sensible_answer, sensible_llm

from crowdllm.cli import main
from crowdllm.pipelines import pipelines, read_trace

NAMES = list(pipelines())


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")


def test_list_shows_all_seven(capsys):
    assert main(["pipeline", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_run_writes_a_trace_that_show_renders(name, tmp_path, use_llm, capsys):
    use_llm(sensible_llm())
    trace = tmp_path / "t.jsonl"
    from crowdllm.pipelines import load_examples

    example = load_examples(name)[0]["id"]
    assert main(["pipeline", "run", name, "--example", example, "--workers", "3", "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "LLM calls" in out and str(trace) in out
    recs = read_trace(trace)
    assert recs[0]["kind"] == "start" and recs[-1]["kind"] == "result" and recs[-1]["complete"] is True
    assert main(["pipeline", "show", str(trace)]) == 0
    shown = capsys.readouterr().out
    assert "1 " in shown and "result" in shown and "complete" in shown


@pytest.mark.parametrize("name", NAMES)
def test_run_survives_a_crowd_answering_garbage(name, tmp_path, use_llm, capsys):
    use_llm(garbage_llm())
    trace = tmp_path / "t.jsonl"
    from crowdllm.pipelines import load_examples

    example = load_examples(name)[0]["id"]
    assert main(["pipeline", "run", name, "--example", example, "--trace", str(trace), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["complete"] is True and out["usage"]["calls"] >= 1


def test_run_from_a_text_file_with_a_budget(tmp_path, use_llm, capsys):
    use_llm(sensible_llm())
    src = tmp_path / "email.txt"
    src.write_text("I am writing to say that the meeting is moved to Friday afternoon.")
    trace = tmp_path / "t.jsonl"
    assert main(["pipeline", "run", "find-fix-verify", "--input", str(src), "--workers", "5",
                 "--budget-calls", "7", "--trace", str(trace)]) == 0
    assert "stopped early" in capsys.readouterr().out
    recs = read_trace(trace)
    assert recs[0]["example"]["id"] == "email" and recs[0]["settings"]["workers"] == 5
    assert recs[-1]["complete"] is False


def test_show_full_prints_prompts(tmp_path, use_llm, capsys):
    use_llm(sensible_llm())
    trace = tmp_path / "t.jsonl"
    main(["pipeline", "run", "humor", "--text", "coffee", "--trace", str(trace)])
    capsys.readouterr()
    assert main(["pipeline", "show", str(trace), "--full"]) == 0
    assert "prompt: Topic: coffee" in capsys.readouterr().out


def test_compare_prints_a_table_and_writes_csv(tmp_path, use_llm, capsys):
    use_llm(sensible_llm())
    out_csv = tmp_path / "cmp.csv"
    assert main(["pipeline", "compare", "iterative", "--n", "2", "--raters", "2", "--out", str(out_csv),
                 "--detail"]) == 0
    out = capsys.readouterr().out
    assert "pipeline vs single-LLM baseline" in out and "parallel" in out and "baseline" in out
    rows = pd.read_csv(out_csv)
    assert len(rows) == 2 * 3 and set(rows["method"]) == {"pipeline", "parallel", "baseline"}
    assert {"checks", "judged", "calls", "tokens", "seconds"} <= set(rows.columns)
    assert "judged* (same model as the workers)" in out


@pytest.mark.parametrize("argv, message", [
    (["pipeline", "run", "nope", "--text", "x"], "unknown pipeline 'nope'"),
    (["pipeline", "run", "humor"], "give exactly one input"),
    (["pipeline", "run", "humor", "--text", "x", "--example", "cats"], "give exactly one input"),
    (["pipeline", "run", "humor", "--example", "dogs"], "has no example 'dogs'"),
    (["pipeline", "run", "humor", "--text", "x", "--set", "voters"], "KEY=VALUE"),
    (["pipeline", "run", "humor", "--text", "x", "--set", "colour=red"], "unknown pipeline setting 'colour'"),
    (["pipeline", "run", "humor", "--text", "x", "--rounds", "0"], "rounds=0"),
    (["pipeline", "run", "humor", "--text", "x", "--method", "parallel"], "no method 'parallel'"),
    (["pipeline", "run", "humor", "--popquorn", "1"], "editing pipelines"),
    (["pipeline", "run", "break-it-down", "--text", "sort these"], "JSON job"),
    (["pipeline", "run", "humor", "--input", "/no/such/file.txt"], "no such input file"),
    (["pipeline", "show", "/no/such/trace.jsonl"], "no such trace file"),
    (["pipeline", "compare", "humor", "--source", "web"], "unknown example source"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, use_llm, capsys):
    use_llm(sensible_llm())
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_json_job_runs_break_it_down(tmp_path, use_llm, capsys):
    use_llm(sensible_llm())
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"kind": "sort", "job": "Smallest first.", "items": ["3", "1", "2"],
                               "first": "Which number is smaller?"}))
    assert main(["pipeline", "run", "break-it-down", "--input", str(job), "--method", "baseline", "--json",
                 "--trace", str(tmp_path / "t.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == ["1", "2", "3"]


@pytest.mark.slow
def test_run_and_compare_through_an_openai_compatible_server(tmp_path, monkeypatch, capsys):
    from fakeserver import FakeOpenAIServer

    key = "sk-pipelinetest0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    # the first answer is a server error (retried), one later answer is garbage (a worker abstains)
    with FakeOpenAIServer(answer=lambda req: sensible_answer(req.messages), api_key=key,
                          fault_plan=["500", None, None, None, "garbage"]) as server:
        trace = tmp_path / "t.jsonl"
        flags = ["--base-url", server.url, "--model", "fake-model", "--no-cache"]
        assert main(["pipeline", "run", "iterative", "--example", "lost-cat", "--rounds", "1",
                     "--trace", str(trace), *flags]) == 0, capsys.readouterr().err
        assert main(["pipeline", "compare", "humor", "--n", "1", "--raters", "1", *flags]) == 0
        assert server.fault_counts["500"] == 1 and server.fault_counts["garbage"] == 1
    recs = read_trace(trace)
    assert recs[0]["backend"]["backend"] != "fake" and recs[-1]["complete"] is True
    assert key not in trace.read_text()
    assert "HumorTool: pipeline vs single-LLM baseline" in capsys.readouterr().out
