"""Synthetic crowds with a known answer, for tests and the simulation study.

A task ``t`` has a latent score ``s_t`` and a text whose words carry that score (so a text model can
learn it). A worker has a profile (gender, age band, group) and a personal belief bias ``b_w``. A
rating is::

    y = clip(round(s_t + effects[profile] + diversity * b_w + noise * eps), low, high)

with ``b_w, eps ~ N(0, 1)``. Everything is seeded. ``truth`` holds the noise-free per-task mean over
the population, so a method's recovery of the truth can be measured exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crowdllm.data.dataset import CrowdDataset, LabelSpec

# Word pools: level 0 = harmless ... level 4 = very offensive. Made up for this project.
_WORDS = [
    ["lovely", "garden", "thanks", "sunny", "recipe", "friendly", "music", "puppy"],
    ["boring", "meh", "late", "traffic", "noisy", "weird", "cold", "messy"],
    ["annoying", "stupid", "lazy", "rude", "clueless", "pathetic", "awful", "dumb"],
    ["idiot", "moron", "disgusting", "loser", "trash", "hateful", "vile", "scum"],
    ["worthless", "subhuman", "filth", "vermin", "despicable", "degenerate", "garbage", "rotten"],
]
_FILLER = ["the", "this", "post", "people", "really", "about", "comment", "today", "thread", "again"]

GENDERS = ["Woman", "Man"]
AGES = ["18-29", "30-49", "50+"]
GROUPS = ["A", "B", "C"]


@dataclass
class SyntheticCrowd:
    dataset: CrowdDataset
    truth: pd.Series  # per-task noise-free population mean (index: task id)
    scores: pd.Series  # latent per-task score s_t
    worker_bias: pd.Series  # b_w per worker


def make_synthetic_crowd(
    n_tasks: int = 60,
    n_workers: int = 40,
    *,
    participation: float = 0.5,
    noise: float = 0.5,
    diversity: float = 0.5,
    woman_shift: float = 1.0,
    age_shift: float = 0.0,
    scale: tuple[int, int] = (1, 5),
    random_state: int = 0,
    name: str = "synthetic",
) -> SyntheticCrowd:
    """Make a seeded synthetic rating crowd (ordinal labels on ``scale``).

    ``woman_shift``: women rate this many points higher (a known profile effect a fitted model must
    recover). ``age_shift``: each older age band adds this much. Each worker takes part in each task
    with probability ``participation`` (at least one task each, at least two workers per task)."""
    rng = np.random.default_rng(random_state)
    lo, hi = scale
    scores = rng.uniform(lo, hi - 1.2, size=n_tasks)
    texts = []
    for s in scores:
        level = int(np.clip(np.round((s - lo) / (hi - lo) * 4), 0, 4))
        words = list(rng.choice(_WORDS[level], size=3, replace=True)) + list(rng.choice(_FILLER, size=4))
        rng.shuffle(words)
        texts.append(" ".join(words))
    tasks = pd.DataFrame({"task": [f"t{i:04d}" for i in range(n_tasks)], "text": texts})

    workers = pd.DataFrame({
        "worker": [f"w{i:04d}" for i in range(n_workers)],
        "gender": rng.choice(GENDERS, size=n_workers),
        "age": rng.choice(AGES, size=n_workers),
        "group": rng.choice(GROUPS, size=n_workers),
    })
    bias = rng.normal(size=n_workers)
    shift = (workers["gender"].eq("Woman").to_numpy() * woman_shift
             + workers["age"].map({a: i for i, a in enumerate(AGES)}).to_numpy() * age_shift)

    take = rng.random((n_tasks, n_workers)) < participation
    for t in range(n_tasks):  # at least two raters per task
        if take[t].sum() < 2:
            take[t, rng.choice(n_workers, size=2, replace=False)] = True
    for w in range(n_workers):  # every worker rates something
        if not take[:, w].any():
            take[rng.integers(n_tasks), w] = True
    ti, wi = np.nonzero(take)
    raw = scores[ti] + shift[wi] + diversity * bias[wi] + noise * rng.normal(size=len(ti))
    labels = np.clip(np.round(raw), lo, hi)
    responses = pd.DataFrame({
        "task": tasks["task"].to_numpy()[ti],
        "worker": workers["worker"].to_numpy()[wi],
        "label": labels.astype(float),
    })
    # noise-free population mean per task: average over a large reference population of profiles
    ref_shift = np.mean(woman_shift * 0.5 + age_shift * np.arange(len(AGES)).mean())
    truth = pd.Series(np.clip(scores + ref_shift, lo, hi), index=tasks["task"], name="truth")
    ds = CrowdDataset(
        responses=responses, tasks=tasks, workers=workers,
        label=LabelSpec("ordinal", scale=(float(lo), float(hi))), name=name,
        ordered_attributes={"age": list(AGES)},
        description="synthetic crowd with known per-task truth",
    ).validate()
    return SyntheticCrowd(
        dataset=ds, truth=truth, scores=pd.Series(scores, index=tasks["task"], name="score"),
        worker_bias=pd.Series(bias, index=workers["worker"], name="bias"),
    )
