"""Helpers for the study tests: the fit command line for the three-file study of conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FIT_DATA = ["--map", "task=item,worker=uid,label=score", "--kind", "ordinal", "--scale", "1-5",
            "--tasks", "{tasks}", "--task-map", "task=id,text=comment",
            "--workers", "{workers}", "--worker-map", "worker=person"]


def fit_args(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    data = [a.format(tasks=files["tasks"], workers=files["workers"]) for a in FIT_DATA]
    return ["crowd", "fit", str(files["responses"]), *data, "--out", str(out), "--epochs", "15",
            "--embedder", "hashing", "--no-progress", *extra]


def write_study_files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    rows = []
    for t in range(40):
        truth = 1 + t % 5
        for w in range(30):
            if rng.random() < 0.5:
                rows.append({"item": f"t{t}", "uid": f"p{w}",
                             "score": int(np.clip(truth + rng.integers(-1, 2), 1, 5))})
    files = {
        "responses": tmp_path / "responses.csv",
        "tasks": tmp_path / "tasks.csv",
        "workers": tmp_path / "people.csv",
        "new": tmp_path / "new.csv",
        "real": tmp_path / "real.csv",
    }
    pd.DataFrame(rows).to_csv(files["responses"], index=False)
    pd.DataFrame({"id": [f"t{t}" for t in range(40)],
                  "comment": [f"comment {t}: " + "bad " * (t % 5) for t in range(40)]}).to_csv(files["tasks"], index=False)
    pd.DataFrame({"person": [f"p{w}" for w in range(30)], "gender": ["man", "woman"] * 15,
                  "age": ["18-24", "25-34", "35-44"] * 10}).to_csv(files["workers"], index=False)
    pd.DataFrame({"id": ["n1", "n2", "n3"], "comment": ["a new one", "another bad bad", "a third"]}).to_csv(
        files["new"], index=False)
    pd.DataFrame({"task": ["n1", "n1", "n2"], "label": [5, 5, 1]}).to_csv(files["real"], index=False)
    return files
