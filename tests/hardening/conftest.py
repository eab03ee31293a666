"""Fixtures of the hardening tests (helpers live in hardening_helpers.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of the OpenAI-compatible backend wait 10 ms instead of seconds (in-process runs only)."""
    from crowdllm.llm import openai_compat

    monkeypatch.setattr(openai_compat.OpenAICompatLLM, "_backoff", lambda self, attempt: 0.01)
