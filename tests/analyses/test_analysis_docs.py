"""The examples in docs/analyses.md run as written and print what the page says."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "analyses.md"


def test_the_examples_run_and_print_what_the_page_says(capsys):
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    shown = re.findall(r"```text\n(.*?)```", text, re.S)
    assert len(blocks) == 2, "docs/analyses.md lost its python examples"
    namespace: dict = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation example
    assert capsys.readouterr().out.strip().splitlines() == shown[0].strip().splitlines()
    exec(compile(blocks[1], str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation example
    assert capsys.readouterr().out.strip() == "report.html 1"
    assert "prints `report.html 1`" in text
