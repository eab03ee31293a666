"""Sample a fitted crowd on new tasks: who answers, answers in chunks, a few real people mixed in.

- :func:`people` -- the virtual people: ``n`` drawn from the training pool, a profiles frame (checked
  against the categories the crowd saw), or the pool's joint distribution raked to target shares.
- :func:`mix_real` -- moves the crowd's decisions on tasks with some real answers toward those answers
  the way the crowd's task memory does for training tasks: ``offset = sum(real - crowd) / (n + kappa)``
  on the label scale (a Dirichlet-style shift of the answer shares for categories), with the crowd's own
  ``kappa_``; nothing is refitted.
- :func:`sample_to_file` -- one row per (task, person) with the person's profile, written in chunks of
  tasks (memory stays bounded) to a temporary file renamed at the end (a killed run leaves no half file),
  plus the per-task summary (mean, share of each level, aggregated decision, interval for the real
  crowd's mean).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import atomic_path
from crowdllm._io import rng as make_rng
from crowdllm.data.dataset import LabelSpec, category_text
from crowdllm.errors import ConfigError, CrowdDataError
from crowdllm.study.fit import numeric_values
from crowdllm.study.kinds import default_aggregator, level_names

#: Responses per chunk written at once (bounded memory: ~100 bytes a response in flight).
CHUNK_RESPONSES = 250_000
OUT_FORMATS = (".parquet", ".csv")


# ------------------------------------------------------------------------------ people
def people(crowd: Any, *, n_people: int | None = None, profiles: pd.DataFrame | None = None,
           targets: Mapping[str, Mapping[str, float]] | None = None, random_state: int = 0,
           source: str | None = None) -> pd.DataFrame:
    """The virtual people (``worker`` + attributes) who answer."""
    from crowdllm.profiles.joint import RakedProfiles
    from crowdllm.profiles.pool import PoolProfiles

    given = sum(x is not None for x in (n_people, profiles, targets))
    if profiles is not None and targets is not None:
        raise ConfigError("give --profiles or --targets, not both")
    pool = crowd.pool_
    if profiles is not None:
        if "worker" not in profiles.columns:
            raise CrowdDataError("profiles need a 'worker' column (one row per person)", file=source, column="worker")
        frame = profiles.copy()
        frame["worker"] = frame["worker"].map(category_text)
        dup = frame["worker"].duplicated().to_numpy()
        if dup.any():
            pos = int(np.flatnonzero(dup)[0])
            raise CrowdDataError(f"person '{frame['worker'].iloc[pos]}' appears twice", file=source,
                                 row=_row(frame, pos), column="worker")
        _check_profiles(frame, pool, source)
        return frame.reset_index(drop=True)
    n = 100 if n_people is None and given == 0 else n_people
    if targets is not None:
        gen: Any = RakedProfiles(pool, targets)
        n = 100 if n is None else n
    else:
        gen = PoolProfiles(pool)
    if n is None or int(n) < 1:
        raise ConfigError(f"--people must be at least 1 (got {n})")
    return gen.sample(int(n), random_state)


def _row(frame: pd.DataFrame, pos: int) -> int | None:
    idx = frame.index[pos]
    return int(idx) if isinstance(idx, (int, np.integer)) else None


def _check_profiles(frame: pd.DataFrame, pool: pd.DataFrame, source: str | None) -> None:
    """Every profile column of the crowd is present; categorical values were seen in training."""
    for col in pool.columns:
        if col == "worker":
            continue
        if col not in frame.columns:
            raise CrowdDataError(f"profiles need the column '{col}' (the crowd was fitted with "
                                 f"{', '.join(c for c in pool.columns if c != 'worker')})", file=source, column=col)
        if pool[col].dtype.kind in "biuf":
            num = pd.to_numeric(frame[col], errors="coerce")
            bad = (num.isna() & frame[col].notna()).to_numpy()
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                raise CrowdDataError(f"'{frame[col].iloc[pos]}' is not a number", file=source, row=_row(frame, pos),
                                     column=col)
            frame[col] = num
            continue
        seen = set(pool[col].dropna().astype(str))
        values = frame[col].dropna().astype(str)
        off = ~values.isin(seen).to_numpy()
        if off.any() and len(seen) <= 50:
            pos = int(np.flatnonzero(off)[0])
            raise CrowdDataError(f"'{values.iloc[pos]}' is a category the crowd never saw (known: "
                                 f"{', '.join(sorted(seen))})", file=source, row=_row(values.to_frame(), pos),
                                 column=col)


def read_targets(path: str | Path) -> dict[str, dict[str, float]]:
    """Target shares ``{attribute: {level: share}}`` from a JSON file (each attribute's shares sum to 1)."""
    import json

    from crowdllm.profiles.generator import check_shares

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CrowdDataError("no such file", file=str(p)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CrowdDataError(f"not valid JSON ({type(err).__name__})", file=str(p)) from None
    if not isinstance(data, dict) or not data:
        raise CrowdDataError('targets are a JSON object {"attribute": {"level": share, ...}, ...}', file=str(p))
    out = {}
    for attr, shares in data.items():
        try:
            out[str(attr)] = check_shares(str(attr), shares)
        except ConfigError as err:
            raise CrowdDataError(str(err), file=str(p)) from None
    return out


# ------------------------------------------------------------------------------ real answers
def read_real(frame: pd.DataFrame, label: LabelSpec, task_ids: set[str], *, source: str | None = None
              ) -> pd.DataFrame:
    """Real answers (``task``, ``label``) checked against the crowd's label and the tasks sampled."""
    for col in ("task", "label"):
        if col not in frame.columns:
            raise CrowdDataError(f"real answers need a '{col}' column (map it with --real-map {col}=COLUMN)",
                                 file=source, column=col)
    out = frame.copy()
    out["task"] = out["task"].map(category_text)
    unknown = ~out["task"].isin(task_ids).to_numpy()
    if unknown.any():
        pos = int(np.flatnonzero(unknown)[0])
        n = int(pd.Series(out["task"][unknown]).nunique())
        raise CrowdDataError(f"task '{out['task'].iloc[pos]}' is not among the tasks sampled ({n} such task id(s) "
                             "in the real answers; --tasks must list every task they answer)", file=source,
                             row=_row(out, pos), column="task")
    if out["label"].isna().any():
        pos = int(np.flatnonzero(out["label"].isna().to_numpy())[0])
        raise CrowdDataError("label is missing", file=source, row=_row(out, pos), column="label")
    kind = label.kind_
    if kind.nominal:
        values = out["label"].map(category_text)
        off = ~values.isin(list(label.categories or ())).to_numpy()
        if off.any():
            pos = int(np.flatnonzero(off)[0])
            raise CrowdDataError(f"label '{values.iloc[pos]}' is not one of the crowd's categories "
                                 f"{list(label.categories or ())}", file=source, row=_row(out, pos), column="label")
        out["label"] = values
    elif kind.rating:
        num = pd.to_numeric(out["label"], errors="coerce")
        bad = num.isna().to_numpy().copy()
        if label.scale is not None:
            bad |= ((num < label.scale[0]) | (num > label.scale[1])).to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise CrowdDataError(f"label '{out['label'].iloc[pos]}' is not a number on the crowd's scale "
                                 f"{label.scale}", file=source, row=_row(out, pos), column="label")
        out["label"] = num.astype(float)
    else:
        raise ConfigError(f"mixing in real answers works for rating and categorical crowds, not {label.kind}")
    return out[["task", "label"]].reset_index(drop=True)


def _kappa(crowd: Any) -> float:
    kappa = float(getattr(crowd, "kappa_", float("nan")))
    if not np.isfinite(kappa):
        raise ConfigError("this crowd has no task memory (kappa is infinite or missing), so it has no "
                          "shrinkage to mix real answers with; refit it with task memory on")
    return kappa


def mix_real(crowd: Any, decisions: pd.DataFrame, real: pd.DataFrame) -> np.ndarray:
    """Decisions (from ``crowd.expected_decisions``) moved toward the real answers on their tasks, by the
    task memory's own shrinkage step (the crowd kind's ``shrink``, with the crowd's ``kappa_``).

    Ratings: ``mu += sum_i (r_i - mean mu_mean) / (n + kappa)`` per task (label units). Categories: the
    task's answer shares ``q`` become ``q + (counts - n q) / (n + kappa)`` and the logits are offset by
    ``log(new / q)``. Returns the decisions array the crowd's blender samples from."""
    kappa = _kappa(crowd)
    label: LabelSpec = crowd.label_
    tasks = decisions["task"].astype(str).to_numpy()
    if label.kind_.rating:
        mu = decisions["mu"].to_numpy(dtype=float).copy()
        centre = pd.Series(decisions["mu_mean"].to_numpy(dtype=float)).groupby(tasks).mean()
        grouped = real.groupby("task")
        n = grouped.size()
        sums = (grouped["label"].sum() - n * centre.reindex(n.index)).to_numpy(dtype=float)[:, None]
        shift = crowd.kind_.shrink(sums, n.to_numpy(dtype=float), kappa, None)[:, 0]
        mu += pd.Series(shift, index=n.index).reindex(tasks).fillna(0.0).to_numpy(dtype=float)
        return mu
    levels = [str(c) for c in (label.categories or ())]
    logits = decisions[[f"mu_{c}" for c in levels]].to_numpy(dtype=float).copy()
    q = np.exp(logits - logits.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    counts = pd.crosstab(real["task"], real["label"]).reindex(columns=levels, fill_value=0)
    n = counts.sum(axis=1).to_numpy(dtype=float)
    qb = pd.DataFrame(q).groupby(tasks).mean().reindex(counts.index).to_numpy(dtype=float)
    shift = crowd.kind_.shrink(counts.to_numpy(dtype=float) - n[:, None] * qb, n, kappa, qb)
    logits += pd.DataFrame(shift, index=counts.index).reindex(tasks).fillna(0.0).to_numpy(dtype=float)
    return logits


def _blend(crowd: Any, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    b = crowd.blender_
    if crowd.label_.kind_.nominal:
        return np.asarray(b.sample(mu, rng))
    return np.asarray(b.sample(mu if mu.ndim == 1 else mu[:, 0], rng))


# ------------------------------------------------------------------------------ sampling in chunks
def _pairs_for(tasks: pd.DataFrame, prof: pd.DataFrame, participation: float, rng: np.random.Generator
               ) -> pd.DataFrame | None:
    if participation >= 1.0:
        return None
    T, P = len(tasks), len(prof)
    take = rng.random((T, P)) < participation
    ti, wi = np.nonzero(take)
    return pd.DataFrame({"task": tasks["task"].to_numpy()[ti], "worker": prof["worker"].to_numpy()[wi]})


def iter_samples(crowd: Any, tasks: pd.DataFrame, prof: pd.DataFrame, reference: pd.DataFrame | None, *,
                 participation: float = 1.0, real: pd.DataFrame | None = None, random_state: int = 0,
                 chunk_responses: int = CHUNK_RESPONSES) -> Iterator[pd.DataFrame]:
    """Virtual answers chunk by chunk (whole tasks per chunk): ``task, worker, label`` + profile columns."""
    if not 0 < participation <= 1:
        raise ConfigError(f"--participation must be in (0, 1], got {participation}")
    per_chunk = max(1, int(chunk_responses // max(1, int(np.ceil(len(prof) * participation)))))
    seeds = np.random.SeedSequence(random_state)
    real_tasks = set(real["task"]) if real is not None else set()
    prof_cols = [c for c in prof.columns if c != "worker"]
    prof_by_worker = prof.set_index("worker")
    for start, child in zip(range(0, len(tasks), per_chunk), seeds.spawn((len(tasks) + per_chunk - 1) // per_chunk),
                            strict=True):
        rng = np.random.default_rng(child)
        chunk = tasks.iloc[start:start + per_chunk]
        ref = None if reference is None else reference[reference.index.isin(set(chunk["task"]))]
        pairs = _pairs_for(chunk, prof, participation, rng)
        if pairs is not None and len(pairs) == 0:
            continue
        if real_tasks and chunk["task"].isin(real_tasks).any():
            dec = crowd.expected_decisions(chunk, prof, pairs=pairs, reference=ref, random_state=rng)
            mu = mix_real(crowd, dec, real[real["task"].isin(set(chunk["task"]))])  # type: ignore[index]
            out = pd.DataFrame({"task": dec["task"].astype(str).to_numpy(),
                                "worker": dec["worker"].astype(str).to_numpy(), "label": _blend(crowd, mu, rng)})
            for col in prof_cols:
                out[col] = prof_by_worker[col].reindex(out["worker"]).to_numpy()
        else:
            out = crowd.sample(chunk, profiles=prof, pairs=pairs, reference=ref, random_state=rng)
            for col in out.columns:
                if isinstance(out[col].dtype, pd.CategoricalDtype):
                    out[col] = out[col].astype(str)
        yield out


def interval_half_width(interval: Mapping[str, Any], var: Any, real_crowd: float | None = None
                        ) -> tuple[np.ndarray, float] | None:
    """Half-width of the interval for a real crowd's mean (a crowd card's ``validation.interval``) for
    tasks whose virtual answers have variance ``var``, and the real crowd size it is for.

    The split-conformal interval by crowd size (cards with ``tau`` and ``q``) is ``q * sqrt(tau^2 +
    var / real_crowd)`` (:meth:`~crowdllm.evaluate.theory.SplitConformal.half_width`); ``real_crowd``
    defaults to the card's ``people_per_task``. Older cards hold one ``halfwidth`` for every task, for
    real crowds of about ``people_per_task`` people: it is returned as is, and ``real_crowd`` is an
    error there. None when the card has no usable interval."""
    var = np.atleast_1d(np.asarray(var, dtype=float))
    if real_crowd is not None and not float(real_crowd) >= 1:
        raise ConfigError(f"real_crowd={real_crowd!r}: a real crowd has at least 1 person")
    people = interval.get("people_per_task")
    if "q" in interval and "tau" in interval:
        from crowdllm.evaluate.theory import SplitConformal

        n = float(real_crowd if real_crowd is not None else people if people is not None else float("nan"))
        if not n >= 1:
            raise ConfigError("the interval has no people_per_task: give real_crowd")
        conf = SplitConformal.from_fitted(interval["tau"], interval["q"], alpha=1.0 - float(interval.get("level", 0.9)))
        return conf.half_width(var, n), n
    half = interval.get("halfwidth")
    if half is None or not np.isfinite(float(half)):
        return None
    if real_crowd is not None:
        raise ConfigError(f"real_crowd={real_crowd!r}: this interval (an older crowd card) is one half-width for "
                          f"real crowds of about {people if people is not None else '?'} people; fit the crowd "
                          "again for an interval by crowd size")
    return np.full(len(var), float(half)), float(people) if people is not None else float("nan")


def summarize(answers: pd.DataFrame, label: LabelSpec, *, aggregator: str = "auto",
              interval: Mapping[str, Any] | None = None, real_crowd: float | None = None) -> pd.DataFrame:
    """One row per task: ``n``, ``mean``, ``share_<level>``, ``decision`` (the aggregator's), and with
    ``interval`` (a crowd card's ``validation.interval``) the interval for the mean of a real crowd of
    ``real_crowd`` people (default: the card's people per task): ``mean_low``/``mean_high`` (clipped to
    the scale), ``interval_coverage`` (what it reached on validation), ``half_width`` (from the spread
    of the task's answers here, :func:`interval_half_width`) and ``interval_real_crowd``."""
    from crowdllm.aggregate import get_aggregator

    tasks = answers["task"].astype(str)
    out = pd.DataFrame({"n": tasks.groupby(tasks.to_numpy()).size()})
    out.index.name = "task"
    values = numeric_values(answers["label"], label)
    if values is not None:
        by_task = pd.Series(values).groupby(tasks.to_numpy())
        out["mean"] = by_task.mean()
    kind = label.kind_
    levels = level_names(label)
    if levels:
        keys = answers["label"].map(category_text) if kind.nominal else \
            pd.to_numeric(answers["label"]).map(category_text)
        shares = pd.crosstab(tasks.to_numpy(), keys.to_numpy(), normalize="index").reindex(columns=levels, fill_value=0.0)
        for lvl in levels:
            out[f"share_{lvl}"] = shares[lvl].reindex(out.index).to_numpy()
    name = aggregator if aggregator != "auto" else default_aggregator(label)
    if not kind.votes:
        try:
            out["decision"] = get_aggregator(name).fit_predict(answers[["task", "worker", "label"]].assign(
                task=tasks, worker=answers["worker"].astype(str))).reindex(out.index).to_numpy()
        except KeyError:
            raise ConfigError(f"--aggregator: unknown aggregator '{aggregator}'") from None
        if kind.nominal:
            out["decision"] = out["decision"].map(category_text)
    iv = dict(interval or {})
    sized = None
    if iv and "mean" in out:
        sized = interval_half_width(iv, by_task.var().reindex(out.index).fillna(0.0), real_crowd)
    if sized is not None:
        half, n_real = sized
        lo, hi = (label.scale if label.scale is not None else (-np.inf, np.inf))
        out["mean_low"] = np.clip(out["mean"] - half, lo, hi)
        out["mean_high"] = np.clip(out["mean"] + half, lo, hi)
        if iv.get("coverage") is not None:
            out["interval_coverage"] = iv["coverage"]
        out["half_width"] = half
        out["interval_real_crowd"] = n_real
    elif real_crowd is not None:
        raise ConfigError(f"real_crowd={real_crowd!r}: there is no interval for a real crowd's mean here")
    return out.reset_index()


def _writer(path: Path, fmt: str) -> tuple[Callable[[pd.DataFrame], None], Callable[[], None]]:
    if fmt == ".csv":
        fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()
        first = [True]

        def write(frame: pd.DataFrame) -> None:
            frame.to_csv(fh, index=False, header=first[0])
            first[0] = False

        return write, fh.close
    import pyarrow as pa
    import pyarrow.parquet as pq

    state: dict[str, Any] = {}

    def write_pq(frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if "w" not in state:
            state["schema"] = table.schema
            state["w"] = pq.ParquetWriter(path, table.schema)
        state["w"].write_table(table.cast(state["schema"]))

    def close() -> None:
        if "w" in state:
            state["w"].close()

    return write_pq, close


def sample_to_file(crowd: Any, tasks: pd.DataFrame, prof: pd.DataFrame, reference: pd.DataFrame | None,
                   out: str | Path, *, participation: float = 1.0, real: pd.DataFrame | None = None,
                   random_state: int = 0, chunk_responses: int = CHUNK_RESPONSES, summary: str | Path | None = None,
                   aggregator: str = "auto", interval: Mapping[str, Any] | None = None,
                   real_crowd: float | None = None, on_chunk: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write the virtual answers to ``out`` (.parquet or .csv) in chunks, atomically; with ``summary``
    also the per-task summary (with ``interval``, a crowd card's, the interval for the mean of a real crowd
    of ``real_crowd`` people: :func:`summarize`). Returns counts."""
    out = Path(out)
    fmt = out.suffix.lower()
    if fmt not in OUT_FORMATS:
        raise ConfigError(f"--out {out}: use a .parquet or .csv file name")
    if summary is not None and Path(summary).suffix.lower() not in OUT_FORMATS:
        raise ConfigError(f"--summary {summary}: use a .parquet or .csv file name")
    label: LabelSpec = crowd.label_
    parts: list[pd.DataFrame] = []
    n_rows = 0
    iv = dict(interval or {})
    with atomic_path(out) as tmp:
        write, close = _writer(tmp, fmt)
        try:
            done = 0
            for frame in iter_samples(crowd, tasks, prof, reference, participation=participation, real=real,
                                      random_state=random_state, chunk_responses=chunk_responses):
                write(frame)
                n_rows += len(frame)
                done += frame["task"].nunique()
                if summary is not None:
                    parts.append(summarize(frame, label, aggregator=aggregator, interval=iv, real_crowd=real_crowd))
                if on_chunk is not None:
                    on_chunk(done, len(tasks))
        finally:
            close()
        if summary is not None:
            table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["task", "n"])
            with atomic_path(summary) as stmp:
                if Path(summary).suffix.lower() == ".csv":
                    table.to_csv(stmp, index=False)
                else:
                    table.to_parquet(stmp, index=False)
    return {"responses": n_rows, "tasks": len(tasks), "people": len(prof)}


def draw(crowd: Any, tasks: pd.DataFrame, prof: pd.DataFrame, reference: pd.DataFrame | None, *,
         random_state: int = 0, real: pd.DataFrame | None = None) -> pd.DataFrame:
    """All answers in memory (for a handful of tasks, e.g. ``crowd ask``)."""
    return pd.concat(list(iter_samples(crowd, tasks, prof, reference, real=real, random_state=random_state)),
                     ignore_index=True)


def sample_pairs(crowd: Any, tasks: pd.DataFrame, prof: pd.DataFrame, pairs: pd.DataFrame,
                 reference: pd.DataFrame | None, *, real: pd.DataFrame | None = None,
                 random_state: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Virtual answers for given (task, worker) ``pairs`` (e.g. held-out real people), with real answers
    mixed in where given: ``task, worker, label``."""
    rng = make_rng(random_state)
    dec = crowd.expected_decisions(tasks, prof, pairs=pairs, reference=reference, random_state=rng)
    mu = mix_real(crowd, dec, real) if real is not None and len(real) else (
        dec["mu"].to_numpy(dtype=float) if "mu" in dec else
        dec[[f"mu_{c}" for c in (crowd.label_.categories or ())]].to_numpy(dtype=float))
    return pd.DataFrame({"task": dec["task"].astype(str).to_numpy(), "worker": dec["worker"].astype(str).to_numpy(),
                         "label": _blend(crowd, mu, rng)})
