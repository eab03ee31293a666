"""Crash safety: the `reference` command killed with SIGKILL mid-run loses no answer it had received,
and the rerun asks the server only for what is missing and ends with the same output."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from crowdllm.cli import main
from fakeserver import FakeOpenAIServer

N_TASKS, K, CONCURRENCY = 24, 4, 2


def _dataset_file(tmp_path: Path, synthetic) -> Path:  # noqa: ANN001
    merged = synthetic.dataset.merged()
    tasks = synthetic.dataset.tasks["task"].iloc[:N_TASKS]
    path = tmp_path / "crowd.csv"
    merged[merged["task"].isin(tasks)].to_csv(path, index=False)
    return path


def _cli(args: list[str], cache: Path) -> subprocess.Popen:
    env = {**os.environ, "CROWDLLM_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "crowdllm", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _cached(cache: Path) -> int:
    with sqlite3.connect(cache / "llm-cache.sqlite") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_repeats_no_stored_call(tmp_path: Path, synthetic,  # noqa: ANN001
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    data = _dataset_file(tmp_path, synthetic)
    with FakeOpenAIServer(latency=0.03, faults={"500": 0.05, "429": 0.05}, retry_after=0.01, seed=1) as server:
        args = ["reference", "--dataset", str(data), "--strategy", "zero-shot", "--k", str(K),
                "--base-url", server.url, "--model", "fake-model", "--concurrency", str(CONCURRENCY), "--quiet"]
        total = N_TASKS * K

        # 1. run, and SIGKILL it once about a third of the answers came back
        cache = tmp_path / "cache"
        proc = _cli([*args, "--out", str(tmp_path / "killed.csv")], cache)
        deadline = time.monotonic() + 120
        while server.answered < total // 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run did not progress"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        answered_before = server.answered
        stored = _cached(cache)
        assert 0 < stored < total
        # only answers still in flight at the kill can be lost
        assert answered_before - stored <= CONCURRENCY
        assert not (tmp_path / "killed.csv").exists()

        # 2. rerun to the end: exactly the missing answers are asked for
        proc = _cli([*args, "--out", str(tmp_path / "resumed.csv")], cache)
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert server.answered - answered_before == total - stored
        assert _cached(cache) == total
        assert f"{stored} cache hits" in err

        # 3. an uninterrupted run with its own cache (in this process) gives the same references
        monkeypatch.setenv("CROWDLLM_CACHE", str(tmp_path / "cache2"))
        assert main([*args, "--out", str(tmp_path / "clean.csv")]) == 0

    resumed = pd.read_csv(tmp_path / "resumed.csv", dtype={"task": str})
    clean = pd.read_csv(tmp_path / "clean.csv", dtype={"task": str})
    pd.testing.assert_frame_equal(resumed, clean)
    assert len(resumed) == N_TASKS and resumed["y_ref"].notna().all()
    # and the usage summary was stored next to the results
    assert (tmp_path / "resumed.csv.usage.json").exists()
