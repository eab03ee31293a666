"""Speed of the LLM layer, printed as ratios measured side by side.

    python benchmarks/llm_bench.py            # all three (the embedded one on the SmolLM2 test model)
    python benchmarks/llm_bench.py --default  # the embedded one on the default 1.5B model

Functions (called by benchmarks/run.py):

- :func:`client_overhead`: N calls to the fake OpenAI-compatible server with a fixed latency L at
  concurrency C should take close to N*L/C; returns the measured/ideal ratio (1.0 = no overhead).
- :func:`cache_hit_throughput`: answers per second served from the disk cache, vs. the same answers
  computed by the (instant) fake backend through the cache wrapper on a cold cache.
- :func:`embedded_throughput`: log-prob calls per second vs. generation calls per second of the
  embedded llama.cpp model (the log-prob reference is one forward pass over the task text only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fake server lives with the tests


_SERVER = """
import sys
sys.path.insert(0, {tests!r})
from fakeserver import FakeOpenAIServer
server = FakeOpenAIServer(latency={latency!r}).start()
print(server.url, flush=True)
sys.stdin.read()
"""


def client_overhead(n_calls: int = 200, latency: float = 0.05, concurrency: int = 8) -> dict[str, Any]:
    """Wall time of ``n_calls`` requests against a server answering in ``latency`` s, vs N*L/C.

    The fake server runs in its own process, so its work does not count as client overhead."""
    import subprocess

    from crowdllm.llm.openai_compat import OpenAICompatLLM

    code = _SERVER.format(tests=str(ROOT / "tests"), latency=latency)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        prompts = [[{"role": "user", "content": f"level {1 + i % 5} item {i}"}] for i in range(n_calls)]
        llm = OpenAICompatLLM(url, "fake-model", concurrency=concurrency)
        try:
            llm.generate(prompts[:concurrency])  # warm up connections
            start = time.perf_counter()
            llm.generate(prompts)
            seconds = time.perf_counter() - start
        finally:
            llm.close()
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)
    ideal = n_calls * latency / concurrency
    return {"n_calls": n_calls, "latency_s": latency, "concurrency": concurrency, "seconds": round(seconds, 3),
            "ideal_seconds": round(ideal, 3), "ratio": round(seconds / ideal, 3)}


def cache_hit_throughput(n: int = 2000) -> dict[str, Any]:
    """Answers/s from a warm disk cache vs. a cold one (where every answer is computed and stored)."""
    from crowdllm.llm import CachedLLM, FakeLLM

    prompts = [[{"role": "user", "content": f"text {i}"}] for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        llm = CachedLLM(FakeLLM(), Path(tmp) / "c.sqlite")
        start = time.perf_counter()
        llm.generate(prompts)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        llm.generate(prompts)
        warm = time.perf_counter() - start
        llm.close()
    return {"n": n, "cold_per_s": round(n / cold, 1), "warm_hits_per_s": round(n / warm, 1),
            "warm_vs_cold": round(cold / warm, 2)}


def embedded_throughput(model_path: str = "test", n: int = 8, max_tokens: int = 16) -> dict[str, Any]:
    """Log-prob calls/s vs. generation calls/s (``max_tokens`` each) on offensiveness-style prompts."""
    from crowdllm.llm.llama import LlamaCppLLM
    from crowdllm.llm.prompts import build_prompt

    texts = [f"Comment number {i}: I think the new layout is {'awful' if i % 2 else 'fine'}, honestly."
             for i in range(n)]
    prompts = [build_prompt(t, kind="rating", template="popquorn-offensiveness") for t in texts]
    llm = LlamaCppLLM(model_path)
    try:
        llm.choice_probs(prompts[:1], list("12345"))  # the shared prefix enters the KV cache
        start = time.perf_counter()
        llm.choice_probs(prompts, list("12345"))
        lp = time.perf_counter() - start
        start = time.perf_counter()
        llm.generate(prompts, max_tokens=max_tokens, temperature=0.0)
        gen = time.perf_counter() - start
        model = llm.model
    finally:
        llm.close()
    return {"model": model, "n": n, "logprob_calls_per_s": round(n / lp, 2),
            "generate_calls_per_s": round(n / gen, 2), "logprob_vs_generate": round(gen / lp, 2),
            "seconds_per_logprob_call": round(lp / n, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--default", action="store_true", help="embedded benchmark on the default 1.5B model")
    parser.add_argument("--skip-embedded", action="store_true")
    args = parser.parse_args(argv)
    print("client overhead  ", client_overhead())
    print("cache throughput ", cache_hit_throughput())
    if not args.skip_embedded:
        print("embedded model   ", embedded_throughput(None if args.default else "test"))


if __name__ == "__main__":
    main()
