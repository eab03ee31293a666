"""Expected decisions: ``mu = y_ref + offset + delta`` per (task, person) pair, before blending.

The base per task is the (calibrated) reference in model units plus the task memory's offset and the
belief model's linear skip path; the belief deviation ``delta`` is averaged over ``J`` samples of the
person's belief (J = 0: the prior mean); a person seen in training adds their twin's term
(:mod:`.twins`; for categories a logit offset, :mod:`.choice_twins`) and is blended with their smaller
noise (one factor for all known people, or each their own: :func:`row_noise`). Pairs are processed in
blocks so the (pairs x hidden) activations stay in cache.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crowdllm.blend import OrdinalBlender
from crowdllm.crowd import inputs
from crowdllm.crowd.kinds import CrowdKind
from crowdllm.crowd.reference import features as reference_features
from crowdllm.crowd.state import CrowdState
from crowdllm.crowd.twins import PersonTwins

CHUNK = 32_768  # pairs per block


def task_inputs(st: CrowdState, kind: CrowdKind, tasks: pd.DataFrame, ref: pd.DataFrame, *,
                use_distribution: bool, calibrate: str) -> tuple[np.ndarray, np.ndarray]:
    """Task features for g_x and the base per task (reference + task offset, model units)."""
    assert st.featurizer is not None and st.belief is not None and st.memory is not None
    emb, meta = st.featurizer.transform(tasks)
    ref_x, base, _, hidden = reference_features(st, kind, ref, use_distribution)
    task_x = np.concatenate([emb, meta, ref_x], axis=1).astype(np.float32)
    base = inputs.calibrated_base(st, kind, calibrate, tasks, (emb, meta, ref_x, hidden), base)
    offsets = st.memory.for_tasks(tasks["task"])
    return task_x, (base + offsets + st.belief.task_shift(task_x)).astype(np.float32)


def decisions(st: CrowdState, kind: CrowdKind, tasks: pd.DataFrame, profiles: pd.DataFrame, ti: np.ndarray,
              wi: np.ndarray, ref: pd.DataFrame, rng: np.random.Generator, *, J: int, with_mean: bool,
              use_distribution: bool, calibrate: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Expected decisions ``mu`` (label units / logits), the prior-mean ones if asked, and the
    log-variance of the belief (with the prior-mean ones), per pair."""
    belief = st.belief
    assert belief is not None and st.profile_encoder is not None
    task_x, base = task_inputs(st, kind, tasks, ref, use_distribution=use_distribution, calibrate=calibrate)
    A = belief.task_part(task_x)
    B = belief.profile_part(inputs.encode_profiles(st.profile_encoder, profiles))
    who = person_rows(st, profiles)  # per person
    mu = np.empty((len(ti), base.shape[1]), dtype=np.float64)
    mean = np.empty_like(mu) if with_mean else None
    lvs = []
    for s in range(0, len(ti), CHUNK):
        sl = slice(s, s + CHUNK)
        m, lv = belief.belief(A, B, ti[sl], wi[sl])
        b = base[ti[sl]]
        if who is not None:  # a known person's own habits, on the model scale
            b = b + st.twins.terms_at(who[wi[sl]], (b + m)[:, 0]).reshape(len(b), -1)  # (rows, 1) or (rows, C)
        mu[sl] = kind.to_label_units(st, b + belief.sample_deviation(m, lv, J, rng))
        if mean is not None:
            mean[sl] = kind.to_label_units(st, b + m)
            lvs.append(lv)
    return mu, mean, (np.concatenate(lvs) if lvs else np.zeros((0, 0)))


def person_rows(st: CrowdState, profiles: pd.DataFrame) -> np.ndarray | None:
    """Each person of ``profiles``'s row among the twins (``-1``: not seen in training); None without twins."""
    return st.twins.rows(profiles["worker"].astype(str).to_numpy()) if st.twins is not None else None


def row_noise(st: CrowdState, tasks: pd.DataFrame, ti: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray | None:
    """Per-row ordinal noise from the per-task sigmas, times the twins' noise factor of each row's person
    (``rows``: their row among the twins, ``-1`` for a person not seen in training, whose factor is 1);
    None: the blender's one noise for all."""
    if not isinstance(st.blender, OrdinalBlender):
        return None
    factor = st.twins.noise_at(rows) if isinstance(st.twins, PersonTwins) and rows is not None else None
    if factor is not None and np.all(factor == 1.0):
        factor = None
    if not len(st.task_sigma) and factor is None:
        return None
    per_task = st.task_sigma.reindex(tasks["task"].to_numpy(dtype=object))
    noise = per_task.fillna(st.blender.noise()).to_numpy(dtype=float)[ti]
    if factor is None:
        return noise
    noise = noise * factor
    if st.twins.noise_kappa is not None:  # own noise per person: on a 2 % log grid, so few distinct values
        noise = np.exp(np.round(np.log(noise) * 50.0) / 50.0)
    return noise
