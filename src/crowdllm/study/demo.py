"""The first run: the whole job on a seeded subset of POPQUORN offensiveness, in minutes.

:func:`run_demo` takes ``n_texts`` texts (seeded), holds out ``test_size`` of them, computes the LLM
reference of every text (one log-prob call each; cached), fits a digital crowd on the training texts
(and writes it with its model card), samples it for the held-out texts' real raters, and scores it next
to the baselines, the LLM reference alone and the noise ceiling -- in the population protocol: each
method's answer distribution (``PER_ANSWER`` virtual answers per real one), so a 48-text score is not
moved by one virtual answer per real one (in the matched protocol the crowd's MAE on this split moves by
about 0.05 between sampling seeds). It writes ``results.csv`` (long form),
``predictions.csv`` (real and virtual answers per held-out task), ``references.csv`` and the crowd folder
into ``out``; the CLI then asks the crowd one new text and writes the HTML report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import atomic_path, atomic_write_json
from crowdllm.errors import ConfigError

DATASET = "popquorn-offensiveness"
DEFAULT_TEXTS = 240
#: ``crowdllm reproduce offensiveness --seeds 5`` as measured for docs/results.md (2 cores, embedded model).
FULL_REPRODUCTION = ("crowdllm reproduce offensiveness --seeds 5 --out results/offensiveness-5",
                     "about 12 min with a warm reference cache and without multi-persona (docs/results.md); "
                     "cold, first the 1,500 reference calls (about 15 min at ~0.6 s on 2 idle cores) and up "
                     "to 300 multi-persona calls per fit")
METHODS = ("crowdllm", "llm-reference", "profile-group", "global", "random")
PER_ANSWER = 30  # virtual answers per real one (the population protocol)


def _llm_reference_answers(refs: pd.DataFrame, pairs: pd.DataFrame, levels: list[int], seed: int) -> pd.DataFrame:
    """The LLM alone as a crowd: every person answers from the reference distribution ``p_*``."""
    cols = [f"p_{v}" for v in levels]
    p = refs.reindex(pairs["task"].astype(str))[cols].to_numpy(dtype=float)
    p = np.where(np.isfinite(p), p, 1.0 / len(levels))
    p = p / p.sum(axis=1, keepdims=True)
    u = np.random.default_rng(seed).random(len(p))[:, None]
    idx = (u > np.cumsum(p, axis=1)).sum(axis=1).clip(0, len(levels) - 1)
    return pd.DataFrame({"task": pairs["task"].astype(str).to_numpy(), "worker": pairs["worker"].astype(str).to_numpy(),
                         "label": np.asarray(levels, dtype=float)[idx]})


def _score_held_out(ds: Any, train: Any, test: Any, crowd: Any, refs: pd.DataFrame, seed: int
                    ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame]:
    """The crowd, the LLM alone and the baselines answer for the held-out texts' real raters; scored."""
    from crowdllm.evaluate.baselines import GlobalDistribution, ProfileGroup, UniformRandom
    from crowdllm.evaluate.metrics import evaluate_population, replicate_pairs
    from crowdllm.evaluate.noise import noise_ceiling

    gold = test.responses[["task", "worker", "label"]].reset_index(drop=True)
    pairs, _ = replicate_pairs(gold[["task", "worker"]], per_answer=PER_ANSWER)
    test_tasks = test.tasks[test.tasks["task"].isin(set(gold["task"]))]
    levels = list(range(int(ds.label.scale[0]), int(ds.label.scale[1]) + 1))  # type: ignore[index]
    preds: dict[str, pd.DataFrame] = {}
    virt = crowd.sample(test_tasks, profiles=test.workers, pairs=pairs, random_state=seed + 1, include_profile=False)
    preds["crowdllm"] = virt.assign(task=virt["task"].astype(str), worker=virt["worker"].astype(str))
    preds["llm-reference"] = _llm_reference_answers(refs, pairs, levels, seed + 2)
    for name, method in (("profile-group", ProfileGroup()), ("global", GlobalDistribution()),
                         ("random", UniformRandom())):
        preds[name] = method.fit(train).sample(test_tasks, test.workers, pairs=pairs, random_state=seed + 3)
    rows = []
    for name, pred in preds.items():
        scores = evaluate_population(pred, gold, ds.label, aggregators=["mean"], per_answer=PER_ANSWER)
        rows += [(DATASET, "task", seed, name, a, m, float(v)) for a, m, v in scores.itertuples(index=False)]
    ceiling = noise_ceiling(gold, ds.label, full=ds.responses, aggregators=["mean"], random_state=seed)
    rows += [(DATASET, "task", seed, m, a, k, float(v)) for m, a, k, v in ceiling.itertuples(index=False)
             if m == "noise-ceiling"]  # the population protocol's floor (split-half is the matched one's)
    results = pd.DataFrame(rows, columns=["dataset", "split", "seed", "method", "aggregator", "metric", "value"])
    return results, preds, gold


def run_demo(llm: Any, out: str | Path, *, n_texts: int = DEFAULT_TEXTS, test_size: float = 0.2, seed: int = 0,
             epochs: int = 200, embedder: str = "auto", progress: bool = True,
             say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fit, sample, score (see the module docstring). Returns the scores table and timings."""
    from crowdllm.data import load_dataset
    from crowdllm.data.splits import split_dataset
    from crowdllm.llm.reference import save_references
    from crowdllm.study.card import write_card
    from crowdllm.study.fit import fit_study, profile_summary, task_references

    say = say or (lambda _m: None)
    if n_texts < 20:
        raise ConfigError(f"--texts must be at least 20 (got {n_texts})")
    out = Path(out)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    full = load_dataset(DATASET)
    ids = np.sort(full.tasks["task"].astype(str).to_numpy())
    chosen = np.random.default_rng(seed).choice(ids, size=min(n_texts, len(ids)), replace=False)
    ds = full.subset(tasks=sorted(chosen))
    ds = ds.subset(workers=ds.responses["worker"].unique())  # the people who rated those texts
    split = split_dataset(ds, by="task", test_size=test_size, random_state=seed)
    train, test = split.train, split.test
    timings["load"] = time.perf_counter() - t0
    say(f"POPQUORN offensiveness: {ds.n_tasks} texts (seed {seed}), {train.n_tasks} to fit on, "
        f"{test.n_tasks} held out; {ds.n_responses:,} real answers from {ds.n_workers} people")

    t0 = time.perf_counter()
    say(f"LLM reference for {ds.n_tasks} texts (one log-prob call each; cached answers are free) ...")
    refs = task_references(ds.tasks, ds.label, llm, default_template=DATASET, progress=progress, seed=seed)
    timings["reference"] = time.perf_counter() - t0
    keep = ["y_ref", *[c for c in refs.columns if str(c).startswith("p_")]]

    t0 = time.perf_counter()
    crowd, facts = fit_study(train, refs[keep], crowd_params={"epochs": epochs, "embedder": embedder}, seed=seed,
                             validation=True, say=say)
    timings["fit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    results, preds, gold = _score_held_out(ds, train, test, crowd, refs, seed)
    timings["sample_and_score"] = time.perf_counter() - t0

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "results.csv") as tmp:
        results.to_csv(tmp, index=False, float_format="%.6g")
    predictions = pd.concat([gold.assign(source="real", method="real people")]
                            + [p[["task", "worker", "label"]].assign(source="virtual", method=name)
                               for name, p in preds.items() if name in ("crowdllm", "llm-reference", "global")],
                            ignore_index=True)
    with atomic_path(out / "predictions.csv") as tmp:
        predictions.to_csv(tmp, index=False)
    save_references(refs[keep], out / "references.csv")
    crowd_dir = out / "crowd"
    crowd.save(crowd_dir)
    card = {"data": {"name": DATASET, "source": DATASET, "responses": train.n_responses, "tasks": train.n_tasks,
                     "workers": train.n_workers, "dropped_rows": 0, "description":
                     f"demo: the training part ({train.n_tasks} texts) of a seeded subset of {ds.n_tasks} texts"},
            "label": ds.label.to_dict(), "question": {}, "profiles": profile_summary(train),
            "reference": {"backend": llm.backend, "model": llm.model, "strategy": refs.attrs.get("strategy"),
                          "template": DATASET, "tasks": int(len(refs)), "missing": int(refs["y_ref"].isna().sum())},
            "crowd": {"epochs": epochs, "embedder": embedder}, "seed": seed, **facts}
    write_card(crowd_dir, card)
    atomic_write_json(out / "run.json", {"command": f"crowdllm crowd demo --texts {n_texts} --seed {seed}",
                                         "texts": int(ds.n_tasks), "held_out_texts": int(test.n_tasks),
                                         "seconds": timings, "llm": {"backend": llm.backend, "model": llm.model}})
    return {"results": results, "timings": timings, "crowd_dir": crowd_dir, "train": train, "test": test,
            "held_out_people": int(gold["worker"].nunique()), "held_out_texts": int(gold["task"].nunique())}


def compact_table(results: pd.DataFrame) -> pd.DataFrame:
    """Methods as rows; MAE (mean), Avg WD, CS (centred, mean); the noise ceiling last."""
    want = {("mean", "mae"): "MAE", ("-", "avg_wd"): "Avg WD", ("mean", "cs_centered"): "CS"}
    rows = []
    for method, part in results.groupby("method", sort=False):
        vals = {want[(a, m)]: v for a, m, v in part[["aggregator", "metric", "value"]].itertuples(index=False)
                if (a, m) in want}
        if vals:
            rows.append({"method": method, **vals})
    table = pd.DataFrame(rows).set_index("method")
    floors = [m for m in table.index if m == "noise-ceiling"]
    return table.loc[[m for m in table.index if m not in floors] + floors]
