"""The examples in docs/pipelines.md run and print what the page says."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "pipelines.md"


def test_the_python_examples_run_as_documented(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 2, "docs/pipelines.md lost its python examples"
    namespace: dict = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation example
    assert capsys.readouterr().out.splitlines() == ["We stayed inside, since it rained.", "12 True"]
    assert (tmp_path / "ffv-trace.jsonl").exists()
    exec(compile(blocks[1], str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation example
    assert capsys.readouterr().out.splitlines() == ["['pipeline', 'macro', 'baseline']"]


def test_the_page_names_every_pipeline():
    from crowdllm.pipelines import pipelines

    text = DOC.read_text(encoding="utf-8")
    assert all(f"`{name}`" in text for name in pipelines())
