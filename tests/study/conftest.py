"""A small study in three files (responses with ids, task texts, people's profiles) and a fake server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def study_files(tmp_path: Path) -> dict[str, Path]:
    """40 tasks whose true rating is known (1..5, from the text's number of 'bad' words), 30 people,
    each answering about half the tasks at the true rating +-1; plus 3 new tasks and two real answers."""
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
