"""Shared test setup: the local data mirror, a private cache, and small crowds with known answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own crowdllm cache; the data mirror points at ../shared/data when present."""
    cache = tmp_path_factory.mktemp("crowdllm-cache")
    monkeypatch.setenv("CROWDLLM_CACHE", str(cache))
    if SHARED_DATA.exists() and "CROWDLLM_DATA_PATH" not in os.environ:
        monkeypatch.setenv("CROWDLLM_DATA_PATH", str(SHARED_DATA))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture
def synthetic():
    from crowdllm.data.synthetic import make_synthetic_crowd

    return make_synthetic_crowd(n_tasks=60, n_workers=40, random_state=0)
