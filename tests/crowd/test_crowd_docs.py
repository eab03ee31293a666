"""The examples in docs/crowd.md run as written and print what the page says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "crowd.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.slow
def test_the_quick_start_recovers_the_gender_gap(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(_blocks()[0], str(DOC), "exec"), {})  # noqa: S102 - our own documentation example
    head, gap = capsys.readouterr().out.strip().split(": ")
    assert head == "2400 virtual answers; women - men"
    assert 0.8 <= float(gap) <= 1.25  # the synthetic crowd's women rate one point higher


def test_the_profiles_example(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(_blocks()[1], str(DOC), "exec"), {})  # noqa: S102 - our own documentation example
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "{'Woman': 0.51, 'Man': 0.49}"
    assert lines[1] == "gender: 1 unseen value(s) put in 'other': 'Non-binary' x1"
    assert lines[2] == "age: 1 unseen value(s) put in 'other': '65+' x1"


def test_the_categorical_twins_example(capsys: pytest.CaptureFixture[str]) -> None:
    block = next(b for b in _blocks() if "say yes" in b)
    exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - our own documentation example
    shares = dict(line.split(" say yes: ") for line in capsys.readouterr().out.strip().splitlines())
    # the page says 0.2 and 0.52 (the six said yes to 9 % of texts; 360 sampled answers each, sd ~0.025)
    assert float(shares["twins"]) < 0.25 and float(shares["strangers"]) - float(shares["twins"]) > 0.2
