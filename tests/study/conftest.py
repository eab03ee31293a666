"""A small study in three files (responses with ids, task texts, people's profiles) and a fake server."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_helpers import write_study_files


@pytest.fixture
def study_files(tmp_path: Path) -> dict[str, Path]:
    """40 tasks whose true rating is known (1..5, from the text's number of 'bad' words), 30 people,
    each answering about half the tasks at the true rating +-1; plus 3 new tasks and two real answers."""
    return write_study_files(tmp_path)
