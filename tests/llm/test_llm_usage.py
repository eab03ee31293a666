"""Usage accounting: calls, cache hits, tokens, cost, faults; printed and saved with the results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crowdllm.llm import CachedLLM, FakeLLM, MeteredLLM, Usage

PROMPTS = [[{"role": "user", "content": f"two words {i}"}] for i in range(4)]


def test_calls_hits_and_tokens_of_real_calls_only(tmp_path: Path) -> None:
    fake = FakeLLM("one two three")  # the fake counts words as tokens
    usage = Usage(price_in=2.0, price_out=10.0)
    llm = MeteredLLM(CachedLLM(fake, tmp_path / "c.sqlite"), usage)
    llm.generate(PROMPTS, n=2)
    llm.generate(PROMPTS, n=2)
    d = usage.as_dict()
    assert d["calls"] == 8 and d["cache_hits"] == 8
    assert d["prompt_tokens"] == 8 * 3 and d["completion_tokens"] == 8 * 3
    assert d["cost"] == pytest.approx((24 * 2.0 + 24 * 10.0) / 1e6)
    assert d["backend"] == "fake" and d["model"] == "fake-1"


def test_distribution_calls_are_counted() -> None:
    usage = Usage()
    MeteredLLM(FakeLLM(), usage).choice_probs(PROMPTS, list("12345"))
    assert usage.calls == 4 and usage.fallbacks == 0


def test_faults_reported_by_the_backend_are_counted_by_kind() -> None:
    fake = FakeLLM("x")
    llm = MeteredLLM(fake)
    fake._notify("fault", kind="rate_limit")
    fake._notify("retry", kind="rate_limit")
    fake._notify("fault", kind="timeout")
    fake._notify("fault", kind="rate_limit")
    d = llm.usage.as_dict()
    assert d["faults"] == {"rate_limit": 2, "timeout": 1} and d["retries"] == 1


def test_render_and_save(tmp_path: Path) -> None:
    usage = Usage(backend="openai", model="m", price_in=1.0, price_out=1.0)
    usage.calls, usage.cache_hits, usage.prompt_tokens, usage.completion_tokens = 10, 5, 1000, 20
    usage.parse_failures, usage.fallbacks = 2, 1
    usage.faults = {"server_error": 3}
    text = usage.render()
    assert "10 calls, 5 cache hits" in text and "1,000 prompt + 20 completion" in text
    assert "parse failures: 2" in text and "fallbacks to sampling (no log-probs): 1" in text
    assert "server_error 3" in text and "cost: 0.0010" in text
    usage.save(str(tmp_path / "u.json"))
    saved = json.loads((tmp_path / "u.json").read_text())
    assert saved["calls"] == 10 and saved["faults"] == {"server_error": 3}


def test_no_prices_no_cost_line() -> None:
    usage = Usage(backend="fake", model="m")
    assert usage.cost is None and "cost" not in usage.render()
