"""The examples in docs/llm.md run as written and print what the page says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "llm.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_persona_prompt_example(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(_blocks()[0], str(DOC), "exec"), {})  # noqa: S102 - our own documentation example
    assert capsys.readouterr().out.splitlines() == [
        "You are an Asian woman aged 25 to 29. Rate it as this person would.",
        "{'role': 'assistant', 'content': 'Rating: '}",
    ]


def test_the_reference_example(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(_blocks()[1], str(DOC), "exec"), {})  # noqa: S102 - our own documentation example
    assert capsys.readouterr().out.split("\n")[:2] == ["[1.4, 4.0]", "2"]


def test_the_two_wordings_example(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(_blocks()[2], str(DOC), "exec"), {})  # noqa: S102 - our own documentation example
    assert capsys.readouterr().out.strip() == "[3.0, 4.0, 3.5] 2"
