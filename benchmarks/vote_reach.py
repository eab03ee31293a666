"""How far can any method go on top-k votes? The reach of a vote-count MAE goal (docs/results.md, Table 5).

    python benchmarks/vote_reach.py                    # zurich-pb-top5: shares and profiles, about 8 minutes
    python benchmarks/vote_reach.py --quick            # fewer rounds (about 1 minute)
    python benchmarks/vote_reach.py --part shares --rounds 20000
    python benchmarks/vote_reach.py --part splits --seeds 5   # Table 5's splits, at exact expectations

The votes are scored by the per-item count MAE of ``n`` gold voters (``--gold``, 36 in Table 5: 20 % of
180). Three parts; the first two simulate from the real ballots of all voters:

- ``shares``: a method that predicts only each item's share of voters. Its shares come from ``m`` voters
  drawn with replacement from all voters (m = the training voters, 144 in Table 5, and 2x, 4x, 10x that);
  the gold voters are drawn the same way, so the last row, the exact shares of all voters, is the noise
  ceiling (:func:`crowdllm.evaluate.noise._exact_count_errors`, printed next to it). The training
  voters' shares are also scored shrunk toward their mean (weights :data:`SHRINK`).
- ``profiles``: a world where the voter model (:class:`crowdllm.crowd.voters.VoterChoice`, the
  conditional logit the digital crowd uses for votes) fitted on *all* voters is the truth. Each round
  draws every voter's ballot from it, splits the voters as Table 5 does (train / gold, at random), and
  scores on the gold voters: the true per-voter probabilities (the floor of any model of the profiles),
  the true shares (the noise ceiling of this world), the training voters' shares (the global baseline),
  and a voter model fitted on the training voters' ballots. The fitted truth has as much profile effect
  as the in-sample fit finds, more than a held-out fit does, so this part is generous to profile models.
- ``splits``: Table 5's own splits (by voter, ``--seeds``), each scored at its exact expectation rather
  than from a virtual crowd: the training voters' shares (global) and the voter model fitted on the
  training voters (``VoterChoice()`` alone, without the rest of the crowd), and that model's counts
  from a virtual crowd of 30 ballots per gold voter (what the population protocol scores), averaged
  over 200 virtual crowds: the sampling noise the protocol adds.

A method's expected count MAE is estimated from its per-voter inclusion probabilities (the Gumbel-top-k
law, ``--draws`` Monte-Carlo ballots per voter), never from its own few samples. Not part of the test
suite; tests/evaluate/test_vote_reach.py runs the first two small.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from crowdllm.crowd.voters import VoterChoice
from crowdllm.data.dataset import CrowdDataset
from crowdllm.evaluate.baselines import top_k_without_replacement
from crowdllm.evaluate.noise import _exact_count_errors

SHRINK = (1.0, 0.95, 0.9, 0.8)  # weights of the estimated shares against their mean (1: as estimated)


def ballots(ds: CrowdDataset) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(tasks, workers, voters x items 0/1 ballots) of a top-k dataset, rows in the tables' order."""
    tasks, workers = ds.tasks.reset_index(drop=True), ds.workers.reset_index(drop=True)
    wide = ds.responses.pivot_table(index="worker", columns="task", values="label", aggfunc="max")
    wide = wide.reindex(index=workers["worker"].astype(str), columns=tasks["task"].astype(str))
    return tasks, workers, wide.fillna(0).to_numpy(dtype=float)


def choice_weights(utilities: np.ndarray) -> np.ndarray:
    """Each voter's item weights ``exp(u)`` (scaled per voter): Gumbel-top-k of ``u`` draws in proportion."""
    return np.exp(utilities - utilities.max(axis=1, keepdims=True))


def inclusion(weights: np.ndarray, k: int, draws: int, generator: np.random.Generator) -> np.ndarray:
    """Each voter's probability of putting each item among their ``k`` (drawn one after another in
    proportion to ``weights``), from ``draws`` ballots per voter."""
    total = np.zeros_like(weights)
    for _ in range(draws):
        total += top_k_without_replacement(weights, k, generator)
    return total / draws


def shares_reach(M: np.ndarray, gold: int, sizes: list[int], rounds: int, seed: int) -> pd.DataFrame:
    """Expected count MAE against ``gold`` voters of shares estimated from each of ``sizes`` voters."""
    generator = np.random.default_rng(seed)
    share = M.mean(axis=0)
    rows = []
    for m in sizes:
        shrink = SHRINK if m == sizes[0] else (1.0,)  # the first size also shrunk toward the mean share
        errors = np.empty((rounds, len(shrink)))
        for r in range(rounds):
            train = M[generator.integers(0, len(M), size=m)].mean(axis=0)
            counts = M[generator.integers(0, len(M), size=gold)].sum(axis=0)
            for j, lam in enumerate(shrink):
                errors[r, j] = np.abs(gold * (lam * train + (1 - lam) * train.mean()) - counts).mean()
        for j, lam in enumerate(shrink):
            rows.append({"shares from": f"{m} voters" + (f", shrunk {lam:g}" if lam < 1 else ""),
                         "count MAE": errors[:, j].mean(), "se": errors[:, j].std(ddof=1) / np.sqrt(rounds)})
    errors = np.empty(rounds)
    for r in range(rounds):
        errors[r] = np.abs(gold * share - M[generator.integers(0, len(M), size=gold)].sum(axis=0)).mean()
    rows.append({"shares from": "all voters, simulated", "count MAE": errors.mean(),
                 "se": errors.std(ddof=1) / np.sqrt(rounds)})
    rows.append({"shares from": "all voters, exact (the noise ceiling)",
                 "count MAE": _exact_count_errors(gold, share)["mae"], "se": 0.0})
    return pd.DataFrame(rows)


def profiles_reach(tasks: pd.DataFrame, workers: pd.DataFrame, M: np.ndarray, *, k: int, gold: int,
                   rounds: int, draws: int, seed: int, ordered: dict[str, list[str]],
                   progress: bool = False) -> pd.DataFrame:
    """Per round, the gold voters' count MAE of four predictors in the world where the voter model fitted
    on all of ``M`` is the truth (see the module docs)."""
    generator = np.random.default_rng(seed)
    truth = VoterChoice().fit(tasks, workers, M, ordered_attributes=ordered)
    weights = choice_weights(truth.utilities(tasks, workers))
    P = inclusion(weights, k, 5 * draws, generator)
    rows = []
    for r in range(rounds):
        B = top_k_without_replacement(weights, k, generator).astype(float)
        order = generator.permutation(len(M))
        test, train = np.sort(order[:gold]), np.sort(order[gold:])
        counts = B[test].sum(axis=0)
        model = VoterChoice().fit(tasks, workers.iloc[train], B[train], ordered_attributes=ordered)
        fitted = inclusion(choice_weights(model.utilities(tasks, workers.iloc[test])), k, draws,
                           generator).sum(axis=0)
        rows.append({"round": r,
                     "true voter probabilities": np.abs(P[test].sum(axis=0) - counts).mean(),
                     "true shares": np.abs(gold * P.mean(axis=0) - counts).mean(),
                     "training shares (global)": np.abs(gold * B[train].mean(axis=0) - counts).mean(),
                     "voter model fitted on the training voters": np.abs(fitted - counts).mean()})
        if progress:
            print(f"  round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    return pd.DataFrame(rows).set_index("round")


def splits_scores(ds: CrowdDataset, seeds: int, draws: int, per_answer: int = 30, redraws: int = 200
                  ) -> pd.DataFrame:
    """Per seed of Table 5's split by voter: the gold voters' count MAE of the training shares and of
    the voter model fitted on the training voters, both at their expectations; and the voter model's
    mean count MAE when its counts come from a virtual crowd of ``per_answer`` ballots per gold voter
    (the population protocol's ``--virtual-per-answer``), over ``redraws`` virtual crowds."""
    from crowdllm.data.splits import split_dataset

    tasks, workers, M = ballots(ds)
    k = int(ds.label.k or 1)
    rows = []
    for seed in range(seeds):
        test = workers["worker"].astype(str).isin(split_dataset(ds, by="worker", random_state=seed).test_workers)
        te, tr = np.flatnonzero(test.to_numpy()), np.flatnonzero(~test.to_numpy())
        counts = M[te].sum(axis=0)
        model = VoterChoice().fit(tasks, workers.iloc[tr], M[tr], ordered_attributes=ds.ordered_attributes)
        weights = choice_weights(model.utilities(tasks, workers.iloc[te]))
        probs = inclusion(weights, k, draws, np.random.default_rng(seed))
        generator = np.random.default_rng(seed + 1)
        sampled = [np.abs(sum(top_k_without_replacement(weights, k, generator)
                              for _ in range(per_answer)).sum(axis=0) / per_answer - counts).mean()
                   for _ in range(redraws)]
        rows.append({"seed": seed, "training shares (global)": np.abs(len(te) * M[tr].mean(axis=0) - counts).mean(),
                     "voter model fitted on the training voters": np.abs(probs.sum(axis=0) - counts).mean(),
                     f"the same, {per_answer} virtual ballots per voter": float(np.mean(sampled))})
    return pd.DataFrame(rows).set_index("seed")


def summarize(per_round: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error per predictor, and each one's ratio to the global baseline (mean of the
    per-round ratios, with its standard error)."""
    base = per_round["training shares (global)"]
    ratio = per_round.div(base, axis=0)
    n = len(per_round)
    return pd.DataFrame({"count MAE": per_round.mean(), "se": per_round.std(ddof=1) / np.sqrt(n),
                         "x global": ratio.mean(), "se of x": ratio.std(ddof=1) / np.sqrt(n)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="zurich-pb-top5")
    parser.add_argument("--part", choices=["shares", "profiles", "splits", "both"], default="both")
    parser.add_argument("--gold", type=int, default=None, help="gold voters (default: 20 %% of the voters)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds (default 20,000 for shares, 40 for profiles; --quick: 2,000 / 4)")
    parser.add_argument("--draws", type=int, default=2000, help="Monte-Carlo ballots per voter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=5, help="Table 5's splits for --part splits")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)

    from crowdllm.data.registry import load_dataset

    ds = load_dataset(args.dataset)
    if not ds.label.kind_.votes:
        print(f"error: --dataset {args.dataset}: not a top-k vote dataset", file=sys.stderr)
        return 2
    tasks, workers, M = ballots(ds)
    gold = args.gold or int(round(0.2 * len(M)))
    train = len(M) - gold
    start = time.perf_counter()
    pd.set_option("display.width", 160)
    if args.part in ("shares", "both"):
        rounds = args.rounds or (2000 if args.quick else 20000)
        table = shares_reach(M, gold, [train, 2 * train, 4 * train, 10 * train], rounds, args.seed)
        print(f"# shares only: {len(M)} voters, {gold} gold voters, {rounds} rounds")
        print(table.to_string(index=False, float_format="%.3f"))
    if args.part in ("profiles", "both"):
        rounds = args.rounds or (4 if args.quick else 40)
        per_round = profiles_reach(tasks, workers, M, k=int(ds.label.k or 1), gold=gold, rounds=rounds,
                                   draws=args.draws // (4 if args.quick else 1), seed=args.seed,
                                   ordered=ds.ordered_attributes, progress=True)
        print(f"# profiles: the voter model fitted on all {len(M)} voters is the truth; "
              f"{train} training / {gold} gold voters, {rounds} rounds")
        print(summarize(per_round).to_string(float_format="%.3f"))
    if args.part == "splits":
        per_seed = splits_scores(ds, args.seeds, args.draws)
        print(f"# Table 5's splits by voter, seeds 0-{args.seeds - 1}, at exact expectations")
        print(per_seed.to_string(float_format="%.3f"))
        print(summarize(per_seed).to_string(float_format="%.3f"))
    print(f"# {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
