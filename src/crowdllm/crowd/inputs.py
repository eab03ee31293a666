"""The crowd's inputs: task features (text embedding + attributes + reference), the calibrated
reference, encoded profiles, and the validation rows used for early stopping.

**Calibration** (``calibrate="linear"``, ``"ridge"`` or ``"auto"``, numeric labels): the reference is
mapped to the training crowd's scale by :class:`~crowdllm.belief.calibration.ReferenceCalibrator`,
out-of-fold on the training tasks (so a task never calibrates itself); ``"auto"`` fits both and keeps
the one with the lower out-of-fold error (the text embedding alone when there is no reference).

**Validation.** Early stopping (and nothing else) uses a validation part of the *training* data:
``"workers"`` holds out training people, ``"tasks"`` training tasks, ``"both"`` a share of each (a
row is held out when its person or its task is).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from crowdllm.belief.calibration import CALIBRATIONS, ReferenceCalibrator
from crowdllm.crowd.kinds import CrowdKind
from crowdllm.crowd.state import CrowdState
from crowdllm.errors import ConfigError
from crowdllm.profiles.encoding import ProfileEncoder
from crowdllm.profiles.generator import ProfileGenerator
from crowdllm.profiles.pool import PoolProfiles

VALIDATIONS = ("both", "workers", "tasks", "none")


TaskInputs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # text embedding, attributes, reference, hidden


def _calibration_features(calibrate: str, emb: np.ndarray, meta: np.ndarray, ref_x: np.ndarray,
                          hidden: np.ndarray) -> np.ndarray:
    """The linear calibration reads the reference features; the ridge also the text, the attributes and
    the LLM's whole hidden state (g_x reads only its components: a ridge keeps what the CVAE would overfit)."""
    return np.concatenate([emb, meta, ref_x, hidden], axis=1) if calibrate == "ridge" else ref_x


def fit_calibration(state: CrowdState, kind: CrowdKind, calibrate: str, random_state: int, tasks: pd.DataFrame,
                    ti: np.ndarray, wi: np.ndarray, y: np.ndarray, task_x: TaskInputs, base: np.ndarray
                    ) -> np.ndarray:
    """Replace the base (model units) by the calibrated reference: out-of-fold on training tasks."""
    if calibrate not in CALIBRATIONS:
        raise ConfigError(f"calibrate '{calibrate}' is not one of {', '.join(CALIBRATIONS)}")
    state.calibrator, state.calibrated_base = None, pd.Series(dtype=float)
    if calibrate == "none" or not kind.calibratable:
        return base
    candidates = {"linear": ["linear"], "ridge": ["ridge"], "auto": ["linear", "ridge"]}[calibrate]
    if not state.has_reference:  # nothing to calibrate linearly: "VAE only" has no reference
        candidates = [c for c in candidates if c != "linear"]
    if not candidates:
        return base
    n = np.bincount(ti, minlength=len(tasks)).astype(float)
    target = kind.calibration_target(state, y, ti, wi, len(tasks))
    seen = n > 0
    fitted = []
    for features in candidates:  # "auto": the lower out-of-fold error on the training tasks wins
        cal = ReferenceCalibrator(random_state=random_state).fit(
            _calibration_features(features, *task_x)[seen], target[seen], n[seen])
        cal.features_ = features
        fitted.append(cal)
    cal = min(fitted, key=lambda c: c.oof_mse_)
    out = cal.predict(_calibration_features(cal.features_, *task_x))
    out[seen] = cal.oof_
    index = pd.Index(tasks["task"])
    state.calibrator = cal
    state.calibrated_base = pd.Series(out, index=index) if out.ndim == 1 else pd.DataFrame(out, index=index)
    return kind.calibrated(out).astype(np.float32)


def calibrated_base(state: CrowdState, kind: CrowdKind, calibrate: str, tasks: pd.DataFrame,
                    task_x: TaskInputs, base: np.ndarray) -> np.ndarray:
    """The base of ``tasks`` at sampling time: the out-of-fold value for training tasks, else the
    calibrator's prediction (the raw reference when there is no calibrator)."""
    if state.calibrator is None:
        return base
    features = getattr(state.calibrator, "features_", calibrate)
    pred = state.calibrator.predict(_calibration_features(features, *task_x))
    known = state.calibrated_base.reindex(tasks["task"].astype(str)).to_numpy(dtype=float)
    return kind.calibrated(np.where(np.isfinite(known), known, pred)).astype(np.float32)


def encode_profiles(encoder: ProfileEncoder, profiles: pd.DataFrame) -> np.ndarray:
    """Encode profiles; values unseen in training go to 'other' and are reported (warning +
    ``encoder.unseen_``), never silently."""
    before = {c: dict(v) for c, v in encoder.unseen_.items()}
    x = encoder.transform(profiles)
    new = {}
    for col, counts in encoder.unseen_.items():
        diff = {v: n - before.get(col, {}).get(v, 0) for v, n in counts.items()}
        diff = {v: n for v, n in diff.items() if n > 0}
        if diff:
            new[col] = diff
    if new:
        shown = "; ".join(f"{c}: " + ", ".join(f"'{v}' x{n}" for v, n in d.items()) for c, d in new.items())
        warnings.warn(f"profile values not seen in training were encoded as 'other': {shown}", stacklevel=5)
    return x


def validation_rows(validation: str, valid_fraction: float, random_state: int, ti: np.ndarray, wi: np.ndarray,
                    n_tasks: int, n_workers: int) -> np.ndarray:
    """Which training rows are held out for early stopping."""
    rng = np.random.default_rng(random_state + 7919)
    valid = np.zeros(len(ti), dtype=bool)
    if validation == "none" or valid_fraction <= 0:
        return valid
    if validation in ("both", "workers") and n_workers >= 5:
        valid |= (rng.random(n_workers) < valid_fraction)[wi]
    if validation in ("both", "tasks") and n_tasks >= 5:
        valid |= (rng.random(n_tasks) < valid_fraction)[ti]
    if valid.all():
        valid[:] = False
    return valid


def profiles_frame(profiles: pd.DataFrame) -> pd.DataFrame:
    """A caller's profiles with string worker ids, checked for duplicates."""
    if "worker" not in profiles.columns:
        raise ConfigError("profiles need a 'worker' column")
    out = profiles.reset_index(drop=True).copy()
    out["worker"] = out["worker"].astype(str)
    if out["worker"].duplicated().any():
        raise ConfigError(f"profile id '{out['worker'][out['worker'].duplicated()].iloc[0]}' appears twice")
    return out


def pairs_index(tasks: pd.DataFrame, prof: pd.DataFrame, pairs: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """(task row, profile row) of each pair: everyone x every task when ``pairs`` is None."""
    T, P = len(tasks), len(prof)
    if pairs is None:
        return np.repeat(np.arange(T), P), np.tile(np.arange(P), T)
    for col in ("task", "worker"):
        if col not in pairs.columns:
            raise ConfigError(f"pairs need a '{col}' column")
    ti = pd.Index(tasks["task"]).get_indexer(pairs["task"].astype(str))
    wi = pd.Index(prof["worker"]).get_indexer(pairs["worker"].astype(str))
    if (ti < 0).any():
        raise ConfigError(f"pairs name task '{pairs['task'].iloc[int(np.flatnonzero(ti < 0)[0])]}' "
                          "that is not among the tasks given")
    if (wi < 0).any():
        raise ConfigError(f"pairs name worker '{pairs['worker'].iloc[int(np.flatnonzero(wi < 0)[0])]}' "
                          "that is not among the profiles given")
    return ti.astype(np.int64), wi.astype(np.int64)


def people(profiles: pd.DataFrame | ProfileGenerator | None, n_people: int | None, pool: pd.DataFrame,
           rng: np.random.Generator) -> pd.DataFrame:
    """The virtual people: the caller's frame, or ``n_people`` drawn from a generator (default: the
    training pool)."""
    if isinstance(profiles, pd.DataFrame):
        return profiles_frame(profiles)
    if n_people is None:
        raise ConfigError("give profiles= (a frame or a ProfileGenerator) or n_people=")
    gen = profiles if isinstance(profiles, ProfileGenerator) else PoolProfiles(pool)
    return gen.sample(n_people, rng)


def tasks_frame(tasks: pd.DataFrame | Sequence[str], known: pd.DataFrame | None, text_column: str) -> pd.DataFrame:
    """The caller's tasks with string ids; task ids alone are looked up among the ``known`` training tasks."""
    if isinstance(tasks, pd.DataFrame):
        if "task" not in tasks.columns:
            raise ConfigError("tasks need a 'task' column")
        return tasks.reset_index(drop=True).assign(task=lambda f: f["task"].astype(str))
    if known is None:
        raise ConfigError("pass tasks as a DataFrame (task, text, ...): this crowd was loaded from "
                          "disk and keeps no task texts")
    frame = known.set_index("task").reindex([str(t) for t in tasks])
    if frame[text_column].isna().any():
        first = frame.index[frame[text_column].isna()][0]
        raise ConfigError(f"task '{first}' is not among the fitted tasks; pass a tasks DataFrame")
    return frame.reset_index()
