"""A long ``crowdllm reference`` run killed with SIGKILL part way, then rerun.

The story: the first server answers a fixed number of requests and then never answers again (so the
moment of the kill is exact: every answer the server gave has reached the client). We wait until the
client has stored those answers in its cache, SIGKILL it, and rerun the same command against a second
server. Counting the requests of both servers proves that no answered call is asked again and none is
lost; the final references equal those of an uninterrupted run (fresh cache, third server, same seed).

tests/llm/test_llm_resume.py kills a sampled (zero-shot, k=4) run at a moment chosen by timing, on a server
with faults, and checks the counts in aggregate; this test adds the exact, per-request accounting (which
calls were answered before the kill, which after) on the log-prob strategy, where each task is one call.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hardening_helpers import (
    cache_entries,
    child_env,
    kill,
    run_process,
    start_process,
    wait_for,
    write_crowd_csv,
)

from fakeserver import FakeOpenAIServer, FakeRequest, default_answer


class GatedAnswers:
    """Answers the first ``limit`` requests, then holds every later one until released (never answered)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.answered: Counter[str] = Counter()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, req: FakeRequest) -> str:
        with self._lock:
            held = sum(self.answered.values()) >= self.limit
            if not held:
                self.answered[req.key] += 1
        if held:
            self.release.wait(60)
        return default_answer(req)


def _command(data: Path, out: Path, url: str, strategy: str) -> list[str]:
    return ["reference", "--dataset", str(data), "--out", str(out), "--base-url", url, "--model", "fake-model",
            "--strategy", strategy, "--k", "3", "--seed", "7", "--concurrency", "4", "--quiet"]


@pytest.mark.slow
def test_killed_reference_run_resumes_without_repeating_or_losing_calls(tmp_path: Path) -> None:
    strategy, n_tasks, calls_per_task, limit = "logprob", 24, 1, 10  # one log-prob call per task
    data = write_crowd_csv(tmp_path / "crowd.csv", n_tasks=n_tasks, n_workers=2)
    cache = Path(os.environ["CROWDLLM_CACHE"]) / "llm-cache.sqlite"
    total = n_tasks * calls_per_task

    # 1. first run, killed once the server has answered `limit` calls and the client has stored them
    gate = GatedAnswers(limit)
    killed_out = tmp_path / "killed.csv"
    with FakeOpenAIServer(answer=gate) as first:
        proc = start_process(*_command(data, killed_out, first.url, strategy), cwd=tmp_path)
        try:
            wait_for(lambda: sum(gate.answered.values()) >= limit and cache_entries(cache) >= limit,
                     what="the first answers to reach the cache")
        finally:
            kill(proc)
            gate.release.set()
    assert proc.returncode == -signal.SIGKILL
    assert cache_entries(cache) == limit
    assert not killed_out.exists()  # nothing half-written
    assert not list(tmp_path.glob(".killed.csv*"))

    # 2. rerun the same command: only the missing calls reach the (second) server
    resumed_out = tmp_path / "resumed.csv"
    with FakeOpenAIServer() as second:
        res = run_process(*_command(data, resumed_out, second.url, strategy), cwd=tmp_path)
    assert res.rc == 0, res.err
    repeated = set(second.prompts) & set(gate.answered)
    assert not repeated, f"{len(repeated)} answered calls were asked again"
    assert max(second.prompts.values()) == 1 and max(gate.answered.values()) == 1
    assert sum(gate.answered.values()) + second.answered == total  # none lost, none extra
    assert second.requests == total - limit
    usage = json.loads((tmp_path / "resumed.csv.usage.json").read_text())
    assert usage["cache_hits"] == limit and usage["calls"] == total - limit

    # 3. an uninterrupted run with a fresh cache gives the same references
    fresh_out = tmp_path / "fresh.csv"
    with FakeOpenAIServer() as third:
        res = run_process(*_command(data, fresh_out, third.url, strategy), cwd=tmp_path,
                          env=child_env(CROWDLLM_CACHE=str(tmp_path / "fresh-cache")))
    assert res.rc == 0, res.err
    assert third.answered == total
    resumed, fresh = pd.read_csv(resumed_out), pd.read_csv(fresh_out)
    assert len(resumed) == n_tasks and resumed["y_ref"].notna().all()
    pd.testing.assert_frame_equal(resumed, fresh)
