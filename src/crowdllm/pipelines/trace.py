"""The trace of a pipeline run: one JSON object per line, appended and flushed as the run goes.

Every prompt, answer, vote, decision and note is a record, so a crashed or budget-stopped run still
leaves everything it did on disk. Records share a few fields:

- ``seq`` (0, 1, ...), ``t`` (seconds since the trace opened), ``kind``, ``step`` (the step path,
  e.g. ``"fix/patch 2"``);
- ``kind`` is one of ``start``, ``step`` (a step begins), ``step_end`` (its calls, tokens, seconds),
  ``call`` (one LLM call: worker, persona, messages, answer, tokens, seconds, cached, error),
  ``vote``, ``decision``, ``keep`` (best result so far), ``note`` (ties, garbage, budget, limits)
  and ``result`` (the output, whether it completed, usage totals).

Secrets never reach a trace: keys that name credentials are dropped and anything that looks like an
API key is masked (:func:`redact`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from crowdllm.errors import CrowdDataError

_SECRET_KEYS = re.compile(r"(api[_-]?key|authorization|password|secret|access[_-]?token|bearer)", re.I)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{12,}|Bearer\s+[A-Za-z0-9._\-]{12,})")
_KEY_ENV = ("OPENAI_API_KEY", "CROWDLLM_API_KEY")


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with credential fields removed and key-like strings masked."""
    secrets = [v for k in _KEY_ENV if (v := os.environ.get(k)) and len(v) >= 8]
    return _redact(obj, secrets)


def _redact(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, dict):
        return {k: _redact(v, secrets) for k, v in obj.items() if not _SECRET_KEYS.search(str(k))}
    if isinstance(obj, list | tuple):
        return [_redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        out = _SECRET_VALUE.sub("***", obj)
        for s in secrets:
            out = out.replace(s, "***")
        return out
    return obj


class Trace:
    """Append-only JSONL trace. ``path=None`` keeps the records in memory only."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        self._steps: list[str] = []
        self._t0 = time.perf_counter()
        self._fh: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    @property
    def step_path(self) -> str:
        return "/".join(self._steps)

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one record (and flush it to disk)."""
        rec = {"seq": len(self.records), "t": round(time.perf_counter() - self._t0, 3), "kind": kind,
               "step": self.step_path, **redact(fields)}
        self.records.append(rec)
        if self._fh is not None:
            self._fh.write(json.dumps(rec, ensure_ascii=False, default=_json_default) + "\n")
            self._fh.flush()
        return rec

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._steps.append(name)
        try:
            self.write("step", name=name, depth=len(self._steps) - 1)
            yield
        finally:
            self._steps.pop()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    return str(obj)


def read_trace(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a trace file. A cut-off last line (a run that crashed mid-write) is skipped;
    a bad line elsewhere is an error naming the file and line."""
    p = Path(path)
    if not p.exists():
        raise CrowdDataError("no such trace file", file=str(p))
    lines = p.read_text(encoding="utf-8").splitlines()
    records = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            if i == len(lines):
                break
            raise CrowdDataError(f"not a JSON trace record ({err.msg})", file=str(p), row=i) from None
        if not isinstance(rec, dict) or "kind" not in rec:
            raise CrowdDataError("not a trace record (an object with a 'kind')", file=str(p), row=i)
        records.append(rec)
    return records


def usage_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the ``call`` records: calls, prompt/completion tokens, seconds, cached, errors."""
    calls = [r for r in records if r.get("kind") == "call"]
    return {
        "calls": len(calls),
        "prompt_tokens": sum(int(r.get("prompt_tokens") or 0) for r in calls),
        "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in calls),
        "seconds": round(sum(float(r.get("seconds") or 0.0) for r in calls), 3),
        "cached": sum(1 for r in calls if r.get("cached")),
        "errors": sum(1 for r in calls if r.get("error")),
    }
