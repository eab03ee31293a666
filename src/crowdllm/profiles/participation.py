"""Who takes part in which task: each (person, task) pair is a seeded Bernoulli(p) draw."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from crowdllm._io import rng as make_rng
from crowdllm.errors import ConfigError


def participation(
    workers: pd.DataFrame | Sequence[str],
    tasks: pd.DataFrame | Sequence[str],
    p: float | pd.Series | np.ndarray = 1.0,
    random_state: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """The (task, worker) pairs that take place, each with probability ``p``.

    ``p`` is one probability for everyone, a Series indexed by worker id (each person's propensity),
    or a ``(n_tasks, n_workers)`` array. Returns a frame ``task, worker`` ordered by task then worker.
    """
    wids = np.asarray(workers["worker"] if isinstance(workers, pd.DataFrame) else list(workers), dtype=str)
    tids = np.asarray(tasks["task"] if isinstance(tasks, pd.DataFrame) else list(tasks), dtype=str)
    if isinstance(p, pd.Series):
        missing = [w for w in wids if w not in p.index]
        if missing:
            raise ConfigError(f"participation probability missing for worker(s) {missing[:3]}")
        probs = np.broadcast_to(p.loc[wids].to_numpy(dtype=float)[None, :], (len(tids), len(wids)))
    else:
        arr = np.asarray(p, dtype=float)
        if arr.ndim == 0:
            probs = np.full((len(tids), len(wids)), float(arr))
        elif arr.shape == (len(tids), len(wids)):
            probs = arr
        else:
            raise ConfigError(f"participation p must be a number, a Series by worker or a (tasks, workers) "
                              f"array of shape {(len(tids), len(wids))}; got shape {arr.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ConfigError("participation probabilities must lie in [0, 1]")
    take = make_rng(random_state).random(probs.shape) < probs
    ti, wi = np.nonzero(take)
    return pd.DataFrame({"task": tids[ti], "worker": wids[wi]})
