"""Small shared I/O helpers: atomic writes, reading a saved JSON object, seeded random generators."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    A crash before the rename leaves the old file (or none) in place, never a half-written one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed, an existing Generator, or None (fresh entropy)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def cache_dir() -> Path:
    """Root of crowdllm's on-disk cache: $CROWDLLM_CACHE or ~/.cache/crowdllm."""
    root = os.environ.get("CROWDLLM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "crowdllm")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object saved at ``path``; a missing, unreadable or non-object file is one ConfigError
    naming the file: "no {what} here", or "not a {what}" (e.g. ``what="saved belief model"``)."""
    from crowdllm.errors import ConfigError

    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no {what} here") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8 JSON) file") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{path}: not a {what}")
    return obj
