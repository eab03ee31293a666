"""The example in docs/reliability.md runs as written and prints what the page says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


@pytest.mark.slow
def test_the_damaged_model_example_prints_what_the_page_says(capsys) -> None:  # noqa: ANN001
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/reliability.md lost its python example"
    exec(compile(blocks[0], str(DOC), "exec"), {})  # noqa: S102 - our own documentation example
    printed = capsys.readouterr().out.strip()
    assert printed == "refused: belief.safetensors"
    assert f"prints `{printed}`" in text
