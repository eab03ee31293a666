"""Speed of the digital crowd, printed as ratios measured side by side.

    python benchmarks/crowd_bench.py            # synthetic crowd only (no data needed)
    python benchmarks/crowd_bench.py --popquorn # also the fit time on POPQUORN offensiveness

Functions:

- :func:`sampling_throughput`: virtual responses per second of ``DigitalCrowd.sample`` once the
  references and text embeddings are known (1,000 tasks x 1,000 people = 1,000,000 responses), with
  and without the profile columns, next to the time numpy needs just to draw as many normal numbers
  (the floor for any sampler) -- the ratio says how far above that floor the whole pipeline runs. Then
  the crowd's 100 training people (known: their digital twins answer) x the same tasks (100,000
  responses, best of 3), and its time per answer against the main case's (``known_vs_new_per_answer``:
  above 1, a known person's answer costs more; the per-task work weighs more on fewer people too).
- :func:`popquorn_fit_time`: seconds to fit the crowd on POPQUORN's 13,036 responses (VAE only, MiniLM
  embeddings from the cache), vs. one pass of the same network over the data (epoch time).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np


def sampling_throughput(n_tasks: int = 1000, n_people: int = 1000) -> dict[str, Any]:
    from crowdllm.belief.embeddings import TextEmbedder
    from crowdllm.crowd import DigitalCrowd
    from crowdllm.data.synthetic import make_synthetic_crowd
    from crowdllm.profiles import ProfileGenerator

    syn = make_synthetic_crowd(n_tasks=n_tasks, n_workers=100, participation=0.05, random_state=0)
    crowd = DigitalCrowd(embedder=TextEmbedder("hashing", cache=False), epochs=3).fit(syn.dataset)
    people = ProfileGenerator.from_pool(syn.dataset.workers).sample(n_people, random_state=0)
    crowd.sample(syn.dataset.tasks, profiles=people.head(10), random_state=0)  # warm up
    start = time.perf_counter()
    out = crowd.sample(syn.dataset.tasks, profiles=people, random_state=0)
    with_profile = time.perf_counter() - start
    start = time.perf_counter()
    crowd.sample(syn.dataset.tasks, profiles=people, random_state=0, include_profile=False)
    bare = time.perf_counter() - start
    start = time.perf_counter()
    np.random.default_rng(0).standard_normal(len(out))
    floor = time.perf_counter() - start
    known, known_n = _known_people(crowd, syn.dataset)
    n = len(out)
    return {"responses": n, "per_second": round(n / with_profile), "per_second_no_profile": round(n / bare),
            "ratio_to_normal_draws": round(with_profile / floor, 1), "known_responses": known_n,
            "known_per_second": round(known_n / known), "known_vs_new_per_answer": round(n / with_profile * known
                                                                                          / known_n, 2)}


def _known_people(crowd: Any, dataset: Any, repeats: int = 3) -> tuple[float, int]:
    """(best seconds of ``repeats``, responses) for every training person (a digital twin) answering every
    task (all seen in training): the twins' terms and smaller noise are used and the seen-task mixture
    leaves their answers alone, where the virtual people of the main case take neither path."""
    best, n = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = len(crowd.sample(dataset.tasks, profiles=dataset.workers, random_state=0))
        best = min(best, time.perf_counter() - start)
    return best, n


def popquorn_fit_time() -> dict[str, Any]:
    from crowdllm.crowd import DigitalCrowd
    from crowdllm.data import load_dataset

    ds = load_dataset("popquorn-offensiveness")
    start = time.perf_counter()
    crowd = DigitalCrowd(embedder="auto").fit(ds)
    seconds = time.perf_counter() - start
    epochs = len(crowd.belief_.history_)
    return {"responses": ds.n_responses, "fit_seconds": round(seconds, 1), "epochs": epochs,
            "seconds_per_epoch": round(seconds / max(epochs, 1), 2), "embedder": crowd.embedder_name_}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--popquorn", action="store_true", help="also time a fit on POPQUORN offensiveness")
    args = parser.parse_args()
    print("sampling:", sampling_throughput(), flush=True)
    if args.popquorn:
        if "CROWDLLM_DATA_PATH" not in os.environ and os.path.isdir("../shared/data"):
            os.environ["CROWDLLM_DATA_PATH"] = os.path.abspath("../shared/data")
        print("fit:", popquorn_fit_time(), flush=True)


if __name__ == "__main__":
    main()
