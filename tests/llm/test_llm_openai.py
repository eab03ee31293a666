"""The OpenAI-compatible backend against the fake server on 127.0.0.1: answers, log-probs, faults, retries."""

from __future__ import annotations

import math
import re
import socket

import pytest

from crowdllm.errors import BackendError, ConfigError
from crowdllm.llm import open_backend
from crowdllm.llm.openai_compat import OpenAICompatLLM, _retry_after, render_transcript
from fakeserver import FakeOpenAIServer, FakeRequest

RATING_PROMPT = [{"role": "system", "content": "Rate 1-5."}, {"role": "user", "content": "level 4 text"},
                 {"role": "assistant", "content": "Rating: "}]


def level_answer(req: FakeRequest) -> str:
    """The fake 'model' answers the level written in the text."""
    m = re.search(r"level (\d)", req.last_user)
    return f"Rating: {m.group(1)}" if m else "I do not know"


def peaked(req: FakeRequest, token: str) -> dict[str, float]:
    t = token.strip()
    if t.isdigit():
        return {" " + str(d): (0.7 if d == int(t) else 0.1) for d in (int(t) - 1, int(t), int(t) + 1) if 1 <= d <= 5}
    return {token: 1.0}


def fast(url: str | list[str], **kw) -> OpenAICompatLLM:  # noqa: ANN003
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return OpenAICompatLLM(url, "fake-model", **kw)


def test_generation_and_logprob_distribution_from_a_chat_server() -> None:
    with FakeOpenAIServer(answer=level_answer, distribution=peaked) as server:
        llm = fast(server.url)
        try:
            text = llm.generate([RATING_PROMPT])[0][0]
            dist = llm.choice_probs([RATING_PROMPT], list("12345"))[0]
        finally:
            llm.close()
    assert text.text == "Rating: 4" and text.prompt_tokens > 0 and text.completion_tokens > 0
    assert dist.method == "logprobs"
    # " 3": .1, " 4": .7, " 5": .1 -> renormalised over the choices
    assert dist.as_dict() == pytest.approx({"1": 0, "2": 0, "3": 1 / 9, "4": 7 / 9, "5": 1 / 9})
    assert dist.mass == pytest.approx(0.9)
    assert server.answered == 2


def test_completions_endpoint_gets_a_transcript_ending_with_the_answer_prefix() -> None:
    seen: list[str] = []

    def answer(req: FakeRequest) -> str:
        seen.append(req.prompt)
        return "2"

    with FakeOpenAIServer(answer=answer) as server:
        llm = fast(server.url, endpoint="completions")
        try:
            dist = llm.choice_probs([RATING_PROMPT], list("12345"))[0]
        finally:
            llm.close()
    assert seen[0] == render_transcript(RATING_PROMPT)
    assert seen[0].endswith("Assistant: Rating: ")
    assert dist.argmax() == "2" and dist.method == "logprobs"


def test_model_is_discovered_when_not_given() -> None:
    with FakeOpenAIServer(model="served-model") as server:
        llm = OpenAICompatLLM(server.url)
        llm.close()
    assert llm.model == "served-model"


@pytest.mark.parametrize("fault, kind", [("500", "server_error"), ("429", "rate_limit"), ("drop", "connection"),
                                         ("timeout", "timeout"), ("empty", "empty")])
def test_each_fault_is_retried_and_counted_by_kind(fault: str, kind: str) -> None:
    with FakeOpenAIServer(answer=level_answer, fault_plan=[fault, fault], hold=1.0) as server:
        llm = open_backend(base_url=server.url, model="fake-model", cache=False, timeout=0.3)
        llm.inner.backoff_base = 0.01
        try:
            out = llm.generate([RATING_PROMPT])[0][0]
        finally:
            llm.close()
    assert out.text == "Rating: 4"
    assert server.requests == 3
    usage = llm.usage.as_dict()
    assert usage["faults"] == {kind: 2}
    assert usage["retries"] == 2 and usage["calls"] == 1


def test_retry_after_header_is_read() -> None:
    class Resp:
        def __init__(self, headers: dict[str, str]) -> None:
            self.headers = headers

    class Err(Exception):
        def __init__(self, headers: dict[str, str]) -> None:
            self.response = Resp(headers)

    assert _retry_after(Err({"retry-after": "7"})) == 7.0
    assert _retry_after(Err({"retry-after-ms": "250"})) == 0.25
    assert _retry_after(Err({})) is None


def test_a_flaky_server_still_completes_the_run_and_faults_are_counted() -> None:
    faults = {"500": 0.1, "429": 0.1, "drop": 0.1, "empty": 0.05}
    prompts = [[{"role": "user", "content": f"level {1 + i % 5} item {i}"}] for i in range(40)]
    with FakeOpenAIServer(answer=level_answer, faults=faults, seed=3) as server:
        llm = open_backend(base_url=server.url, model="fake-model", cache=False, concurrency=6)
        llm.inner.backoff_base, llm.inner.backoff_max = 0.01, 0.05
        try:
            out = llm.generate(prompts)
        finally:
            llm.close()
    assert [row[0].text for row in out] == [f"Rating: {1 + i % 5}" for i in range(40)]
    usage = llm.usage.as_dict()
    injected = sum(server.fault_counts.values())
    assert injected > 0
    assert sum(usage["faults"].values()) == injected == usage["retries"]
    assert server.requests == 40 + injected


def test_missing_logprobs_fall_back_to_sampling_and_are_counted() -> None:
    with FakeOpenAIServer(answer=level_answer, logprobs=False) as server:
        llm = open_backend(base_url=server.url, model="fake-model", cache=False)
        try:
            dist = llm.choice_probs([RATING_PROMPT], list("12345"), fallback_samples=5)[0]
        finally:
            llm.close()
    assert dist.method == "sampling" and dist.n_samples == 5
    assert dist.as_dict()["4"] == 1.0
    usage = llm.usage.as_dict()
    assert usage["fallbacks_to_sampling"] == 1
    assert usage["calls"] == 6 and server.answered == 6
    assert usage["faults"] == {"no_logprobs": 1}


def test_garbage_answers_become_parse_failures_with_the_raw_text_kept() -> None:
    with FakeOpenAIServer(answer=lambda req: "%%##@@ qwzx", logprobs=False) as server:
        llm = open_backend(base_url=server.url, model="fake-model", cache=False)
        try:
            dist = llm.choice_probs([RATING_PROMPT], list("12345"), fallback_samples=3)[0]
        finally:
            llm.close()
    assert dist.parse_failures == 3 and all(math.isnan(p) for p in dist.probs)
    assert llm.usage.as_dict()["parse_failures"] == 3


def test_bad_api_key_is_one_line_naming_the_variable_and_never_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-wrong-secret-123")
    with FakeOpenAIServer(api_key="sk-right") as server:
        llm = fast(server.url, api_key_env="MY_KEY")
        try:
            with pytest.raises(BackendError) as err:
                llm.generate([RATING_PROMPT])
        finally:
            llm.close()
    msg = str(err.value)
    assert "MY_KEY" in msg and "401" in msg and server.url in msg
    assert "sk-wrong" not in msg and "\n" not in msg


def test_right_api_key_from_the_environment_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-right")
    with FakeOpenAIServer(api_key="sk-right", answer=level_answer) as server:
        llm = fast(server.url, api_key_env="MY_KEY")
        try:
            assert llm.generate([RATING_PROMPT])[0][0].text == "Rating: 4"
        finally:
            llm.close()


def test_unreachable_server_is_a_backend_error_naming_the_url() -> None:
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    llm = fast(url, max_retries=2)
    try:
        with pytest.raises(BackendError, match=re.escape(url)) as err:
            llm.generate([RATING_PROMPT])
    finally:
        llm.close()
    assert "--base-url" in str(err.value)


def test_unknown_model_is_a_backend_error() -> None:
    with FakeOpenAIServer() as server:
        llm = OpenAICompatLLM(server.url, "no-such-model")
        try:
            with pytest.raises(BackendError, match="--model"):
                llm.generate([RATING_PROMPT])
        finally:
            llm.close()


def test_concurrency_is_bounded_and_used() -> None:
    prompts = [[{"role": "user", "content": f"level 2 n{i}"}] for i in range(24)]
    with FakeOpenAIServer(answer=level_answer, latency=0.05) as server:
        llm = fast(server.url, concurrency=4)
        try:
            llm.generate(prompts)
        finally:
            llm.close()
    assert 2 <= server.max_in_flight <= 4


def test_several_base_urls_share_the_work_round_robin() -> None:
    prompts = [[{"role": "user", "content": f"level 3 n{i}"}] for i in range(12)]
    with FakeOpenAIServer(answer=level_answer) as a, FakeOpenAIServer(answer=level_answer) as b:
        llm = fast([a.url, b.url])
        try:
            out = llm.generate(prompts)
        finally:
            llm.close()
    assert all(row[0].text == "Rating: 3" for row in out)
    assert a.answered == 6 and b.answered == 6


def test_each_sample_is_one_request_with_its_own_seed() -> None:
    seeds: list[int | None] = []

    def answer(req: FakeRequest) -> str:
        seeds.append(req.seed)
        return "Rating: 3"

    with FakeOpenAIServer(answer=answer) as server:
        llm = fast(server.url)
        try:
            llm.generate([RATING_PROMPT], n=4, temperature=0.5, seed=10)
        finally:
            llm.close()
    assert sorted(seeds) == [10, 11, 12, 13]


@pytest.mark.parametrize("kw, setting", [({"concurrency": 0}, "^concurrency must"), ({"rpm": -1}, "^rpm must"),
                                         ({"timeout": 0}, "^timeout must"), ({"endpoint": "embeddings"}, "^endpoint")])
def test_bad_settings_name_the_setting(kw: dict, setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        OpenAICompatLLM("http://127.0.0.1:9/v1", "m", **kw)


def test_bad_url_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="^base_url 'localhost:8000' is not an http"):
        OpenAICompatLLM("localhost:8000", "m")


def test_requests_per_minute_limit_spaces_the_requests() -> None:
    import time

    prompts = [[{"role": "user", "content": f"n{i}"}] for i in range(5)]
    with FakeOpenAIServer(answer=lambda req: "Rating: 2") as server:
        llm = fast(server.url, concurrency=5, rpm=600)  # at most one request every 0.1 s
        try:
            start = time.monotonic()
            llm.generate(prompts)
            elapsed = time.monotonic() - start
        finally:
            llm.close()
    # five requests need four gaps of 0.1 s; a busy machine can only make it take longer
    assert elapsed >= 0.4
    assert server.answered == 5
