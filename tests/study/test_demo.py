"""`make demo`'s path end to end (``crowdllm crowd demo``) on a small POPQUORN subset with the fake server."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from crowdllm.cli import main
from fakeserver import FakeOpenAIServer


def _popquorn() -> None:
    roots = [Path(p) for p in os.environ.get("CROWDLLM_DATA_PATH", "").split(os.pathsep) if p]
    if not any((r / "popquorn" / "offensiveness.csv").is_file() for r in roots):
        if os.environ.get("CI") == "true":
            pytest.fail("POPQUORN offensiveness is missing: set CROWDLLM_DATA_PATH to the data mirror")
        pytest.skip("POPQUORN offensiveness is not in CROWDLLM_DATA_PATH")


@pytest.mark.slow
def test_demo_fits_scores_asks_and_reports(tmp_path, capsys):
    _popquorn()
    out = tmp_path / "demo"
    with FakeOpenAIServer() as server:
        assert main(["crowd", "demo", "--out", str(out), "--texts", "40", "--epochs", "5", "--embedder", "hashing",
                     "--no-progress", "--base-url", server.url, "--model", "fake-model"]) == 0
        # one reference call per text, one for the new text
        assert server.answered == 41
    printed = capsys.readouterr().out
    for name in ("results.csv", "predictions.csv", "references.csv", "run.json", "report.html",
                 "crowd/crowd.json", "crowd/CARD.md"):
        assert (out / name).is_file(), name
    results = pd.read_csv(out / "results.csv")
    methods = set(results["method"])
    assert {"crowdllm", "llm-reference", "global", "profile-group", "random", "noise-ceiling"} <= methods
    table = printed[printed.index("How close"):printed.index("Asking")]
    rows = [line.split()[0] for line in table.splitlines()[2:] if line.strip()]
    assert rows[0] == "method" or rows[0] == "crowdllm"
    assert rows[-1] == "noise-ceiling" and "split-half" not in rows  # the population protocol's floor last
    per_method = results[(results["metric"] == "mae") & (results["aggregator"] == "mean")].set_index("method")["value"]
    assert per_method.notna().all()
    pred = pd.read_csv(out / "predictions.csv")
    held_out = set(pred.loc[pred["source"] == "real", "task"])
    assert len(held_out) == 8 and held_out == set(pred.loc[pred["method"] == "crowdllm", "task"])
    assert "answers of 500 virtual people" in printed and "by gender:" in printed
    assert "crowdllm reproduce offensiveness --seeds 5" in printed and "demo done in" in printed
    page = (out / "report.html").read_text()
    assert "<img" in page and "crowdllm" in page
