"""A crash-safe disk cache of LLM answers: a wrapper around any backend.

Storage: one SQLite file (``$CROWDLLM_CACHE/llm-cache.sqlite``) in WAL mode, one row per answer, each
committed the moment the backend hands it over. A process killed with SIGKILL loses nothing it had
already received; a rerun asks the backend only for what is missing.

Key = sha256 of (backend identity, model, call kind, prompt messages, parameters, sample index). The
sample index is part of the key, so K samples of one prompt are K entries (asking for K=8 after K=5
makes 3 new calls); ``n`` is not, so the first samples are shared between runs with different K.
Stored: the text, or the log-prob distribution, and the token counts.

Answers are cached as given, garbage included (a paid call is never repeated); a completion the backend
marked as an error (``Completion.error``, e.g. an empty reply) and a distribution with no probabilities
are not cached, so a rerun asks again.

``crowdllm cache info`` / ``crowdllm cache clear`` inspect and empty the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from crowdllm._io import cache_dir
from crowdllm.errors import ConfigError
from crowdllm.llm.base import ChoiceDistribution, Completion, GenerationParams, LanguageModel, WrappedLLM

CACHE_FILE = "llm-cache.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def make_key(identity: dict[str, Any], kind: str, messages: list[dict[str, str]], params: dict[str, Any],
             sample: int | None) -> str:
    payload = json.dumps({"id": identity, "kind": kind, "messages": messages, "params": params, "sample": sample},
                         sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class DiskCache:
    """The SQLite store. Safe to share between threads and between processes (WAL + busy timeout)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            self._conn.execute("PRAGMA busy_timeout=60000")
            self._conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise self._broken(err) from None
        self._lock = threading.Lock()

    def _broken(self, err: Exception) -> ConfigError:
        return ConfigError(f"LLM cache {self.path} cannot be used ({err}); "
                           f"remove it or point CROWDLLM_CACHE elsewhere")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Hold the lock; a damaged file (found only when a damaged page is read) is a one-line ConfigError."""
        with self._lock:
            try:
                yield
            except (sqlite3.DatabaseError, json.JSONDecodeError) as err:
                raise self._broken(err) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, dict[str, Any]] = {}
        with self._guard():
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for key, value in self._conn.execute(f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk):
                    out[key] = json.loads(value)
        return out

    def put(self, key: str, kind: str, backend: str, model: str, value: dict[str, Any]) -> None:
        """Store one answer and commit it at once."""
        data = json.dumps(value, ensure_ascii=False, sort_keys=True)
        with self._guard():
            self._conn.execute(
                "INSERT OR REPLACE INTO answers (key, kind, backend, model, value, created) VALUES (?,?,?,?,?,?)",
                (key, kind, backend, model, data, time.time()))

    def info(self) -> dict[str, Any]:
        with self._guard():
            rows = self._conn.execute(
                "SELECT backend, model, kind, COUNT(*) FROM answers GROUP BY backend, model, kind "
                "ORDER BY backend, model, kind").fetchall()
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return {"path": str(self.path), "bytes": size, "entries": sum(r[3] for r in rows),
                "groups": [{"backend": b, "model": m, "kind": k, "entries": n} for b, m, k, n in rows]}

    def clear(self, *, backend: str | None = None, model: str | None = None) -> int:
        """Delete entries (all, or those of one backend / model); returns how many."""
        where, args = [], []
        if backend:
            where.append("backend = ?")
            args.append(backend)
        if model:
            where.append("model = ?")
            args.append(model)
        sql = "DELETE FROM answers" + (" WHERE " + " AND ".join(where) if where else "")
        with self._guard():
            n = self._conn.execute(sql, args).rowcount
            if not where:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.execute("VACUUM")
        return int(n)

    def __len__(self) -> int:
        with self._guard():
            return int(self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _completion_value(c: Completion) -> dict[str, Any]:
    return {"text": c.text, "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
            "finish_reason": c.finish_reason}


def _completion_from(v: dict[str, Any]) -> Completion:
    return Completion(text=v["text"], prompt_tokens=int(v.get("prompt_tokens", 0)),
                      completion_tokens=int(v.get("completion_tokens", 0)),
                      finish_reason=v.get("finish_reason"), cached=True)


def _dist_value(d: ChoiceDistribution) -> dict[str, Any]:
    return {"choices": list(d.choices), "probs": list(d.probs), "method": d.method, "mass": d.mass,
            "n_samples": d.n_samples, "prompt_tokens": d.prompt_tokens, "completion_tokens": d.completion_tokens,
            "parse_failures": d.parse_failures, "extra": d.extra}


def _dist_from(v: dict[str, Any]) -> ChoiceDistribution:
    return ChoiceDistribution(
        choices=tuple(v["choices"]), probs=tuple(float(p) for p in v["probs"]), method=v.get("method", "logprobs"),
        mass=float(v.get("mass", 1.0)), n_samples=int(v.get("n_samples", 1)),
        prompt_tokens=int(v.get("prompt_tokens", 0)), completion_tokens=int(v.get("completion_tokens", 0)),
        parse_failures=int(v.get("parse_failures", 0)), cached=True, extra=dict(v.get("extra") or {}))


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs [(start, length)] of sorted indices."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


class CachedLLM(WrappedLLM):
    """Serves answers from a :class:`DiskCache` and asks ``inner`` only for the missing ones."""

    def __init__(self, inner: LanguageModel, cache: DiskCache | str | os.PathLike[str] | None = None) -> None:
        super().__init__(inner)
        self.cache = cache if isinstance(cache, DiskCache) else DiskCache(cache)

    def cache_identity(self) -> dict[str, Any]:
        return self.inner.cache_identity()

    # ---------------------------------------------------------------- generation
    def _iter_generate(
        self, prompts: list[list[dict[str, str]]], params: GenerationParams
    ) -> Iterator[tuple[int, int, Completion]]:
        identity = self.inner.cache_identity()
        key_params = {"temperature": params.temperature, "max_tokens": params.max_tokens, "seed": params.seed,
                      "stop": list(params.stop)}
        indices = range(params.first_sample, params.first_sample + params.n)
        keys = {(pos, i): make_key(identity, "generate", m, key_params, i)
                for pos, m in enumerate(prompts) for i in indices}
        found = self.cache.get_many(keys.values())
        missing: dict[tuple[tuple[int, int], ...], list[int]] = {}
        for pos in range(len(prompts)):
            todo = []
            for i in indices:
                value = found.get(keys[(pos, i)])
                if value is not None:
                    yield pos, i, _completion_from(value)
                else:
                    todo.append(i)
            if todo:
                missing.setdefault(tuple(_runs(todo)), []).append(pos)
        for runs, positions in missing.items():
            batch = [prompts[p] for p in positions]
            for start, length in runs:
                sub = GenerationParams(n=length, temperature=params.temperature, max_tokens=params.max_tokens,
                                       seed=params.seed, stop=params.stop, first_sample=start)
                for j, index, comp in self.inner._iter_generate(batch, sub):
                    pos = positions[j]
                    if comp.error is None:
                        self.cache.put(keys[(pos, index)], "generate", self.backend, self.model,
                                       _completion_value(comp))
                    yield pos, index, comp

    # ---------------------------------------------------------------- log-prob distributions
    def _iter_choice_probs(
        self, prompts: list[list[dict[str, str]]], choices: tuple[str, ...], *,
        fallback_samples: int = 8, seed: int | None = None,
    ) -> Iterator[tuple[int, ChoiceDistribution]]:
        identity = self.inner.cache_identity()
        key_params = {"choices": list(choices), "fallback_samples": fallback_samples, "seed": seed}
        keys = [make_key(identity, "choice_probs", m, key_params, None) for m in prompts]
        found = self.cache.get_many(keys)
        todo = []
        for pos, key in enumerate(keys):
            value = found.get(key)
            if value is not None:
                yield pos, _dist_from(value)
            else:
                todo.append(pos)
        if not todo:
            return
        for j, dist in self.inner._iter_choice_probs([prompts[p] for p in todo], choices,
                                                     fallback_samples=fallback_samples, seed=seed):
            pos = todo[j]
            if all(p == p for p in dist.probs):  # not NaN
                self.cache.put(keys[pos], "choice_probs", self.backend, self.model, _dist_value(dist))
            yield pos, dist

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "cache": str(self.cache.path)}

    def close(self) -> None:
        super().close()
        self.cache.close()
