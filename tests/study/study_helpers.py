"""Helpers for the study tests: the fit command line for the three-file study of conftest.py."""

from __future__ import annotations

from pathlib import Path

FIT_DATA = ["--map", "task=item,worker=uid,label=score", "--kind", "ordinal", "--scale", "1-5",
            "--tasks", "{tasks}", "--task-map", "task=id,text=comment",
            "--workers", "{workers}", "--worker-map", "worker=person"]


def fit_args(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    data = [a.format(tasks=files["tasks"], workers=files["workers"]) for a in FIT_DATA]
    return ["crowd", "fit", str(files["responses"]), *data, "--out", str(out), "--epochs", "15",
            "--embedder", "hashing", "--no-progress", *extra]
