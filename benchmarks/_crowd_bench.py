"""Crowd-model benchmarks for benchmarks/run.py: CVAE fit time on POPQUORN, sampling throughput, and how
both grow with the size of a synthetic crowd.

Every function returns a plain dict (JSON-ready). Times are wall-clock seconds on this machine; what is
comparable across machines is the ratios, which are measured side by side in one run.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

POPQUORN = "popquorn-offensiveness"
CHOICES = ["1", "2", "3", "4", "5"]


# ------------------------------------------------------------------------------ references
def _cached_embedded_reference(tasks: pd.DataFrame) -> pd.DataFrame | None:
    """Log-prob references of the default embedded model, read from the default cache WITHOUT loading or
    running the model: a backend with the model's cache identity that answers nothing (misses stay NaN)."""
    from crowdllm.llm.base import ChoiceDistribution, LanguageModel
    from crowdllm.llm.cache import CachedLLM, default_cache_path
    from crowdllm.llm.models import model_fingerprint, models_dir
    from crowdllm.llm.reference import compute_references

    cache_file = default_cache_path()
    models = sorted(models_dir().glob("*.gguf")) if models_dir().exists() else []
    if not cache_file.exists() or not models:
        return None

    best: pd.DataFrame | None = None
    for path in models:
        model_id = f"{path.stem}@{model_fingerprint(path)}"

        class CacheOnly(LanguageModel):
            backend = "llama-cpp"
            model = model_id
            supports_logprobs = True

            def _generate(self, prompts, params):  # noqa: ANN001, ANN202
                raise LookupError("not in the cache")

            def _choice_probs(self, prompts, choices):  # noqa: ANN001, ANN202
                nan = tuple(float("nan") for _ in choices)
                return [ChoiceDistribution(choices=choices, probs=nan) for _ in prompts]

        llm = CachedLLM(CacheOnly(), cache_file)
        try:
            refs = compute_references(tasks, llm, kind="rating", strategy="logprob", k=8, scale=(1, 5),
                                      template=POPQUORN, progress=False, seed=0)
        finally:
            llm.cache.close()
        if best is None or refs["y_ref"].notna().sum() > best["y_ref"].notna().sum():
            best = refs.assign(model=model_id)
    return best


def popquorn_reference(tasks: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(references, where they came from): the default model's cached log-prob references when the
    default cache holds them for at least 90% of the tasks, else a deterministic FakeLLM reference."""
    from crowdllm.llm import FakeLLM
    from crowdllm.llm.reference import compute_references

    cached = _cached_embedded_reference(tasks)
    if cached is not None:
        coverage = float(cached["y_ref"].notna().mean())
        if coverage >= 0.9:
            return cached, f"cached log-prob references of {cached['model'].iloc[0]} ({coverage:.0%} of tasks)"
    refs = compute_references(tasks, FakeLLM(), kind="rating", strategy="logprob", scale=(1, 5),
                              template=POPQUORN, progress=False)
    found = 0 if cached is None else int(cached["y_ref"].notna().sum())
    return refs, (f"FakeLLM reference (the default cache holds cached log-prob references for {found} of "
                  f"{len(tasks)} tasks)")


# ------------------------------------------------------------------------------ POPQUORN
def popquorn_fit_and_sample(*, quick: bool, embedder: str = "auto", n_people: int = 1000) -> dict[str, Any]:
    """Fit a DigitalCrowd on POPQUORN offensiveness (worker split, 80% of the people), then sample the
    test people x every task and a larger virtual crowd; report fit time and virtual responses/s."""
    from crowdllm.crowd import DigitalCrowd
    from crowdllm.data import load_dataset
    from crowdllm.data.splits import split_dataset

    ds = load_dataset(POPQUORN)
    split = split_dataset(ds, by="worker", test_size=0.2, random_state=0)
    start = time.perf_counter()
    refs, ref_source = popquorn_reference(ds.tasks)
    reference_s = time.perf_counter() - start
    from crowdllm.belief.embeddings import TextEmbedder

    emb = TextEmbedder(embedder)
    # embed the task texts once (kept in the on-disk embedding cache), so the fit time is the model's own
    start = time.perf_counter()
    emb.embed(ds.tasks["text"].astype(str).tolist())
    embed_s = time.perf_counter() - start

    crowd = DigitalCrowd(embedder=emb, random_state=0, **({"epochs": 40} if quick else {}))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crowd.fit(split.train, reference=refs)
    fit_s = time.perf_counter() - start

    test_people = split.test.workers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        answers = crowd.sample(ds.tasks, profiles=test_people, reference=refs, random_state=1)
        sample_s = time.perf_counter() - start
        start = time.perf_counter()
        big = crowd.sample(ds.tasks, n_people=n_people, reference=refs, random_state=2, include_profile=False)
        big_s = time.perf_counter() - start
    return {
        "dataset": POPQUORN, "split": "worker", "train_responses": int(split.train.n_responses),
        "train_people": int(split.train.n_workers), "tasks": int(ds.n_tasks),
        "reference": ref_source, "reference_seconds": round(reference_s, 2),
        "embedder": emb.name, "embed_seconds_cold_or_cached": round(embed_s, 2),
        "epochs_limit": crowd.epochs, "best_epoch": int(getattr(crowd.belief_, "best_epoch_", -1)),
        "fit_seconds": round(fit_s, 2),
        "fit_responses_per_s": round(split.train.n_responses / fit_s, 1),
        "sample_test_people": {"responses": len(answers), "seconds": round(sample_s, 3),
                               "per_s": round(len(answers) / sample_s, 1)},
        "sample_virtual_crowd": {"people": n_people, "responses": len(big), "seconds": round(big_s, 3),
                                 "per_s": round(len(big) / big_s, 1)},
    }


# ------------------------------------------------------------------------------ growth
def _synthetic(factor: int, base_tasks: int, base_people: int, per_task: int, seed: int) -> Any:
    from crowdllm.data.synthetic import make_synthetic_crowd

    n_tasks, n_people = base_tasks * factor, base_people * factor
    # each task is answered by about `per_task` people whatever the pool size, so responses grow like
    # the factor (as in real crowdsourcing), not like its square
    return make_synthetic_crowd(n_tasks=n_tasks, n_workers=n_people, participation=min(1.0, per_task / n_people),
                                random_state=seed)


def growth(*, factors: tuple[int, ...] = (1, 4, 16), base_tasks: int = 60, base_people: int = 40,
           per_task: int = 8, epochs: int = 30, sample_people: int = 200) -> dict[str, Any]:
    """Fit and sampling time on synthetic crowds with ``factor`` x tasks and x people."""
    from crowdllm.belief.embeddings import TextEmbedder
    from crowdllm.crowd import DigitalCrowd

    rows = []
    warm = _synthetic(1, 10, 8, 4, seed=0)  # first use of torch and friends, not timed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DigitalCrowd(embedder=TextEmbedder("hashing", cache=False), epochs=2, random_state=0).fit(
            warm.dataset, reference=pd.DataFrame({"y_ref": warm.truth}))
    for f in factors:
        syn = _synthetic(f, base_tasks, base_people, per_task, seed=f)
        ds = syn.dataset
        reference = pd.DataFrame({"y_ref": syn.truth})
        # a fixed number of epochs (no validation, no early stop): the time measures the data size only
        crowd = DigitalCrowd(embedder=TextEmbedder("hashing", cache=False), epochs=epochs, patience=epochs + 1,
                             validation="none", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            crowd.fit(ds, reference=reference)
            fit_s = time.perf_counter() - start
            people = sample_people * f
            start = time.perf_counter()
            out = crowd.sample(ds.tasks, n_people=people, reference=reference, random_state=1,
                               include_profile=False)
            sample_s = time.perf_counter() - start
        rows.append({"factor": f, "tasks": ds.n_tasks, "people": ds.n_workers, "responses": ds.n_responses,
                     "fit_seconds": fit_s, "virtual_responses": len(out), "sample_seconds": sample_s})
    base = rows[0]
    for r in rows:
        r["responses_ratio"] = round(r["responses"] / base["responses"], 2)
        r["fit_time_ratio"] = round(r["fit_seconds"] / base["fit_seconds"], 2)
        r["virtual_ratio"] = round(r["virtual_responses"] / base["virtual_responses"], 2)
        r["sample_time_ratio"] = round(r["sample_seconds"] / base["sample_seconds"], 2)
        r["fit_seconds"] = round(r["fit_seconds"], 3)
        r["sample_seconds"] = round(r["sample_seconds"], 4)
    return {"epochs": epochs, "responses_per_task": per_task, "embedder": "hashing", "rows": rows}


def threads() -> dict[str, Any]:
    import torch

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cache": str(Path(os.environ.get("CROWDLLM_CACHE", "~/.cache/crowdllm")).expanduser())}


__all__ = ["growth", "popquorn_fit_and_sample", "popquorn_reference", "threads"]
