"""Retries, counted (not timed): how many attempts each kind of failure gets, the backoff schedule, the
circuit breaker for a server that says no, and a server that refuses log-probs (HTTP 500)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from crowdllm.cli import main
from crowdllm.errors import BackendError
from crowdllm.llm import openai_compat
from crowdllm.llm.openai_compat import OpenAICompatLLM
from fakeserver import LOGITS_ALL_ERROR, FakeOpenAIServer, FakeRequest

ROOT = Path(__file__).resolve().parents[2]
PROMPT = [{"role": "user", "content": "level 3 text"}, {"role": "assistant", "content": "Rating: "}]


class Sleeps:
    """An injected sleep: records each backoff wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def backend(url: str, **kw) -> tuple[OpenAICompatLLM, Sleeps, list[str]]:  # noqa: ANN003
    sleeps, faults = Sleeps(), []
    llm = OpenAICompatLLM(url, "fake-model", sleep=sleeps, **kw)
    llm.add_listener(lambda event, info: faults.append(info["kind"]) if event == "fault" else None)
    return llm, sleeps, faults


def assert_doubling_schedule(waits: list[float]) -> None:
    """Wait i is 0.5 s * 2**i (capped at 30 s) times a jitter in [0.5, 1.5]."""
    for i, wait in enumerate(waits):
        nominal = min(30.0, 0.5 * 2 ** i)
        assert 0.5 * nominal <= wait <= 1.5 * nominal, (i, wait)


def test_an_unreachable_server_gets_three_attempts_then_one_line_naming_the_url() -> None:
    with FakeOpenAIServer() as server:
        url = server.url
    # the server is stopped: nothing listens on its port any more
    llm, sleeps, faults = backend(url)
    try:
        with pytest.raises(BackendError) as err:
            llm.generate([PROMPT])
    finally:
        llm.close()
    assert faults == ["unreachable"] * 3
    assert len(sleeps.waits) == 2  # before attempts 2 and 3
    assert_doubling_schedule(sleeps.waits)
    assert str(err.value) == f"{url}: gave up after 3 attempts, last: cannot connect (is the server running? check --base-url)"


def test_a_fault_that_may_pass_gets_six_retries_with_doubling_waits() -> None:
    # the server drops the connection every time (a fault that usually passes): 7 attempts, 6 waits
    with FakeOpenAIServer(fault_plan=["drop"] * 20) as server:
        llm, sleeps, faults = backend(server.url)
        try:
            with pytest.raises(BackendError, match="gave up after 7 attempts, last: connection dropped"):
                llm.generate([PROMPT])
        finally:
            llm.close()
    assert server.requests == 7
    assert faults == ["connection"] * 7
    assert len(sleeps.waits) == 6
    assert_doubling_schedule(sleeps.waits)
    # about 31 s of waiting in all (0.5 + 1 + 2 + 4 + 8 + 16 = 31.5 s before jitter), as the docs say
    assert 0.5 * 31.5 <= sum(sleeps.waits) <= 1.5 * 31.5


def test_the_documented_numbers_are_the_code_numbers() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert openai_compat.MAX_RETRIES == 6 and openai_compat.UNREACHABLE_ATTEMPTS == 3
    assert openai_compat.SAME_ERROR_LIMIT == 4
    assert "6 retries (7 attempts)" in doc and "3 attempts" in doc and "4 times in a row" in doc
    for number in ("about 31 s", "about 1.5 s"):
        assert number in doc


def test_a_server_error_that_repeats_identically_stops_after_four_attempts_with_its_text() -> None:
    with FakeOpenAIServer(fault_plan=["500"] * 50, error_message="CUDA error: out of memory") as server:
        llm, sleeps, faults = backend(server.url, concurrency=1)
        try:
            with pytest.raises(BackendError) as err:
                llm.generate([PROMPT, PROMPT, PROMPT])
            requests_then = server.requests
            with pytest.raises(BackendError):  # the breaker stays open: no further request is sent
                llm.generate([PROMPT])
        finally:
            llm.close()
    assert requests_then == 4 and server.requests == 4
    assert len(sleeps.waits) == 3
    assert "stopped after the same error 4 times in a row: HTTP 500: CUDA error: out of memory" in str(err.value)


def test_a_transient_server_error_below_the_limit_is_retried_through() -> None:
    with FakeOpenAIServer(fault_plan=["500", "500", "500"], answer=lambda req: "Rating: 2") as server:
        llm, sleeps, faults = backend(server.url, concurrency=1)
        try:
            out = llm.generate([PROMPT, PROMPT])
        finally:
            llm.close()
    assert [row[0].text for row in out] == ["Rating: 2", "Rating: 2"]
    assert server.requests == 5 and faults == ["server_error"] * 3


def test_busy_answers_never_trip_the_breaker() -> None:
    # 503 is "busy / restarting": with the same body six times it is still retried (not a "no")
    with FakeOpenAIServer(answer=lambda req: "Rating: 2") as server:
        calls = {"n": 0}
        original = server._serve

        def serve(handler, req: FakeRequest) -> None:  # noqa: ANN001
            calls["n"] += 1
            if calls["n"] <= 6:
                handler._send(503, {"error": {"message": "loading model"}})
                return
            original(handler, req)

        server._serve = serve  # type: ignore[method-assign]
        llm, sleeps, faults = backend(server.url, concurrency=1)
        try:
            out = llm.generate([PROMPT])
        finally:
            llm.close()
    assert out[0][0].text == "Rating: 2" and faults == ["server_error"] * 6 and len(sleeps.waits) == 6


# ------------------------------------------------------------------------------ through the CLI
@pytest.fixture
def crowd20(tmp_path: Path, synthetic) -> Path:  # noqa: ANN001
    merged = synthetic.dataset.merged()
    keep = sorted(merged["task"].unique())[:20]
    merged = merged[merged["task"].isin(keep)].copy()
    merged["text"] = [f"level {1 + keep.index(t) % 5} text about {t}" for t in merged["task"]]
    path = tmp_path / "crowd.csv"
    merged.to_csv(path, index=False)
    return path


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_reference_against_a_server_without_logprobs_falls_back_to_samples_after_a_few_refusals(
        tmp_path: Path, crowd20: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "refs.csv"
    k, concurrency = 3, 4

    def answer(req: FakeRequest) -> str:
        return "Rating: " + re.search(r"level (\d)", req.last_user).group(1)

    with FakeOpenAIServer(answer=answer, logprobs_error=LOGITS_ALL_ERROR) as server, \
            pytest.warns(UserWarning) as caught:  # the CLI prints a warning as one "warning:" line
        rc = main(["reference", "--dataset", str(crowd20), "--strategy", "logprob", "--limit", "20", "--k", str(k),
                   "--base-url", server.url, "--model", "fake-model", "--concurrency", str(concurrency),
                   "--out", str(out), "--quiet"])
    res = capsys.readouterr()
    assert rc == 0, res.err
    refused = server.fault_counts["logprobs_error"]
    # only the log-prob requests in flight when the first refusal came back were sent (before: every task,
    # each retried 7 times); every task then asked for k samples
    assert 1 <= refused <= concurrency
    assert server.requests == refused + 20 * k and server.answered == 20 * k
    refs = pd.read_csv(out)
    assert len(refs) == 20 and (refs["method"] == "sampling").all() and (refs["n_calls"] == k).all()
    assert refs["y_ref"].between(1, 5).all() and (refs["parse_failures"] == 0).all()
    usage = json.loads(out.with_name("refs.csv.usage.json").read_text())
    assert usage["fallbacks_to_sampling"] == 20 and usage["calls"] == 20 * k
    assert usage["faults"] == {"logprobs_refused": refused}
    said = [str(w.message) for w in caught]
    assert len(said) == 1 and LOGITS_ALL_ERROR in said[0] and "--strategy" in said[0]
    assert not _error_lines(res.err) and "Traceback" not in res.err


def test_reference_against_a_server_that_always_says_no_is_one_error_line_after_a_few_requests(
        tmp_path: Path, crowd20: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "refs.csv"
    with FakeOpenAIServer(fault_plan=["500"] * 500, error_message="model failed to load: bad magic") as server:
        rc = main(["reference", "--dataset", str(crowd20), "--strategy", "zero-shot", "--limit", "20", "--k", "2",
                   "--base-url", server.url, "--model", "fake-model", "--concurrency", "4", "--out", str(out),
                   "--quiet"])
    res = capsys.readouterr()
    assert rc == 2
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")  # the one line, nothing else on stderr
    assert "HTTP 500: model failed to load: bad magic" in lines[0] and server.url in lines[0]
    # four identical answers stop the run; requests already on their way may add up to concurrency - 1
    assert 4 <= server.requests <= 4 + 3
    assert not out.exists()
