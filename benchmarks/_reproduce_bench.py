"""Reproduction time for benchmarks/run.py: ``crowdllm reproduce offensiveness`` run twice as a real process
against the fake OpenAI-compatible server, with a private cache: the first run fills the cache (every LLM
call is made), the second finds every answer there (and makes none: the server counts its requests)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _crowdllm() -> list[str]:
    script = Path(sys.executable).parent / "crowdllm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "crowdllm"]


def available() -> bool:
    proc = subprocess.run([*_crowdllm(), "reproduce", "--help"], capture_output=True, text=True)
    return proc.returncode == 0


def reproduce_cold_and_warm(*, methods: str | None, embedder: str = "hashing", seeds: str = "1",
                            splits: str = "worker") -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from fakeserver import FakeOpenAIServer

    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer() as server:
        env = {**os.environ, "CROWDLLM_CACHE": str(Path(tmp) / "cache"), "NO_COLOR": "1"}
        for run in ("cold", "warm"):
            args = [*_crowdllm(), "reproduce", "offensiveness", "--seeds", seeds, "--splits", splits,
                    "--embedder", embedder, "--base-url", server.url, "--model", "fake-model", "--no-progress",
                    "--no-theory", "--out", str(Path(tmp) / run)]
            if methods:
                args += ["--methods", methods]
            before = server.requests
            start = time.perf_counter()
            proc = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                return {"error": f"{run} run failed (exit {proc.returncode}): {tail}"}
            runs[run] = {"seconds": round(seconds, 2), "llm_requests": server.requests - before}
    return {"backend": "fake OpenAI-compatible server (no latency), private cache", "methods": methods or "all",
            "embedder": embedder, "seeds": seeds, "splits": splits, **runs,
            "warm_vs_cold": round(runs["warm"]["seconds"] / runs["cold"]["seconds"], 3)}
