"""The examples in docs/data.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def test_the_column_map_example_runs_and_prints_what_the_page_says(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/data.md lost its python examples"
    exec(compile(blocks[0], str(DOC), "exec"), {})  # noqa: S102 - our own documentation example
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "5 2 3"
    assert out[-1] == "('cat',)"


def test_the_split_example_runs(capsys, shared_data):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    exec(compile(blocks[1], str(DOC), "exec"), {})  # noqa: S102 - our own documentation example
    assert capsys.readouterr().out.split() == ["210", "52"]
