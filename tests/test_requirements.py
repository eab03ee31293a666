"""The one policy for missing requirements (tests/conftest.py): under CI=true a test whose requirement is
missing fails and names it; elsewhere it is skipped and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(require, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no chromium on PATH
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"missing requirement: Chromium .*CI=true"):
        require("chromium")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"missing requirement: Chromium"):
        require("chromium")


def test_a_missing_module_fails_under_ci(require, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "crowdkit" else real(name, *a))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"missing requirement: crowd-kit"):
        require("crowd-kit")


@pytest.mark.slow
def test_ci_run_of_the_browser_test_without_chromium_fails_naming_it(tmp_path) -> None:
    """The real thing: pytest in a child process, CI=true, a PATH without any browser."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env.update(CI="true", PATH=str(tmp_path), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/report/test_report_browser.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed" in out and "missing requirement: Chromium" in out and "skipped" not in out
