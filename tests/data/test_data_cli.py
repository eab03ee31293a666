"""``crowdllm data list|info|validate`` through the real CLI entry point."""

from __future__ import annotations

from crowdllm.cli import main
from crowdllm.data import REGISTRY

CSV = (
    "item,annotator,text,rating,gender\n"
    "t1,w1,hello there,3,Woman\n"
    "t1,w2,hello there,4,Man\n"
    "t2,w1,bye now,1,Woman\n"
    "t2,w3,bye now,2,Woman\n"
)
MAP = "task=item,worker=annotator,label=rating"


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_error_line(err: str) -> bool:
    """stderr is exactly one line, and it starts with ``error:``."""
    lines = err.splitlines()
    return len(lines) == 1 and lines[0].startswith("error:")


def test_list_shows_every_registered_set(capsys):
    rc, out, _ = _run(capsys, "data", "list")
    assert rc == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["name", "tasks", "workers", "responses"]
    assert len(lines) == 1 + len(REGISTRY)
    row = next(line for line in lines if line.startswith("popquorn-offensiveness "))
    assert "1,500" in row and "262" in row and "13,036" in row and "ordinal 1..5" in row and row.endswith("yes")
    assert next(line for line in lines if line.startswith("amazon-beauty ")).endswith("no (URL only)")


def test_info_on_a_registered_set_prints_counts_histogram_and_attributes(capsys, shared_data):
    rc, out, _ = _run(capsys, "data", "info", "popquorn-offensiveness")
    assert rc == 0
    assert "responses: 13,036" in out and "tasks: 1,500" in out and "workers: 262" in out
    assert "7,516" in out and "57.7%" in out  # share of 1s: 7516 / 13036
    assert "age (ordered): 18-24" in out and "Pei" in out


def test_info_on_a_users_file_with_a_map(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text(CSV)
    rc, out, _ = _run(capsys, "data", "info", str(path), "--map", MAP, "--kind", "ordinal", "--scale", "1-5")
    assert rc == 0
    assert "responses: 4" in out and "tasks: 2" in out and "workers: 3" in out
    assert "label: ordinal 1..5" in out and "gender: Woman (2), Man (1)" in out


def test_validate_ok(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text(CSV)
    rc, out, err = _run(capsys, "data", "validate", str(path), "--map", MAP)
    assert rc == 0 and err == ""
    assert out.splitlines()[0] == "OK: 4 responses, 2 tasks, 3 workers"
    assert "inferred" in out and "ordinal 1..4" in out


def test_validate_bad_file_prints_one_line_and_exits_2(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text(CSV + "t3,w2,new,9,Man\n")
    rc, out, err = _run(capsys, "data", "validate", str(path), "--map", MAP, "--kind", "ordinal", "--scale", "1-5")
    assert rc == 2 and out == ""
    assert _one_error_line(err)
    assert str(path) in err and "row 6" in err and "column 'rating'" in err and "off the scale" in err


def test_validate_misspelt_map_column(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text(CSV)
    rc, _, err = _run(capsys, "data", "validate", str(path), "--map", "task=item,worker=anotator,label=rating")
    assert rc == 2 and "did you mean 'annotator'?" in err and _one_error_line(err)


def test_bad_settings_name_the_option(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text(CSV)
    rc, _, err = _run(capsys, "data", "validate", str(path), "--map", "task:item")
    assert rc == 2 and "--map" in err and _one_error_line(err)
    rc, _, err = _run(capsys, "data", "validate", str(path), "--map", MAP, "--scale", "five")
    assert rc == 2 and "--scale" in err and _one_error_line(err)
    rc, _, err = _run(capsys, "data", "info", "popquorn-offensiveness", "--map", MAP)
    assert rc == 2 and "fixed layout" in err and _one_error_line(err)


def test_info_unknown_name_suggests_one(capsys):
    rc, _, err = _run(capsys, "data", "info", "zurich-pb-top")
    assert rc == 2 and "did you mean 'zurich-pb-top5'?" in err and _one_error_line(err)
