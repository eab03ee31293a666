"""The simulation study (the paper's section 5.5): crowds with a known truth.

Generator. A task ``t`` has a latent score ``s_t``; a person ``w`` has a profile effect ``e(v_w)`` and a
lasting belief bias ``b_w ~ N(0, 1)``; each answer also carries response noise ``eps ~ N(0, 1)``::

    y = clip(round(s_t + e(v_w) + diversity * b_w + noise * eps), low, high)

``diversity`` (the paper's belief diversity, 0/1/2) and ``noise`` (the error of response, 0/1/2) set the
signal-to-noise level; the number of people and the number of tasks per person set the sample size.
Two sources of tasks and people:

- no base data set: :func:`crowdllm.data.synthetic.make_synthetic_crowd` (made-up texts whose words
  carry the score; women rate ``woman_shift`` higher);
- a base data set (e.g. POPQUORN offensiveness): its task texts with ``s_t`` = the task's real mean
  answer, its people's profiles, and additive profile effects estimated from its answers (the mean
  residual of each attribute level). The answers are then simulated, so the truth is known.

Truth. The answer a method should recover is the *expected* answer of the population, computed
exactly (not by sampling) from the generator: for each task, the average over the population's profiles
of ``sum_l l * P(clip(round(s + e + Z)) = l)`` with ``Z ~ N(0, diversity^2 + noise^2)``.

Study. For every design point (noise x diversity x people x tasks per person) and seed, a crowd is
generated, 20% of its tasks are held out, each method is fitted on the rest, 20 virtual people (profiles
drawn from the training people) answer every held-out task, and the error of their mean answer against
the truth is recorded. The "real crowd" row is what paying the simulated people on those tasks gives:
the mean of the people who did answer each held-out task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from crowdllm._io import rng
from crowdllm.crowd.kinds import kind_of
from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses._common import (
    Trainer,
    check_methods,
    label_matrix,
    method_steps,
    sample_responses,
    split_train_test,
    tidy,
    virtual_people,
)

NOISE_LEVELS = (0.0, 1.0, 2.0)
DIVERSITY_LEVELS = (0.0, 1.0, 2.0)
COLUMNS = ["noise", "diversity", "n_workers", "tasks_per_worker", "seed", "method", "metric", "value"]
REAL_CROWD = "real crowd"


@dataclass
class SimulatedCrowd:
    """A simulated crowd: the data set, the exact per-task truth, and the generator's settings."""

    dataset: CrowdDataset
    truth: pd.Series  # expected answer of the population, per task
    noise: float
    diversity: float


def expected_label(centres: np.ndarray, weights: np.ndarray, sd: float, low: int, high: int) -> np.ndarray:
    """``E[clip(round(c + Z), low, high)]`` averaged over profiles, ``Z ~ N(0, sd^2)``.

    ``centres`` is ``tasks x profiles`` (``s_t + e(v)``), ``weights`` the profiles' population shares.
    With ``sd = 0`` the answer is deterministic."""
    levels = np.arange(low, high + 1, dtype=float)
    upper = levels + 0.5  # P(label <= l) = P(c + Z < l + 0.5) for l < high
    if sd > 0:
        cdf = norm.cdf((upper[None, None, :-1] - centres[:, :, None]) / sd)
    else:
        cdf = (centres[:, :, None] < upper[None, None, :-1]).astype(float)
    # E[label] = high - sum_{l < high} P(label <= l)
    expect = high - cdf.sum(axis=2)
    return expect @ (weights / weights.sum())


def _profile_effects(base: CrowdDataset) -> tuple[pd.DataFrame, np.ndarray]:
    """Additive profile effects of the base data: per worker, the sum over attributes of the mean
    residual (answer - task mean) of the worker's level of that attribute."""
    merged = base.merged()
    y = base.label_codes()
    resid = y - merged.groupby("task")["label"].transform("mean").to_numpy(dtype=float)
    merged = merged.assign(_resid=resid)
    workers = base.workers.copy()
    effect = np.zeros(len(workers))
    for attr in base.profile_columns:
        means = merged.groupby(merged[attr].astype(str))["_resid"].mean()
        effect += workers[attr].astype(str).map(means).fillna(0.0).to_numpy()
    return workers, effect


def make_simulated_crowd(
    *,
    noise: float,
    diversity: float,
    n_workers: int = 40,
    tasks_per_worker: int = 20,
    n_tasks: int = 100,
    base: CrowdDataset | None = None,
    woman_shift: float = 1.0,
    random_state: int = 0,
) -> SimulatedCrowd:
    """A crowd with known truth for one design point (see the module docstring)."""
    if noise < 0 or diversity < 0:
        raise ConfigError(f"noise ({noise}) and diversity ({diversity}) must be >= 0")
    if n_workers < 2 or n_tasks < 2:
        raise ConfigError("a simulated crowd needs at least 2 people and 2 tasks")
    if not 1 <= tasks_per_worker <= n_tasks:
        raise ConfigError(f"tasks_per_worker must be between 1 and n_tasks={n_tasks} (got {tasks_per_worker})")
    participation = tasks_per_worker / n_tasks
    sd = float(np.hypot(noise, diversity))
    if base is None:
        syn = make_synthetic_crowd(
            n_tasks=n_tasks, n_workers=n_workers, participation=participation, noise=noise,
            diversity=diversity, woman_shift=woman_shift, age_shift=0.0, random_state=random_state,
            name=f"simulated(noise={noise:g},diversity={diversity:g})",
        )
        lo, hi = (int(v) for v in syn.dataset.label.scale)  # type: ignore[misc]
        # the generator draws gender uniformly from two values (half women) and age has no effect
        # (age_shift=0), so the population is two profiles of equal weight
        centres = syn.scores.to_numpy()[:, None] + np.array([woman_shift, 0.0])[None, :]
        truth = expected_label(centres, np.array([0.5, 0.5]), sd, lo, hi)
        return SimulatedCrowd(syn.dataset, pd.Series(truth, index=syn.scores.index, name="truth"),
                              noise, diversity)
    return _simulate_on_base(base, noise=noise, diversity=diversity, n_workers=n_workers,
                             participation=participation, n_tasks=n_tasks, random_state=random_state)


def _simulate_on_base(base: CrowdDataset, *, noise: float, diversity: float, n_workers: int,
                      participation: float, n_tasks: int, random_state: int) -> SimulatedCrowd:
    kind = kind_of(base.label)
    if kind is None or not (kind.rating and kind.choice_names(base.label)):  # a rating on levels: ordinal
        raise ConfigError(f"the simulation study needs an ordinal base data set; '{base.name}' has "
                          f"{base.label.kind} labels")
    lo, hi = (int(v) for v in base.label.scale)  # type: ignore[misc]
    gen = rng(random_state)
    pool, effects = _profile_effects(base)
    codes = pd.Series(base.label_codes(), index=base.responses.index)
    task_mean = codes.groupby(base.responses["task"].to_numpy()).mean()
    chosen = gen.choice(task_mean.index.to_numpy(), size=min(n_tasks, len(task_mean)), replace=False)
    scores = task_mean.loc[chosen].to_numpy(dtype=float)
    tasks = base.tasks.set_index("task").loc[chosen].reset_index()
    pick = gen.integers(0, len(pool), size=n_workers)
    workers = pool.iloc[pick].reset_index(drop=True).copy()
    workers["worker"] = [f"s{i:04d}" for i in range(n_workers)]
    w_effect = effects[pick]
    bias = gen.normal(size=n_workers)
    take = gen.random((len(chosen), n_workers)) < participation
    for t in range(len(chosen)):
        if take[t].sum() < 2:
            take[t, gen.choice(n_workers, size=2, replace=False)] = True
    for w in range(n_workers):
        if not take[:, w].any():
            take[gen.integers(len(chosen)), w] = True
    ti, wi = np.nonzero(take)
    raw = scores[ti] + w_effect[wi] + diversity * bias[wi] + noise * gen.normal(size=len(ti))
    responses = pd.DataFrame({"task": tasks["task"].to_numpy()[ti], "worker": workers["worker"].to_numpy()[wi],
                              "label": np.clip(np.round(raw), lo, hi)})
    ds = CrowdDataset(responses=responses, tasks=tasks, workers=workers, label=LabelSpec("ordinal", scale=(lo, hi)),
                      name=f"simulated:{base.name}(noise={noise:g},diversity={diversity:g})",
                      ordered_attributes={k: v for k, v in base.ordered_attributes.items() if k in workers.columns},
                      description=f"answers simulated on the tasks and profiles of {base.name}").validate()
    # the population is the base data set's pool of people, each with equal weight
    centres = scores[:, None] + effects[None, :]
    truth = expected_label(centres, np.ones(len(effects)), float(np.hypot(noise, diversity)), lo, hi)
    return SimulatedCrowd(ds, pd.Series(truth, index=tasks["task"].to_numpy(), name="truth"), noise, diversity)


def simulation_study(
    methods: Mapping[str, Trainer],
    *,
    noise_levels: Sequence[float] = NOISE_LEVELS,
    diversity_levels: Sequence[float] = DIVERSITY_LEVELS,
    n_workers: Sequence[int] = (10, 40),
    tasks_per_worker: Sequence[int] = (20,),
    n_tasks: int = 100,
    n_virtual: int = 20,
    seeds: Sequence[int] = (0,),
    test_size: float = 0.2,
    base: CrowdDataset | None = None,
    progress: bool = False,
    on_step: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """How well each method recovers the known truth on held-out tasks, across the design grid.

    Returns ``noise, diversity, n_workers, tasks_per_worker, seed, method, metric, value`` with metrics
    ``mae`` and ``rmse`` of the virtual crowd's mean against the truth; the method ``real crowd`` is the
    mean of the simulated people who answered each held-out task."""
    methods = check_methods(methods)
    if n_virtual < 1:
        raise ConfigError(f"n_virtual must be >= 1 (got {n_virtual})")
    grid = [(z, d, w, k, s) for z in noise_levels for d in diversity_levels for w in n_workers
            for k in tasks_per_worker for s in seeds]
    rows: list[dict] = []
    with method_steps(len(grid) * len(methods), "simulation", rows, COLUMNS, progress=progress,
                      on_step=on_step) as done:
        for noise, diversity, nw, k, seed in grid:
            sim = make_simulated_crowd(noise=noise, diversity=diversity, n_workers=nw,
                                       tasks_per_worker=min(k, n_tasks), n_tasks=n_tasks, base=base,
                                       random_state=seed)
            ds = sim.dataset
            train, test = split_train_test(ds, "task", test_size, seed)
            held = sorted(test.responses["task"].unique())
            truth = sim.truth.loc[held].to_numpy()
            key = {"noise": noise, "diversity": diversity, "n_workers": nw, "tasks_per_worker": k, "seed": seed}

            def add(method: str, estimate: np.ndarray, key: dict = key, truth: np.ndarray = truth) -> None:
                err = estimate - truth
                rows.append({**key, "method": method, "metric": "mae", "value": float(np.mean(np.abs(err)))})
                rows.append({**key, "method": method, "metric": "rmse", "value": float(np.sqrt(np.mean(err ** 2)))})

            real = test.responses.assign(y=test.label_codes()).groupby("task")["y"].mean().loc[held]
            add(REAL_CROWD, real.to_numpy())
            people = virtual_people(train, test, "train", n_virtual, seed=seed)
            task_tab = ds.tasks.set_index("task").loc[held].reset_index()
            for name, factory in methods.items():
                fitted = factory(train, seed)
                resp = sample_responses(fitted, task_tab, people, random_state=seed)
                matrix = label_matrix(ds, resp, held, people["worker"].tolist())
                add(name, matrix.mean(axis=1))
                done()
    return tidy(rows, COLUMNS)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """The table of the study: MAE against the truth (mean over seeds and sample sizes) for each noise x
    diversity cell (rows) and method (columns)."""
    if results.empty:
        return results
    mae = results[results["metric"] == "mae"]
    table = mae.pivot_table(index=["noise", "diversity"], columns="method", values="value", aggfunc="mean")
    table.columns.name = None
    return table.reset_index()
