"""Persona pools for pipeline workers: real profiles resampled from a crowd data set, or a user's file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from crowdllm.errors import ConfigError, CrowdDataError
from crowdllm.pipelines.worker import is_missing

#: data sets whose workers table gives real profiles (age, gender, race, occupation, education)
POOLS = {"popquorn": "popquorn-email-rewriting"}


def load_personas(source: str, n: int = 24, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` profiles (dicts) from ``source``: ``popquorn`` (POPQUORN workers, resampled) or a CSV,
    JSON (list of objects) or JSONL file with one profile per row (used as is, in order)."""
    if source in POOLS:
        return _from_dataset(POOLS[source], n, seed)
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"personas '{source}': no such file (or use one of: {', '.join(POOLS)})")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype=str)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        frame = pd.read_json(path, lines=True, dtype=False)
    elif path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise CrowdDataError(f"bad JSON ({err.msg})", file=str(path), row=err.lineno) from None
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise CrowdDataError("expected a list of profile objects", file=str(path))
        frame = pd.DataFrame(data)
    else:
        raise ConfigError(f"personas file '{source}' must be .csv, .json or .jsonl")
    out = _records(frame)
    if not out:
        raise CrowdDataError("no profile in the file", file=str(path))
    return out


def _from_dataset(name: str, n: int, seed: int) -> list[dict[str, Any]]:
    from crowdllm.data import load_dataset  # type: ignore[attr-defined]
    from crowdllm.profiles import PoolProfiles

    workers = load_dataset(name).workers
    profile_cols = [c for c in workers.columns if c != "worker"]
    known = workers.dropna(subset=profile_cols, how="all")
    if known.empty:
        raise CrowdDataError(f"data set '{name}' has no worker profiles")
    return _records(PoolProfiles(known).sample(n, seed).drop(columns=["worker"]))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict(orient="records"):
        clean = {str(k): v for k, v in rec.items() if str(k) != "worker" and not is_missing(v)}
        if clean:
            out.append(clean)
    return out
