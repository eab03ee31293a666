"""Saved models and results: written atomically, and a truncated, corrupted or mismatched file is never read
back as valid -- loading it is one clear :class:`ConfigError` (exit code 2 from the CLI) naming the file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crowdllm.errors import ConfigError, CrowdDataError, CrowdLLMError


def _fit(seed: int = 0, hidden: int = 16):  # noqa: ANN202
    from crowdllm.belief.embeddings import TextEmbedder
    from crowdllm.crowd import DigitalCrowd
    from crowdllm.data.synthetic import make_synthetic_crowd

    syn = make_synthetic_crowd(n_tasks=16, n_workers=12, random_state=seed)
    crowd = DigitalCrowd(embedder=TextEmbedder("hashing", cache=False), epochs=4, hidden=hidden, latent_dim=4,
                         J=2, random_state=seed)
    return crowd.fit(syn.dataset), syn.dataset


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    crowd, ds = _fit(0)
    directory = tmp_path_factory.mktemp("crowd") / "model"
    crowd.save(directory)
    return directory, crowd, ds


def _copy(saved_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(saved_dir, target)
    return target


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_json(path: Path, change: Callable[[dict], object]) -> None:
    state = json.loads(path.read_text())
    out = change(state)
    path.write_text(json.dumps(state if out is None else out))


def _flip_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:40] = b"\x00" * 32  # the JSON header of a safetensors file starts at byte 8
    path.write_bytes(bytes(data))


DAMAGE = {
    "weights-truncated-to-half": ("belief.safetensors", lambda p: _truncate(p, 0.5)),
    "weights-truncated-to-nothing": ("belief.safetensors", lambda p: _truncate(p, 0.0)),
    "weights-header-zeroed": ("belief.safetensors", _flip_header),
    "weights-missing": ("belief.safetensors", lambda p: p.unlink()),
    "crowd-json-truncated": ("crowd.json", lambda p: _truncate(p, 0.6)),
    "crowd-json-empty": ("crowd.json", lambda p: _truncate(p, 0.0)),
    "crowd-json-a-list": ("crowd.json", lambda p: p.write_text("[1, 2, 3]")),
    "crowd-json-key-missing": ("crowd.json", lambda p: _edit_json(p, lambda s: s.pop("blender"))),
    "crowd-json-wrong-type": ("crowd.json", lambda p: _edit_json(p, lambda s: s.update(center="high"))),
    "crowd-json-ragged-memory": ("crowd.json", lambda p: _edit_json(
        p, lambda s: s["memory"].update(values=s["memory"]["values"][:-1]))),
    "crowd-json-newer-version": ("crowd.json", lambda p: _edit_json(p, lambda s: s.update(format_version=99))),
    "crowd-json-not-a-crowd": ("crowd.json", lambda p: _edit_json(p, lambda s: s.update(kind="something.Else"))),
    "belief-json-truncated": ("belief.json", lambda p: _truncate(p, 0.5)),
    "belief-json-newer-version": ("belief.json", lambda p: _edit_json(p, lambda s: s.update(format_version=7))),
    "belief-json-config-missing": ("belief.json", lambda p: _edit_json(p, lambda s: s.pop("config"))),
    "not-utf8": ("crowd.json", lambda p: p.write_bytes(b"\xff\xfe{\x00")),
}


@pytest.mark.parametrize("case", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_saved_crowd_is_refused_with_one_line_naming_the_file(saved, tmp_path: Path, case: str) -> None:
    from crowdllm.crowd import DigitalCrowd

    directory = _copy(saved[0], tmp_path)
    name, damage = DAMAGE[case]
    damage(directory / name)
    with pytest.raises(ConfigError) as err:
        DigitalCrowd.load(directory)
    message = str(err.value)
    assert "\n" not in message
    assert str(directory) in message
    if case == "crowd-json-newer-version":
        assert "newer" in message and "upgrade" in message


@pytest.mark.parametrize("case", [c for c in DAMAGE if DAMAGE[c][0].startswith("belief")])
def test_a_damaged_belief_model_is_refused_on_its_own(saved, tmp_path: Path, case: str) -> None:
    from crowdllm.belief.cvae import BeliefModel

    directory = _copy(saved[0], tmp_path)
    name, damage = DAMAGE[case]
    damage(directory / name)
    with pytest.raises(ConfigError) as err:
        BeliefModel.load(directory)
    message = str(err.value)
    assert "\n" not in message and str(directory / name) in message
    if "newer-version" in case:
        assert "newer" in message and "upgrade" in message


def test_the_intact_copy_loads_and_answers_like_the_original(saved, tmp_path: Path) -> None:
    from crowdllm.crowd import DigitalCrowd

    directory, crowd, ds = saved
    again = DigitalCrowd.load(_copy(directory, tmp_path))
    a = crowd.sample(ds.tasks, profiles=ds.workers, random_state=3)
    b = again.sample(ds.tasks, profiles=ds.workers, random_state=3)
    pd.testing.assert_frame_equal(a, b)


def test_weights_of_another_crowd_are_not_loaded_as_this_one(saved, tmp_path: Path) -> None:
    """A crash between writing the weights and crowd.json (or a copied file) must not mix two models."""
    from crowdllm.crowd import DigitalCrowd

    directory = _copy(saved[0], tmp_path)
    other, _ = _fit(seed=1)  # same shapes, other weights
    other_dir = tmp_path / "other"
    other.save(other_dir)
    for name in ("belief.safetensors", "belief.json"):
        shutil.copy(other_dir / name, directory / name)
    with pytest.raises(ConfigError) as err:
        DigitalCrowd.load(directory)
    assert str(directory) in str(err.value)


def test_an_interrupted_save_leaves_the_previous_model_loadable(saved, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies while writing crowd.json (after the new weights are in place)."""
    from crowdllm.crowd import DigitalCrowd
    from crowdllm.crowd import model as crowd_module

    directory, crowd, ds = saved
    directory = _copy(directory, tmp_path)
    other, _ = _fit(seed=1)

    def dies(path, obj) -> None:  # noqa: ANN001
        raise KeyboardInterrupt("killed while writing " + str(path))

    monkeypatch.setattr(crowd_module, "atomic_write_json", dies)
    with pytest.raises(KeyboardInterrupt):
        other.save(directory)
    monkeypatch.undo()
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
    try:
        loaded = DigitalCrowd.load(directory)
    except ConfigError as err:  # refusing the mixed directory is fine ...
        assert str(directory) in str(err)
    else:  # ... loading is fine only if it is exactly the old model
        a = crowd.sample(ds.tasks, profiles=ds.workers, random_state=5)
        b = loaded.sample(ds.tasks, profiles=ds.workers, random_state=5)
        pd.testing.assert_frame_equal(a, b)


# ---------------------------------------------------------------------- results and references
def test_atomic_write_keeps_the_old_file_when_the_writer_dies(tmp_path: Path) -> None:
    from crowdllm._io import atomic_path

    target = tmp_path / "results.csv"
    target.write_text("old complete content\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new but only half")
        raise RuntimeError("killed")
    assert target.read_text() == "old complete content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_references_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdllm.llm.reference import load_references, save_references

    out = tmp_path / "refs.csv"
    first = pd.DataFrame({"y_ref": [1.5, 2.5]}, index=pd.Index(["a", "b"], name="task"))
    save_references(first, out)

    real_to_csv = pd.DataFrame.to_csv

    def half_then_die(self, path, **kw):  # noqa: ANN001, ANN003, ANN202
        real_to_csv(self.iloc[:1], path, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_references(pd.DataFrame({"y_ref": [4.0, 5.0, 3.0]}, index=pd.Index(["a", "b", "c"], name="task")), out)
    monkeypatch.undo()
    back = load_references(out)
    assert back["y_ref"].to_dict() == {"a": 1.5, "b": 2.5}
    assert [p.name for p in tmp_path.iterdir()] == ["refs.csv"]


@pytest.mark.parametrize("content", ["task,y_ref\na,1.5\nb,2", "", "task,y_ref\na,\"1.5\nb,2.5\n", "\x00\x01\x02"])
def test_a_damaged_references_file_is_refused_or_read_exactly(tmp_path: Path, content: str) -> None:
    """A references file cut short at a line boundary is indistinguishable from a shorter one (that is
    why writes are atomic); anything else damaged is one clear error."""
    from crowdllm.llm.reference import load_references

    path = tmp_path / "refs.csv"
    path.write_text(content)
    try:
        refs = load_references(path)
    except CrowdLLMError as err:
        assert str(path) in str(err) and "\n" not in str(err)
    else:
        assert refs["y_ref"].dtype == float and np.isfinite(refs["y_ref"]).all()


def test_evaluate_results_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdllm.evaluate import table

    results = pd.DataFrame({"method": ["global"], "aggregator": ["mean"], "metric": ["mae"], "value": [0.5]})
    out = tmp_path / "res"
    out.mkdir()
    (out / "results.csv").write_text("old\n")
    real_to_csv = pd.DataFrame.to_csv

    def die(self, path, **kw):  # noqa: ANN001, ANN003, ANN202
        real_to_csv(self.iloc[:0], path, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", die)
    with pytest.raises((KeyboardInterrupt, CrowdDataError, ConfigError, KeyError, ValueError)):
        table.write_results(results, out)
    assert (out / "results.csv").read_text() == "old\n"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
