"""The LLM reference table: one row per task, ``y_ref`` plus the reference distribution ``p_<choice>``.

``y_ref`` is the LLM's answer in label units (the 1-5 rating, the selection probability of a top-k
item) or, for categories, the name of the answer it prefers. ``p_<choice>`` columns (``p_1..p_5`` for
a 1-5 scale, ``p_<category>`` for categories) carry its distribution; ``h_0 ... h_<d-1>`` columns, when
present (``crowdllm reference --hidden-states``), the model's hidden state at the answer position: the
crowd reads them as task features too, as their first ``hidden_components`` principal components over
the training tasks (``CrowdState.hidden_basis``: the training mean, then the components).
The same table is written by
:mod:`crowdllm.llm.reference`, fitted by :mod:`crowdllm.crowd` and read by :mod:`crowdllm.evaluate`.

>>> import pandas as pd
>>> reference_frame(pd.DataFrame({"task": [1, 2], "y_ref": ["3.5", None], "p_1": [0.2, 0.3]}))
      y_ref  p_1
task
1       3.5  0.2
2       NaN  0.3
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crowdllm.errors import ConfigError

if TYPE_CHECKING:
    from crowdllm.crowd.kinds import CrowdKind
    from crowdllm.crowd.state import CrowdState

ReferenceLike = pd.DataFrame | pd.Series | Callable[[pd.DataFrame], pd.DataFrame] | None
Y_REF = "y_ref"
P_PREFIX = "p_"
H_PREFIX = "h_"


def hidden_columns(frame: pd.DataFrame) -> list[str]:
    """The hidden-state columns ``h_<i>`` of a reference table, in order."""
    return [c for c in frame.columns if str(c).startswith(H_PREFIX) and str(c)[len(H_PREFIX):].isdigit()]


def reference_frame(reference: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """Normalise a reference to a frame indexed by task id (str) with ``y_ref`` (+ ``p_*``) columns."""
    if isinstance(reference, pd.Series):
        frame = reference.rename(Y_REF).to_frame()
    elif isinstance(reference, pd.DataFrame):
        frame = reference.set_index("task") if "task" in reference.columns else reference.copy()
    else:
        raise ConfigError("reference must be a DataFrame (y_ref, p_* columns) or a Series of y_ref by task")
    if Y_REF not in frame.columns:
        raise ConfigError(f"reference needs a 'y_ref' column (found: {', '.join(map(str, frame.columns))})")
    frame.index = frame.index.astype(str)
    if frame.index.duplicated().any():
        raise ConfigError(f"reference lists task '{frame.index[frame.index.duplicated()][0]}' twice")
    p_cols = [c for c in frame.columns if str(c).startswith(P_PREFIX)] + hidden_columns(frame)
    out = frame[p_cols].apply(pd.to_numeric, errors="coerce").astype(float)
    y = frame[Y_REF]
    numeric = pd.to_numeric(y, errors="coerce")
    # categorical references name the most likely choice; keep those names, numbers otherwise
    keep_names = numeric.isna() & y.notna()
    out.insert(0, Y_REF, y.astype(object).where(keep_names, numeric) if keep_names.any() else numeric.astype(float))
    return out


def default_reference(tasks: Sequence[str], value: float) -> pd.DataFrame:
    """The VAE-only reference: every task gets ``value`` (the training mean)."""
    frame = pd.DataFrame(index=pd.Index(list(tasks), dtype=str))
    frame[Y_REF] = value
    return frame


def _is_function(reference: ReferenceLike) -> bool:
    return callable(reference) and not isinstance(reference, (pd.DataFrame, pd.Series))


def resolve(state: CrowdState, reference: ReferenceLike, tasks: pd.DataFrame, *, fitting: bool) -> pd.DataFrame:
    """The reference row of every task in ``tasks`` (in order): from ``reference`` (a table or a
    function ``tasks -> table``), else from the references kept at fit time."""
    ids = tasks["task"].astype(str).tolist()
    if not fitting and not state.has_reference:
        if reference is not None:
            raise ConfigError("this crowd was fitted without an LLM reference (VAE only); "
                              "do not pass reference= to sample()")
        return default_reference(ids, state.ref_default)
    frames = []
    if fitting:
        assert reference is not None
        frames.append(reference_frame(reference(tasks) if _is_function(reference) else reference))  # type: ignore[operator,arg-type]
    else:
        if _is_function(reference):
            need = [t for t in ids if t not in state.reference.index]
            if need:
                frames.append(reference_frame(reference(tasks[tasks["task"].astype(str).isin(need)])))  # type: ignore[operator]
        elif reference is not None:
            frames.append(reference_frame(reference))  # type: ignore[arg-type]
        frames.append(state.reference)
    merged = pd.concat(frames) if len(frames) > 1 else frames[0]
    merged = merged[~merged.index.duplicated(keep="first")]
    missing = [t for t in ids if t not in merged.index]
    if missing:
        raise ConfigError(f"no LLM reference for {len(missing)} task(s) (first: '{missing[0]}'); "
                          "pass reference= with a y_ref for every task")
    return merged.reindex(ids)


def fit_reference(state: CrowdState, kind: CrowdKind, reference: ReferenceLike, tasks: pd.DataFrame,
                  hidden_components: int = 32) -> pd.DataFrame:
    """Learn what the crowd keeps of the reference (``has_reference``, ``p_columns``, ``ref_fill``,
    the table itself) and return the rows of the training ``tasks``."""
    state.has_reference = reference is not None
    state.p_columns = []
    if reference is None:
        state.ref_fill = state.ref_default
        state.reference = default_reference(tasks["task"].tolist(), state.ref_default)
        return state.reference
    ref = resolve(state, reference, tasks, fitting=True)
    wanted = [f"{P_PREFIX}{c}" for c in kind.choice_names(state.label)]
    _check_answers_match(ref, wanted)
    state.p_columns = kind.keep_p_columns([c for c in wanted if c in ref.columns], wanted)
    finite = pd.to_numeric(ref[Y_REF], errors="coerce").to_numpy(dtype=float)
    state.ref_fill = kind.reference_fill(finite, state.ref_default)
    hidden = hidden_columns(ref)
    state.hidden_basis = fit_hidden_basis(ref[hidden].to_numpy(dtype=float), hidden_components) if hidden else None
    # keep every task the caller gave a reference for (test tasks too), not only training tasks
    given = reference_frame(reference) if isinstance(reference, (pd.DataFrame, pd.Series)) else ref
    state.reference = given.reindex(columns=[Y_REF, *state.p_columns, *hidden]).copy()
    return ref


def _check_answers_match(ref: pd.DataFrame, wanted: list[str]) -> None:
    """A reference computed for another label (a 1-5 rating given to a yes/no crowd) is refused, never
    silently dropped: its answer shares must be this crowd's answers."""
    given = [str(c) for c in ref.columns if str(c).startswith(P_PREFIX)]
    if wanted and given and set(given) != set(wanted):
        raise ConfigError(f"reference: its answer shares ({', '.join(given)}) are not this crowd's answers "
                          f"({', '.join(wanted)}); it was computed for another label -- compute one for "
                          "these answers (crowdllm reference with the same --map/--kind/--categories)")


def features(state: CrowdState, kind: CrowdKind, ref: pd.DataFrame, use_distribution: bool
             ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(reference features for g_x, base in model units ``(n, out)``, count of missing references, the
    raw hidden states ``(n, d)`` as the reference calibration reads them: a missing number as the
    training mean, ``(n, 0)`` when the crowd reads none). The ``h_*`` columns are read once for both."""
    raw = kind.parse_reference(ref[Y_REF], state)
    y_ref = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    missing = ~np.isfinite(y_ref)
    y_ref = np.where(missing, state.ref_fill, y_ref)
    base = kind.base(state, ref, y_ref)
    feats = [base]
    if state.has_reference and use_distribution and state.p_columns:
        p = ref.reindex(columns=state.p_columns).to_numpy(dtype=float)
        missing = missing | ~np.isfinite(p).all(axis=1)
        feats.append(np.where(np.isfinite(p), p, 0.0))
    hidden = np.zeros((len(ref), 0), dtype=np.float32)
    if state.hidden_basis is not None:
        h = ref.reindex(columns=[f"{H_PREFIX}{i}" for i in range(state.hidden_basis.shape[1])]).to_numpy(dtype=float)
        lacking = ~np.isfinite(h).any(axis=1) & ~missing  # a task without any reference is flagged instead
        if lacking.any():  # never a silently poorer reading of new tasks
            raise ConfigError(f"this crowd reads the LLM's hidden states (h_* columns) and {int(lacking.sum())} "
                              f"task(s) have none (first: '{ref.index[lacking][0]}'): compute their references "
                              "with hidden states (crowdllm reference --hidden-states, hidden_states=True)")
        feats.append(project_hidden(h, state.hidden_basis))
        hidden = np.where(np.isfinite(h), h, state.hidden_basis[0]).astype(np.float32)
    if state.has_reference:
        feats.append(missing[:, None].astype(float))
    return np.concatenate(feats, axis=1).astype(np.float32), base.astype(np.float32), int(missing.sum()), hidden


def fit_hidden_basis(h: np.ndarray, components: int) -> np.ndarray:
    """The training tasks' mean hidden state and its first ``components`` principal directions, stacked
    ``(1 + k, d)``. On POPQUORN's inner validation splits (5 seeds, population MAE of the crowd) 32
    components scored 0.412, all 1,536 dimensions 0.422, 8 / 16 / 64 / 128: 0.419 / 0.418 / 0.416 / 0.420,
    none 0.427."""
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or components < 1:
        raise ConfigError(f"hidden_components={components!r}: give a number of principal components >= 1")
    mean = np.nan_to_num(np.nanmean(h, axis=0))
    centred = np.nan_to_num(h - mean)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return np.vstack([mean, vt[: min(int(components), len(vt))]])


def project_hidden(h: np.ndarray, basis: np.ndarray, *, missing_as_mean: bool = True) -> np.ndarray:
    """Hidden states ``(n, d)`` as their components on a :func:`fit_hidden_basis` basis ``(n, k)``; a
    missing number reads as the training mean (``missing_as_mean=False``: it leaves its row NaN)."""
    centred = h - basis[0]
    return (np.nan_to_num(centred) if missing_as_mean else centred) @ basis[1:].T
