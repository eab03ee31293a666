"""The CLI: `llm ask`, `reference`, `cache info|clear`, and the shared backend flags."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from crowdllm.cli import main
from crowdllm.cli._backend import BackendOptions, with_backend_options
from fakeserver import FakeOpenAIServer, FakeRequest


def level_answer(req: FakeRequest) -> str:
    m = re.search(r"level (\d)", req.last_user)
    return f"Rating: {m.group(1)}" if m else "The sky is blue."


@pytest.fixture
def crowd_file(tmp_path: Path, synthetic) -> Path:  # noqa: ANN001
    merged = synthetic.dataset.merged()
    merged = merged[merged["task"].isin(synthetic.dataset.tasks["task"].iloc[:5])].copy()
    levels = {t: 1 + i for i, t in enumerate(sorted(merged["task"].unique()))}
    merged["text"] = [f"level {levels[t]} text" for t in merged["task"]]
    path = tmp_path / "crowd.csv"
    merged.to_csv(path, index=False)
    return path


def test_ask_answers_from_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAIServer(answer=level_answer) as server:
        rc = main(["llm", "ask", "Is the sky blue?", "--base-url", server.url, "--model", "fake-model"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == "The sky is blue."


def test_reference_writes_references_and_usage_then_reruns_from_cache(
        tmp_path: Path, crowd_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "refs.csv"
    with FakeOpenAIServer(answer=level_answer) as server:
        args = ["reference", "--dataset", str(crowd_file), "--strategy", "zero-shot", "--k", "3",
                "--base-url", server.url, "--model", "fake-model", "--out", str(out), "--quiet"]
        assert main(args) == 0
        assert server.answered == 5 * 3
        first = capsys.readouterr()
        assert main(args) == 0
        assert server.answered == 5 * 3  # the rerun made no call
        second = capsys.readouterr()
    refs = pd.read_csv(out)
    assert sorted(refs["y_ref"]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert "wrote 5 references" in first.out and "15 calls" in first.err
    assert "0 calls, 15 cache hits" in second.err
    usage = json.loads((tmp_path / "refs.csv.usage.json").read_text())
    assert usage["calls"] == 0 and usage["cache_hits"] == 15
    assert "OPENAI_API_KEY" not in (tmp_path / "refs.csv.usage.json").read_text()


def test_reference_limit_and_no_cache(tmp_path: Path, crowd_file: Path) -> None:
    with FakeOpenAIServer(answer=level_answer) as server:
        args = ["reference", "--dataset", str(crowd_file), "--strategy", "logprob", "--limit", "2", "--no-cache",
                "--base-url", server.url, "--model", "fake-model", "--out", str(tmp_path / "r.parquet"), "--quiet"]
        assert main(args) == 0
        assert main(args) == 0
        assert server.answered == 4  # no cache: asked twice
    assert len(pd.read_parquet(tmp_path / "r.parquet")) == 2


def test_reference_with_two_wordings_asks_each_task_once_per_wording(tmp_path: Path, crowd_file: Path) -> None:
    rude = tmp_path / "rude.toml"
    rude.write_text('[rating]\nsystem = "You judge how rude comments are."\n'
                    'instructions = "How rude is it, {low} to {high}?"\nanswer_prefix = "Rating: "\n')
    systems: list[str] = []

    def answer(req: FakeRequest) -> str:
        systems.append(req.messages[0]["content"])
        return level_answer(req)

    with FakeOpenAIServer(answer=answer) as server:
        args = ["reference", "--dataset", str(crowd_file), "--limit", "2", "--template", "default", "--template",
                str(rude), "--base-url", server.url, "--model", "fake-model", "--out", str(tmp_path / "r.csv"),
                "--quiet"]
        assert main(args) == 0
        assert server.answered == 4
    refs = pd.read_csv(tmp_path / "r.csv")
    assert len(refs) == 2 and (refs["n_calls"] == 2).all() and {"y_ref_1", "y_ref_2"} <= set(refs.columns)
    assert len(systems) == 4 and sum(s.startswith("You judge how rude comments are.") for s in systems) == 2


@pytest.mark.parametrize("extra, message", [
    (["--template", "default", "--template", "default", "--strategy", "zero-shot", "--base-url",
      "http://127.0.0.1:9/v1", "--model", "m"], "error: --template: several wordings are averaged for log-prob"),
    (["--strategy", "best-of-n"], "--strategy"),
    (["--out", "refs.xlsx"], "--out"),
    (["--concurrency", "0", "--base-url", "http://127.0.0.1:9/v1"], "--concurrency must be at least 1 (got 0)"),
    # the library names its arguments (limit, k, model_path, ...): the command line says the flags
    (["--limit", "0", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"], "error: --limit must be at least 1"),
    (["--k", "0", "--strategy", "zero-shot", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
     "error: --k must be at least 1"),
    (["--timeout", "0", "--base-url", "http://127.0.0.1:9/v1"], "error: --timeout must be positive"),
    (["--base-url", "localhost:8000"], "error: --base-url 'localhost:8000' is not an http(s) URL"),
    (["--base-url", "http://127.0.0.1:9/v1", "--model-path", "x.gguf"],
     "error: --model-path is for the embedded model; with --base-url name the served model instead"),
])
def test_bad_options_are_one_line_errors_with_exit_code_2(
        crowd_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    args = ["reference", "--dataset", str(crowd_file), "--out", "refs.csv", *extra]
    # the last --out wins
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err and "Traceback" not in err


def test_unreachable_server_is_one_line(crowd_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    rc = main(["reference", "--dataset", str(crowd_file), "--out", str(tmp_path / "r.csv"), "--base-url", url,
               "--model", "m", "--quiet", "--timeout", "2"])
    assert rc == 2
    err = capsys.readouterr().err
    assert url in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


def test_cache_info_and_clear(tmp_path: Path, crowd_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAIServer(answer=level_answer) as server:
        main(["reference", "--dataset", str(crowd_file), "--strategy", "logprob", "--base-url", server.url,
              "--model", "fake-model", "--out", str(tmp_path / "r.csv"), "--quiet"])
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    info = capsys.readouterr().out
    assert "5 answers" in info and "fake-model" in info and "choice_probs" in info
    assert main(["cache", "clear", "--yes"]) == 0
    assert "deleted 5" in capsys.readouterr().out
    main(["cache", "info"])
    assert "0 answers" in capsys.readouterr().out


def test_shared_backend_flags_reach_a_command_as_one_object() -> None:
    app = typer.Typer()
    seen: dict[str, BackendOptions] = {}

    @app.command()
    @with_backend_options
    def run(name: str, backend_options: BackendOptions, times: int = 1) -> None:
        seen["opts"] = backend_options
        seen["args"] = (name, times)  # type: ignore[assignment]

    result = CliRunner().invoke(app, ["x", "--times", "2", "--base-url", "http://a/v1", "--base-url", "http://b/v1",
                                      "--model", "m", "--concurrency", "8", "--rpm", "120", "--no-cache",
                                      "--price-in", "0.5", "--api-key-env", "MY_KEY"])
    assert result.exit_code == 0, result.output
    opts = seen["opts"]
    assert seen["args"] == ("x", 2)
    assert opts.base_url == ["http://a/v1", "http://b/v1"] and opts.model == "m"
    assert opts.concurrency == 8 and opts.rpm == 120 and opts.no_cache and opts.price_in == 0.5
    assert opts.api_key_env == "MY_KEY"


def test_decorator_insists_on_the_parameter() -> None:
    with pytest.raises(TypeError, match="backend_options"):
        with_backend_options(lambda x: x)


def test_a_served_model_name_without_a_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["llm", "ask", "hi", "--model", "gpt-4o"]) == 2
    err = capsys.readouterr().err
    assert "--base-url" in err and "--model-path" in err


@pytest.mark.embedded
@pytest.mark.requires("llama-cpp")
def test_ask_answers_from_the_embedded_test_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["llm", "ask", "Is the sky blue? Answer yes or no.", "--model-path", "test", "--max-tokens", "8",
                 "--usage"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() != ""
    assert "LLM usage (llama-cpp, SmolLM2-135M-Instruct" in captured.err and "1 calls" in captured.err


def test_reference_reads_three_files_like_every_command(
        tmp_path: Path, three_files: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """The task texts come from --tasks (the responses file has none); a task missing there is named in one
    warning line and gets no reference; the old spelling --column-map still works, hidden from --help."""
    out = tmp_path / "refs.csv"
    with FakeOpenAIServer(answer=lambda req: "Rating: 3") as server:
        args = ["reference", "--dataset", str(three_files["responses"]), *three_files["args"], "--strategy",
                "zero-shot", "--k", "1", "--base-url", server.url, "--model", "fake-model", "--out", str(out),
                "--quiet"]
        assert main(args) == 0
        warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
        assert len(warned) == 1 and "'t0029'" in warned[0]
        refs = pd.read_csv(out)
        assert len(refs) == 29 and "t0029" not in set(refs["task"])
        assert server.answered == 29
        old = [("--column-map" if a == "--map" else a) for a in args]
        assert main(old) == 0 and server.answered == 29  # same data, same prompts: all from the cache
    capsys.readouterr()
    assert main(["reference", "--help"]) == 0
    assert "--column-map" not in capsys.readouterr().out


def test_hidden_states_are_refused_where_they_cannot_be_read(
        tmp_path: Path, crowd_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "refs.csv"
    with FakeOpenAIServer(answer=level_answer) as server:
        assert main(["reference", "--dataset", str(crowd_file), "--hidden-states", "--base-url", server.url,
                     "--model", "fake-model", "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["error: --hidden-states are read from the embedded model; a server does not return them"]
        assert main(["reference", "--dataset", str(crowd_file), "--hidden-states", "--strategy", "zero-shot",
                     "--base-url", server.url, "--model", "fake-model", "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["error: --hidden-states is read in the log-prob call: use --strategy logprob"]
        assert server.answered == 0 and not out.exists()
