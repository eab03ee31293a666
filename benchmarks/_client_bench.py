"""Client overhead with the fake server in its OWN process (benchmarks/run.py).

:func:`llm_bench.client_overhead` runs the fake server in the benchmark's process, so the server's request
handling competes with the client for the same interpreter lock; here the server is a separate process and
what is left is the client's own cost. Besides the wall time against the ideal N*L/C this reports the
client's CPU time per call (all its threads), which does not depend on how busy the machine is.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1] / "tests"
_SERVER = ("import sys; sys.path.insert(0, sys.argv[2]); from fakeserver import FakeOpenAIServer; "
           "s = FakeOpenAIServer(latency=float(sys.argv[1])).start(); print(s.url, flush=True); sys.stdin.read()")


def client_overhead_out_of_process(n_calls: int = 160, latency: float = 0.05, concurrency: int = 8
                                   ) -> dict[str, Any]:
    from crowdllm.llm.openai_compat import OpenAICompatLLM

    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(latency), str(TESTS)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        url = (server.stdout.readline() if server.stdout else "").strip()
        if not url:
            raise RuntimeError("the fake server process did not start")
        prompts = [[{"role": "user", "content": f"level {1 + i % 5} item {i}"}] for i in range(n_calls)]
        llm = OpenAICompatLLM(url, "fake-model", concurrency=concurrency)
        try:
            llm.generate([[{"role": "user", "content": f"warm-up {i}"}] for i in range(concurrency)])
            cpu0, start = time.process_time(), time.perf_counter()
            llm.generate(prompts)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
        finally:
            llm.close()
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)
    ideal = n_calls * latency / concurrency
    return {"n_calls": n_calls, "latency_s": latency, "concurrency": concurrency, "seconds": round(seconds, 3),
            "ideal_seconds": round(ideal, 3), "ratio": round(seconds / ideal, 3),
            "client_cpu_ms_per_call": round(1000 * cpu / n_calls, 2),
            "client_bound_calls_per_s": round(n_calls / cpu, 1) if cpu > 0 else None}
