"""How much do 1, 2, 5 real answers per new task improve the digital crowd? (docs/study.md)

    python benchmarks/mixing_in.py                     # POPQUORN offensiveness, 240 texts, 5 draws
    python benchmarks/mixing_in.py --texts 400 --draws 10 --model-path test

A seeded subset of POPQUORN offensiveness texts is split by text: the crowd is fitted on 70% of them;
for each of the other texts ("new tasks") the real raters are shuffled, the first k (k = 0, 1, 2, 5)
are the pilot answers mixed in with ``--real`` semantics (:func:`crowdllm.study.sample.mix_real`), and
the raters after the fifth are the held-out real people the crowd is scored against (the same people
for every k; texts with fewer than 7 raters are left out). The crowd answers each new text with
``--people`` virtual people from the training pool (as ``crowd sample --people 200 --real ...``); MAE of
the per-task mean and Avg WD against the held-out people are averaged over ``--draws`` pilot draws. Next
to the crowd: the pilot alone (the mean and distribution of its k answers) and the crowd without mixing. The LLM reference comes from the backend flags' model through
the disk cache (the default embedded model: free when ``crowdllm crowd demo`` or ``reproduce`` already
asked about these texts).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=240)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--people", type=int, default=200, help="virtual people per new task")
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--reference", default="llm", help="llm (default) or none (VAE only: a cheap reference)")
    args = parser.parse_args(argv)

    from crowdllm.crowd import DigitalCrowd
    from crowdllm.data import load_dataset
    from crowdllm.data.splits import split_dataset
    from crowdllm.evaluate.metrics import evaluate_predictions
    from crowdllm.llm import open_backend
    from crowdllm.study.fit import task_references
    from crowdllm.study.sample import sample_pairs

    started = time.perf_counter()
    full = load_dataset("popquorn-offensiveness")
    ids = np.sort(full.tasks["task"].astype(str).to_numpy())
    chosen = np.random.default_rng(args.seed).choice(ids, size=min(args.texts, len(ids)), replace=False)
    ds = full.subset(tasks=sorted(chosen))
    split = split_dataset(ds, by="task", test_size=0.3, random_state=args.seed)
    refs = None
    what = "none (VAE only)"
    if args.reference == "llm":
        llm = open_backend(base_url=[args.base_url] if args.base_url else None, model=args.model,
                           model_path=args.model_path)
        refs = task_references(ds.tasks, ds.label, llm, default_template="popquorn-offensiveness", progress=True)
        refs = refs[["y_ref", *[c for c in refs.columns if str(c).startswith("p_")]]]
        what = f"{llm.backend} / {llm.model}, {refs.attrs.get('strategy', 'logprob')}"
        getattr(llm, "close", lambda: None)()
    crowd = DigitalCrowd(epochs=args.epochs, random_state=args.seed).fit(split.train, refs)
    test = split.test
    resp = test.responses[["task", "worker", "label"]].reset_index(drop=True)
    tasks = test.tasks[test.tasks["task"].isin(set(resp["task"]))]
    from crowdllm.study.sample import people

    prof = people(crowd, n_people=args.people, random_state=args.seed + 7)
    all_pairs = pd.DataFrame([(t, w) for t in tasks["task"] for w in prof["worker"]], columns=["task", "worker"])
    rows = []
    for draw in range(args.draws):
        rng = np.random.default_rng(1000 + draw)
        order = resp.assign(r=rng.random(len(resp))).sort_values(["task", "r"])
        order["rank"] = order.groupby("task").cumcount()
        n_raters = order.groupby("task")["worker"].transform("size")
        order = order[n_raters >= 7]
        gold = order[order["rank"] >= 5][["task", "worker", "label"]]
        pairs = all_pairs[all_pairs["task"].isin(set(gold["task"]))]

        def score(pred: pd.DataFrame, gold: pd.DataFrame = gold) -> tuple[float, float]:
            s = evaluate_predictions(pred, gold, ds.label, aggregators=["mean"]).set_index(["aggregator", "metric"])
            return float(s.loc[("mean", "mae"), "value"]), float(s.loc[("-", "avg_wd"), "value"])

        for k in (0, 1, 2, 5):
            pilot = order[order["rank"] < k][["task", "worker", "label"]]
            virt = sample_pairs(crowd, tasks, prof, pairs, refs, real=pilot[["task", "label"]] if k else None,
                                random_state=2000 + 10 * draw + k)
            mae, wd = score(virt)
            rows.append({"draw": draw, "k": k, "method": "crowd + k real" if k else "crowd alone", "mae": mae,
                         "avg_wd": wd})
            if k:
                mae, wd = score(pilot)  # the k real answers alone: their mean and their distribution
                rows.append({"draw": draw, "k": k, "method": "k real alone", "mae": mae, "avg_wd": wd})
    table = pd.DataFrame(rows).groupby(["k", "method"], sort=True)[["mae", "avg_wd"]].agg(["mean", "std"])
    n_tasks = int(gold["task"].nunique())
    print(f"POPQUORN offensiveness: {ds.n_tasks} texts (seed {args.seed}), crowd fitted on {split.train.n_tasks}; "
          f"{n_tasks} new texts with >= 7 raters; scored against raters 6.. of each ({len(gold)} answers); "
          f"{args.people} virtual people per text; "
          f"{args.draws} pilot draws; kappa = {crowd.kappa_:.2f}; reference: {what}")
    print("| real answers per new task | method | MAE (mean) | Avg WD |")
    print("|---|---|---|---|")
    for (k, method), r in table.iterrows():
        print(f"| {k} | {method} | {r[('mae', 'mean')]:.3f} ± {r[('mae', 'std')]:.3f} | "
              f"{r[('avg_wd', 'mean')]:.3f} ± {r[('avg_wd', 'std')]:.3f} |")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
