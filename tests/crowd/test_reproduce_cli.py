"""`crowdllm reproduce`: bad settings are one line and exit 2, before any model is loaded."""

from __future__ import annotations

import pytest

from crowdllm.cli import main


@pytest.mark.parametrize(("args", "message"), [
    (["reproduce", "offensiveness", "--splits", "worker,people"], "--splits: 'people' is not one of"),
    (["reproduce", "offensiveness", "--methods", "crowdllm,oracle"], "unknown method 'oracle'"),
    (["reproduce", "offensiveness", "--seeds", "0,0"], "--seeds"),
    (["reproduce", "voting", "--persona-budget", "-1"], "--persona-budget must be >= 0"),
    (["reproduce", "voting", "--embedder", "word2vec"], "--embedder 'word2vec'"),
])
def test_bad_settings_are_one_line_errors(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_help_lists_both_reproductions(capsys):
    assert main(["reproduce", "--help"]) == 0
    out = capsys.readouterr().out
    assert "offensiveness" in out and "voting" in out
