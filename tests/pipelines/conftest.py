"""Fixtures for the pipeline tests (the scripted crowds live in pipeline_crowds.py)."""

from __future__ import annotations

import pytest
from pipeline_crowds import garbage_llm, sensible_llm

from crowdllm.llm.fake import FakeLLM


@pytest.fixture
def sensible() -> FakeLLM:
    return sensible_llm()


@pytest.fixture
def garbage() -> FakeLLM:
    return garbage_llm()


@pytest.fixture
def use_llm(monkeypatch):
    """Make the pipeline CLI use a given fake backend."""
    def _use(llm):
        monkeypatch.setattr("crowdllm.cli.pipeline.open_llm", lambda *a, **k: llm)
        return llm
    return _use
