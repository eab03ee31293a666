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
    # BaseException: a skip (or a fail) raised inside must be caught here and its kind checked, not end the test
    with pytest.raises(BaseException, match=r"missing requirement: Chromium .*CI=true") as under_ci:
        require("chromium")
    assert under_ci.type is pytest.fail.Exception
    monkeypatch.delenv("CI")
    with pytest.raises(BaseException, match=r"missing requirement: Chromium") as elsewhere:
        require("chromium")
    assert elsewhere.type is pytest.skip.Exception


def test_a_missing_module_fails_under_ci(require, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "crowdkit" else real(name, *a))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(BaseException, match=r"missing requirement: crowd-kit") as under_ci:
        require("crowd-kit")
    assert under_ci.type is pytest.fail.Exception


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


def _make_dry_run(*args: str, **env: str) -> str:
    proc = subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_test_installs_every_requirement_and_runs_every_test_with_timings(tmp_path) -> None:
    """What `make test` (and so CI) runs, read from make's dry run: crowd-kit comes with the install,
    Chromium is checked (and installed) on every run, and pytest runs the whole suite -- slow tests
    included -- and prints the 15 slowest at the end."""
    plan = _make_dry_run("test", f"VENV={tmp_path / 'venv'}")
    assert '".[model,dev,compare]"' in plan
    assert "apt-get install -y -qq chromium" in plan and "Chromium is missing" in plan
    pytest_line = next(line for line in plan.splitlines() if "-m pytest" in line)
    assert "--durations=15" in pytest_line
    assert " -m " not in pytest_line.split("-m pytest", 1)[1] and " -k " not in pytest_line  # nothing deselected
    import tomllib

    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert "-m" not in addopts.get("addopts", "").split() and "-k" not in addopts.get("addopts", "").split()


def test_ci_sets_ci_true() -> None:
    assert "export CI=true" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
