"""Memory of ``crowd sample``: 10 million virtual answers written in chunks within 2 GiB peak RSS.

    python benchmarks/sample_memory.py                  # 1,000 tasks x 10,000 people = 10 M answers
    python benchmarks/sample_memory.py --tasks 100      # 1 M answers (quick)

A synthetic crowd (60 tasks, 40 people, VAE only, hashing embedder) is fitted and saved, then
:func:`crowdllm.study.sample.sample_to_file` writes ``tasks x people`` answers (with the people's
profiles) to a Parquet file in chunks, as ``crowdllm crowd sample`` does. Prints the peak resident set
size of the process (``ru_maxrss``) as a ratio of the 2 GiB budget, the baseline RSS before sampling,
answers per second, and the same throughput next to the time numpy needs to draw as many normal numbers.
Not a test: no timing or memory is asserted anywhere in tests/.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

BUDGET = 2 * 1024**3


def _rss_peak() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=None, help="answers per chunk (default: the library's)")
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd

    from crowdllm.crowd import DigitalCrowd
    from crowdllm.data.synthetic import make_synthetic_crowd
    from crowdllm.study.sample import CHUNK_RESPONSES, people, sample_to_file

    syn = make_synthetic_crowd(n_tasks=60, n_workers=40, random_state=0)
    crowd = DigitalCrowd(epochs=5, embedder="hashing", random_state=0).fit(syn.dataset)
    tasks = pd.DataFrame({"task": [f"new{i}" for i in range(args.tasks)],
                          "text": [f"new task number {i} about topic {i % 17}" for i in range(args.tasks)]})
    prof = people(crowd, n_people=args.people, random_state=1)
    before = _rss_now()
    chunk = args.chunk or CHUNK_RESPONSES
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "answers.parquet"
        t0 = time.perf_counter()
        counts = sample_to_file(crowd, tasks, prof, None, out, random_state=2, chunk_responses=chunk)
        seconds = time.perf_counter() - t0
        size = out.stat().st_size
    peak = _rss_peak()
    n = counts["responses"]
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for s in range(0, n, 1_000_000):
        rng.standard_normal(min(1_000_000, n - s))
    numpy_s = time.perf_counter() - t0
    result = {"answers": n, "tasks": args.tasks, "people": args.people, "chunk_answers": chunk,
              "seconds": round(seconds, 1), "answers_per_s": round(n / seconds), "file_mb": round(size / 2**20, 1),
              "rss_before_sampling_mib": round(before / 2**20), "peak_rss_mib": round(peak / 2**20),
              "peak_rss_ratio_of_2gib": round(peak / BUDGET, 3),
              "time_ratio_vs_numpy_normals": round(seconds / max(numpy_s, 1e-9), 1)}
    print(json.dumps(result))
    print(f"{n:,} answers in {seconds:.1f} s ({n / seconds:,.0f}/s, {result['time_ratio_vs_numpy_normals']}x "
          f"numpy drawing as many normals); peak RSS {peak / 2**20:,.0f} MiB = "
          f"{result['peak_rss_ratio_of_2gib']:.2f} x the 2 GiB budget (before sampling: {before / 2**20:,.0f} MiB)")
    return 0 if peak <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
