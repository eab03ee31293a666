"""Cost saving: how many virtual people match the real crowd, and what does that cost next to people?

The paper's appendix B.5. For every held-out task and tolerance ``tol`` (default ±0.1 … ±0.4) we find
the smallest virtual crowd whose mean answer lands within ``tol`` of the real crowd's mean on that task
(``n_needed``; missing when even ``max_people`` virtual people do not get there). The default split is
by *task*: the digital crowd answers problems it never saw, and the gold is the whole real crowd of
each new problem — the situation in which one would use it instead of paying people.

The money side (:func:`cost_table`) needs, per method, how many LLM calls it makes
(:class:`LLMCost`: a fixed number per task — CrowdLLM asks the LLM once per task for its reference —
plus a number per virtual person — a multi-persona LLM asks once per person) and the prices
(:class:`Prices`). Humans are paid per judgement; the real crowd of a task costs its size times that
price, and fitting the digital crowd costs the training judgements once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from crowdllm.crowd.kinds import crowd_kind
from crowdllm.data.dataset import CrowdDataset
from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses._common import (
    Trainer,
    check_methods,
    check_numeric,
    evaluate_method,
    method_steps,
    split_train_test,
    tidy,
    virtual_people,
)

COLUMNS = ["dataset", "split", "seed", "method", "task", "tolerance", "n_needed", "n_real", "judgements_real",
           "n_train_responses", "train_judgements"]
DEFAULT_TOLERANCES = (0.1, 0.2, 0.3, 0.4)
RULES = ("stays", "first")
BINS = ("1", "2", "3", "4", "5", "6", "7", "8", ">8")


@dataclass(frozen=True)
class LLMCost:
    """LLM calls a method makes: ``per_task`` regardless of crowd size, ``per_person`` per virtual person."""

    per_task: float = 0.0
    per_person: float = 0.0


@dataclass(frozen=True)
class Prices:
    """Money per human judgement and per million LLM tokens; ``tokens_per_call`` prompt + answer."""

    per_judgement: float = 0.10
    per_million_tokens: float = 0.0
    tokens_per_call: float = 300.0

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"price setting {key}={value} must be a number >= 0")


def first_within(abs_err: np.ndarray, tol: float, rule: str = "stays") -> np.ndarray:
    """Per row of ``abs_err`` (tasks x crowd sizes 1..P), the crowd size that matches within ``tol``
    under ``rule`` (see :func:`people_needed`); NaN when none does."""
    hit = abs_err <= tol + 1e-9
    if rule == "stays":
        # stays[t, j]: every size from j to the last is within the tolerance
        hit = np.flip(np.cumprod(np.flip(hit, axis=1), axis=1), axis=1).astype(bool)
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.nan)


def people_needed(
    dataset: CrowdDataset,
    methods: Mapping[str, Trainer],
    *,
    tolerances: Sequence[float] = DEFAULT_TOLERANCES,
    max_people: int = 50,
    seeds: Sequence[int] = (0,),
    split: str = "task",
    test_size: float = 0.2,
    pool: str = "train",
    rule: str = "stays",
    progress: bool = False,
    on_step: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Per held-out task and tolerance, the smallest virtual crowd that matches the real crowd's mean.

    ``rule="stays"`` (default): the smallest ``N`` from which the mean of the first ``N``, ``N+1``, ...,
    ``max_people`` virtual people all stay within the tolerance — the crowd size one can trust.
    ``rule="first"``: the first ``N`` whose mean is within the tolerance (the paper's reading; a noisy
    method gets there by luck as its running mean wanders across the target).

    Returns ``dataset, split, seed, method, task, tolerance, n_needed (NaN: not within max_people),
    n_real (the real crowd's size on that task), judgements_real (what that crowd was paid for:
    n_real, or for top-k votes the task's share of the ballots, n_real / items, since one ballot covers
    every item), n_train_responses, train_judgements (the training part's paid judgements)``."""
    check_numeric(dataset, "cost")
    methods = check_methods(methods)
    tols = sorted({float(t) for t in tolerances})
    if not tols or tols[0] <= 0:
        raise ConfigError("tolerances: give one or more values > 0, e.g. 0.1,0.2,0.3,0.4")
    if rule not in RULES:
        raise ConfigError(f"rule '{rule}' is not one of {', '.join(RULES)}")
    if max_people < 1:
        raise ConfigError(f"max_people must be >= 1 (got {max_people})")
    sizes = list(range(1, max_people + 1))
    rows: list[dict] = []
    with method_steps(len(seeds) * len(methods), "cost", rows, COLUMNS, progress=progress,
                      on_step=on_step) as done:
        for seed in seeds:
            train, test = split_train_test(dataset, split, test_size, seed)
            people = virtual_people(train, test, pool, max_people, seed=seed)
            for name, factory in methods.items():
                fitted = factory(train, seed)
                curves, _ = evaluate_method(dataset, fitted, test, people, sizes, seed=seed)
                # tasks the method could not answer count as never matched
                real_n = test.responses.groupby("task").size()
                votes = crowd_kind(dataset.label).votes
                per_judgement = 1.0 / max(1, len(real_n)) if votes else 1.0
                train_judgements = (train.responses["worker"].nunique() if votes else len(train.responses))
                for tol in tols:
                    first = dict(zip(curves.tasks, first_within(curves.abs_err, tol, rule), strict=True))
                    for task, n_real in real_n.items():
                        rows.append({
                            "dataset": dataset.name, "split": split, "seed": seed, "method": name,
                            "task": str(task), "tolerance": tol, "n_needed": first.get(str(task), np.nan),
                            "n_real": int(n_real), "judgements_real": n_real * per_judgement,
                            "n_train_responses": len(train.responses), "train_judgements": train_judgements,
                        })
                done()
    out = tidy(rows, COLUMNS)
    out.attrs["max_people"] = max_people
    return out


def needed_histogram(needed: pd.DataFrame) -> pd.DataFrame:
    """Share of tasks by virtual people needed (bins 1 … 8 and >8, unresolved counted in >8), per
    method and tolerance, averaged over seeds: the paper's Figure 24 as numbers."""
    if needed.empty:
        return pd.DataFrame(columns=["method", "tolerance", "bin", "share"])
    n = needed["n_needed"]
    binned = np.where(n.isna() | (n > 8), ">8", n.fillna(0).astype(int).astype(str))
    frame = needed.assign(bin=pd.Categorical(binned, categories=list(BINS), ordered=True))
    counts = (frame.groupby(["method", "tolerance", "seed", "bin"], observed=False).size()
              .rename("count").reset_index())
    totals = counts.groupby(["method", "tolerance", "seed"])["count"].transform("sum")
    counts["share"] = counts["count"] / totals.where(totals > 0, 1)
    return (counts.groupby(["method", "tolerance", "bin"], observed=False)["share"].mean().reset_index())


def cost_table(needed: pd.DataFrame, *, llm_costs: Mapping[str, LLMCost] | None = None,
               prices: Prices | None = None, max_people: int | None = None) -> pd.DataFrame:
    """What matching the real crowd costs, per method and tolerance (means over seeds).

    Columns: ``resolved`` (share of tasks matched within ``max_people``), ``mean_needed`` and
    ``median_needed`` (over matched tasks), ``virtual_per_task`` (people sampled per task, counting
    ``max_people`` for unmatched tasks), ``llm_calls_per_task``, ``tokens_per_task``,
    ``llm_cost_per_task``, ``human_per_task`` (real judgements per task; top-k votes: the task's share
    of the ballots), ``human_cost_per_task``,
    ``training_cost`` (the training judgements, paid once) and ``break_even_tasks`` (new tasks after
    which the digital crowd has paid for its training data; empty when it never does)."""
    prices = prices or Prices()
    llm_costs = dict(llm_costs or {})
    cap = max_people or int(needed.attrs.get("max_people", needed["n_needed"].max(skipna=True) or 1))
    rows = []
    for (method, tol), grp in needed.groupby(["method", "tolerance"], sort=True):
        per_seed = []
        for _, g in grp.groupby("seed"):
            n = g["n_needed"]
            cost = llm_costs.get(str(method), LLMCost())
            virtual = float(n.fillna(cap).mean())
            calls = cost.per_task + cost.per_person * virtual
            tokens = calls * prices.tokens_per_call
            llm_money = tokens / 1e6 * prices.per_million_tokens
            human = float(g["judgements_real"].mean())
            human_money = human * prices.per_judgement
            training = float(g["train_judgements"].iloc[0]) * prices.per_judgement
            saving = human_money - llm_money
            per_seed.append({
                "resolved": float(n.notna().mean()),
                "mean_needed": float(n.mean()) if n.notna().any() else np.nan,
                "median_needed": float(n.median()) if n.notna().any() else np.nan,
                "virtual_per_task": virtual, "llm_calls_per_task": calls, "tokens_per_task": tokens,
                "llm_cost_per_task": llm_money, "human_per_task": human, "human_cost_per_task": human_money,
                "training_cost": training,
                "break_even_tasks": training / saving if saving > 0 else np.nan,
            })
        mean = pd.DataFrame(per_seed).mean(numeric_only=True)
        rows.append({"method": method, "tolerance": tol, **mean.to_dict()})
    return pd.DataFrame(rows)


def summarize(needed: pd.DataFrame) -> pd.DataFrame:
    """Headline: share of tasks matched and people needed, per method and tolerance."""
    if needed.empty:
        return needed
    table = cost_table(needed)
    return table[["method", "tolerance", "resolved", "mean_needed", "median_needed", "human_per_task"]]
