"""docs/study.md and the README name only flags the commands have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crowdllm.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _shell_blocks(text: str) -> list[str]:
    blocks, current, lang = [], None, ""
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current, lang = [], line[3:].strip()
            else:
                if lang in ("", "bash", "sh"):
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _crowd_lines(text: str) -> list[str]:
    blocks = [re.sub(r"#.*", "", b) for b in _shell_blocks(text)]
    lines = " ".join(b.replace("\\\n", " ") for b in blocks).split("crowdllm ")
    return [line for line in lines if line.startswith(("crowd ", "data validate", "data info"))]


@pytest.mark.parametrize("page", ["docs/study.md", "README.md", "docs/data.md"])
def test_documented_flags_exist(page, capsys):
    lines = _crowd_lines((ROOT / page).read_text(encoding="utf-8"))
    assert lines, f"{page} shows no crowdllm crowd/data command"
    for line in lines:
        words = line.split()
        command = words[:2]
        assert main([*command, "--help"]) == 0
        helptext = capsys.readouterr().out
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line):
            assert flag in helptext, f"{page}: 'crowdllm {' '.join(command)}' has no {flag}"


def test_the_summary_interval_example_prints_what_the_page_shows(capsys):
    text = (ROOT / "docs/study.md").read_text(encoding="utf-8")
    code, shown = re.search(r"```python\n(.*?summarize\(.*?)```\n.*?```text\n(.*?)```", text, re.S).groups()
    exec(compile(code, "docs/study.md", "exec"), {})  # noqa: S102 - our own documentation example
    assert capsys.readouterr().out == shown
