"""Helpers for the hardening tests: run the CLI in-process or as a real subprocess, check one-line errors.

Imported by the test modules as ``from hardening_helpers import ...`` (pytest puts this folder on sys.path)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def error_line(self) -> str:
        """stderr, which must be exactly one line starting with ``error:`` (nothing before or after it:
        the README promises one line, not one error line among others)."""
        lines = self.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (
            f"expected stderr to be exactly one 'error:' line, got {len(lines)} line(s):\n{self.err}")
        return lines[0]


def crowdllm_command() -> list[str]:
    """The installed ``crowdllm`` script next to this Python, else ``python -m crowdllm``."""
    script = Path(sys.executable).parent / "crowdllm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "crowdllm"]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """``crowdllm ARGS`` through :func:`crowdllm.cli.main` in this process (fast)."""
    from crowdllm.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return Result(rc, out, err)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)  # carries the private CROWDLLM_CACHE set by tests/conftest.py
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_COLOR": "1"})
    env.update(extra)
    return env


def run_process(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
                cwd: str | Path | None = None) -> Result:
    """``crowdllm ARGS`` as a real subprocess (true exit codes, a fresh interpreter)."""
    proc = subprocess.run([*crowdllm_command(), *map(str, args)], capture_output=True, text=True,
                          env=env or child_env(), timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def start_process(*args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None
                  ) -> subprocess.Popen[str]:
    return subprocess.Popen([*crowdllm_command(), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env or child_env(), cwd=cwd, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the child (only the process this test started) and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cache_entries(path: Path) -> int:
    """Rows in an LLM cache file, read by a separate connection (0 while it does not exist yet)."""
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:  # table not created yet
        return 0


def closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_crowd_csv(path: Path, n_tasks: int = 12, n_workers: int = 3, texts: Sequence[str] | None = None) -> Path:
    """A small valid responses file (task, worker, label 1-5, text) with distinct task texts."""
    lines = ["task,worker,label,text"]
    for t in range(n_tasks):
        text = texts[t] if texts is not None else f"comment number {t} about topic {t % 4}"
        for w in range(n_workers):
            lines.append(f"t{t},w{w},{1 + (t + w) % 5},\"{text}\"")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
