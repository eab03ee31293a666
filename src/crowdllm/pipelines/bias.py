"""The swap test: do a crowd's comparison votes read the texts, or follow the position they are shown in?

Pairs are a short text and a clearly damaged copy of it (misspellings, a dropped sentence, or a
sentence that contradicts the first one). Every pair is shown in both orders:

- **single prompts** (how a comparison was asked before it was counterbalanced): each voter answers
  one prompt per order; reported per order is the share of votes that pick the better text, and the
  share of voters whose two answers name the same *position* (A both times: they follow position);
- **the counterbalanced step** (:func:`crowdllm.pipelines.steps.compare`, what every pipeline now
  uses): each voter sees both orders and counts only when it picks the same text twice; the step is
  run with the better text given first and given second, and reported per order is the share of
  pairs the better text wins (and the share with no winner: every voter abstained or a tie).

The goal for a crowd whose votes read the content: the better text wins in >= 85 % of the pairs in
both orders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import rng as make_rng
from crowdllm.errors import ConfigError
from crowdllm.llm.base import LanguageModel
from crowdllm.pipelines.run import Run
from crowdllm.pipelines.steps import _read_vote, _vote_prompt, compare
from crowdllm.pipelines.trace import Trace

DAMAGES = ("typos", "dropped", "contradiction")
CRITERION = "Which version is the better text: correctly spelled, complete, and never contradicting itself?"
ROLE = "You are a careful crowd worker comparing two versions of a short text."


def base_texts() -> list[dict[str, str]]:
    """The built-in short texts (three sentences each, with a sentence that contradicts the first)."""
    raw = resources.files("crowdllm.pipelines.examples").joinpath("swap-texts.json").read_text(encoding="utf-8")
    return json.loads(raw)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def misspell(text: str, k: int = 4, seed: int = 0) -> str:
    """``text`` with ``k`` words of 4+ letters misspelled (two inner letters swapped, or one doubled)."""
    rng = make_rng(seed)
    tokens = re.split(r"(\W+)", text)
    candidates = [i for i, t in enumerate(tokens) if len(t) >= 4 and t.isalpha()]
    for i in sorted(rng.choice(candidates, size=min(k, len(candidates)), replace=False)):
        w = tokens[i]
        j = int(rng.integers(1, len(w) - 2))
        swapped = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        tokens[i] = swapped if swapped != w else w[:j] + w[j] + w[j:]
    return "".join(tokens)


def damage(entry: dict[str, str], kind: str, seed: int = 0) -> str:
    """A clearly worse copy of ``entry['text']``: ``typos``, ``dropped`` (the middle sentence goes) or
    ``contradiction`` (the entry's contradicting sentence is added after the last one)."""
    text = entry["text"]
    if kind == "typos":
        return misspell(text, seed=seed)
    sents = _sentences(text)
    if kind == "dropped":
        return " ".join(sents[:1] + sents[2:]) if len(sents) >= 3 else " ".join(sents[:-1])
    if kind == "contradiction":
        return f"{text} {entry['contradiction']}"
    raise ConfigError(f"unknown damage '{kind}' (known: {', '.join(DAMAGES)})")


def swap_pairs(n: int = 20, *, seed: int = 0) -> list[dict[str, str]]:
    """``n`` pairs (better, worse), the damage kinds taken in turn over the shuffled texts."""
    texts = base_texts()
    if not 1 <= n <= len(texts) * len(DAMAGES):
        raise ConfigError(f"--n must be 1..{len(texts) * len(DAMAGES)} (there are {len(texts)} texts)")
    order = make_rng(seed).permutation(len(texts))
    out = []
    for i in range(n):
        entry = texts[int(order[i % len(texts)])]
        kind = DAMAGES[(i + i // len(texts)) % len(DAMAGES)]
        out.append({"id": f"{entry['id']}-{kind}", "damage": kind, "better": entry["text"],
                    "worse": damage(entry, kind, seed=seed + i)})
    return out


@dataclass
class SwapResult:
    rows: pd.DataFrame      #: one row per pair and order: the single votes and the step's winner
    summary: pd.DataFrame   #: per measure and order: share better, share following position, no winner
    usage: dict[str, Any]


def swap_test(llm: LanguageModel, pairs: Sequence[dict[str, str]] | None = None, *, n: int = 20,
              voters: int = 3, temperature: float = 0.7, seed: int = 0, criterion: str = CRITERION,
              trace: Trace | None = None, logprobs: bool = False,
              by: Sequence[str] | None = None) -> SwapResult:
    """Run the swap test (see the module docstring) and summarise it. ``by`` names the ways the
    comparison step is run besides sampled answers (always run): ``logprobs`` and ``checklist`` (one
    voter each: their probabilities are deterministic); ``logprobs=True`` is ``by=["logprobs"]``.

    Every measurement of one pair runs with the same seed, so the single prompts and both runs of
    the step ask the same questions with the same sampling seed: a caching backend answers them
    once (the step's result cannot depend on the order it was given the texts in, which is the
    point of counterbalancing), and the single votes and the step read the same answers."""
    pairs = list(pairs) if pairs is not None else swap_pairs(n, seed=seed)
    ways = list(by) if by else (["answers", "logprobs"] if logprobs else ["answers"])
    if "answers" not in ways:
        ways.insert(0, "answers")
    unknown = [w for w in ways if w not in _COLUMN]
    if unknown:
        raise ConfigError(f"unknown comparison '{unknown[0]}' (known: {', '.join(_COLUMN)})")
    trace = trace if trace is not None else Trace()
    usage: dict[str, float] = {}
    question = f"Which version is better? {criterion}"
    rows = []

    def fresh(i: int) -> Run:
        return Run(llm, trace=trace, seed=seed * 100_003 + i)

    def add(run: Run) -> None:
        for k, v in run.usage.items():
            usage[k] = usage.get(k, 0) + v

    for i, p in enumerate(pairs):
        options = [p["better"], p["worse"]]
        # single prompts: every voter, the better text shown first (order [0, 1]) and second ([1, 0])
        run = fresh(i)
        crowd = run.workers(voters, ROLE, temperature=temperature, prefix="voter")
        orders = [[0, 1], [1, 0]]
        with run.step(f"{p['id']} single prompts"):
            answers = run.ask_each([w for w in crowd for _ in orders],
                                   [_vote_prompt(question, options, o, False) for o in orders] * len(crowd),
                                   task="vote", max_tokens=8)
        add(run)
        picks = {w.name: [_read_vote(answers[2 * j + k], options, orders[k], False) for k in range(2)]
                 for j, w in enumerate(crowd)}
        # the counterbalanced step, given the better text first and second
        winners: dict[str, dict[bool, bool | None]] = {}
        for how in ways:
            for first_is_better in (True, False):
                a, b = (p["better"], p["worse"]) if first_is_better else (p["worse"], p["better"])
                run = fresh(i)
                with run.step(f"{p['id']} step by {how} {'better first' if first_is_better else 'better second'}"):
                    res = compare(run, crowd if how == "answers" else crowd[:1], criterion, a, b,
                                  task="compare", by=how)
                add(run)
                better_key = "0" if first_is_better else "1"
                winners.setdefault(how, {})[first_is_better] = None if res.winner is None else \
                    res.winner == better_key
        for idx, label in ((0, "better first"), (1, "better second")):
            votes = [v[idx] for v in picks.values()]
            rows.append({
                "pair": p["id"], "damage": p["damage"], "order": label,
                "votes": len(votes), "abstained": sum(v is None for v in votes),
                "picked_better": sum(v == 0 for v in votes),
                "followed_position": sum(x is not None and y is not None and x != y for x, y in picks.values()),
                **{_COLUMN[how]: _label(winners[how][idx == 0]) for how in ways},
            })
    frame = pd.DataFrame(rows)
    out = {k: (round(v, 3) if k == "seconds" else int(v)) for k, v in usage.items()}
    return SwapResult(rows=frame, summary=summarise_swap(frame), usage=out)


_COLUMN = {"answers": "step_winner", "logprobs": "logprob_winner", "checklist": "checklist_winner"}


def _label(win: bool | None) -> str:
    return {None: "none", True: "better", False: "worse"}[win]


def summarise_swap(rows: pd.DataFrame) -> pd.DataFrame:
    """Per order: single votes picking the better text (of the votes cast, abstentions apart), voters
    following position, and the counterbalanced step's wins / no-winner shares over pairs."""
    out = []
    for order in ("better first", "better second"):
        sub = rows[rows["order"] == order]
        votes = int(sub["votes"].sum())
        cast = votes - int(sub["abstained"].sum())
        out.append({
            "order": order, "pairs": len(sub),
            "single better": sub["picked_better"].sum() / cast if cast else np.nan,
            "single abstained": sub["abstained"].sum() / votes if votes else np.nan,
            "single majority better": float(np.mean(sub["picked_better"] * 2 > sub["votes"] - sub["abstained"]))
            if len(sub) else np.nan,
            "follows position": sub["followed_position"].sum() / votes if votes else np.nan,
            "step better": float(np.mean(sub["step_winner"] == "better")) if len(sub) else np.nan,
            "step no winner": float(np.mean(sub["step_winner"] == "none")) if len(sub) else np.nan,
            **({"log-prob step better": float(np.mean(sub["logprob_winner"] == "better")) if len(sub) else np.nan}
               if "logprob_winner" in sub.columns else {}),
            **({"checklist step better": float(np.mean(sub["checklist_winner"] == "better")) if len(sub) else np.nan}
               if "checklist_winner" in sub.columns else {}),
        })
    return pd.DataFrame(out)
