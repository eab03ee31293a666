"""Data in the shapes people have: ids + answers, a file of task texts, a file of profiles (--tasks/--workers)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crowdllm.cli import main
from crowdllm.data import LabelSpec, infer_label_spec, load_joined_dataset, load_responses_file
from crowdllm.data.dataset import category_text
from crowdllm.errors import CrowdDataError


@pytest.fixture
def three(tmp_path: Path) -> dict[str, Path]:
    """12 tasks x 8 people, answers -1/1; the tasks file lacks t11 and the people file lacks p7."""
    rng = np.random.default_rng(1)
    rows = [{"item": f"t{t}", "uid": f"p{w}", "toxic": int(rng.choice([-1, 1]))} for t in range(12) for w in range(8)]
    files = {"responses": tmp_path / "responses.csv", "tasks": tmp_path / "texts.csv", "workers": tmp_path / "people.tsv"}
    pd.DataFrame(rows).to_csv(files["responses"], index=False)
    pd.DataFrame({"id": [f"t{t}" for t in range(11)], "comment": [f"text {t}" for t in range(11)],
                  "source": ["web"] * 11}).to_csv(files["tasks"], index=False)
    pd.DataFrame({"person": [f"p{w}" for w in range(7)], "gender": ["man", "woman", "man", "woman", "man", "woman",
                                                                    "man"],
                  "age": [20, 31, 42, 53, 24, 35, 46]}).to_csv(files["workers"], sep="\t", index=False)
    return files


JOIN = {"column_map": "task=item,worker=uid,label=toxic", "task_map": "task=id,text=comment",
        "worker_map": "worker=person"}


def test_three_files_join_on_ids_and_name_what_is_left_out(three):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_joined_dataset(three["responses"], tasks=three["tasks"], workers=three["workers"], **JOIN)
    messages = [str(w.message) for w in caught if "left out" in str(w.message)]
    assert len(messages) == 1
    # t11 has 8 responses, p7 has 12, one (t11, p7) counted once: 8 + 11 = 19 rows left out
    assert "8 response(s) name 1 task id(s) missing from --tasks" in messages[0] and "'t11'" in messages[0]
    assert "'p7'" in messages[0] and "19 response(s) left out" in messages[0]
    assert ds.n_responses == 96 - 19 and ds.dropped_rows == 19
    assert ds.n_tasks == 11 and ds.n_workers == 7
    assert list(ds.tasks.columns) == ["task", "text", "source"]
    assert ds.tasks.set_index("task").loc["t3", "text"] == "text 3"
    assert ds.profile_columns == ["gender", "age"] and ds.workers["age"].dtype.kind in "iu"
    # two distinct numbers are a binary categorical label, their codes as category names
    assert ds.label == LabelSpec("categorical", categories=("-1", "1"))


def test_strict_makes_a_missing_id_an_error_naming_the_row(three):
    with pytest.raises(CrowdDataError) as err:
        load_joined_dataset(three["responses"], tasks=three["tasks"], strict=True, **JOIN)
    # t11's first response is data row 11 * 8 + 1 = 89, file row 90 (the header is row 1)
    assert "row 90" in str(err.value) and "'t11' is not in --tasks" in str(err.value)


def test_duplicate_id_in_the_tasks_file_names_its_row(three, tmp_path):
    bad = tmp_path / "dup.csv"
    bad.write_text("id,comment\nt1,a\nt2,b\nt1,c\n")
    with pytest.raises(CrowdDataError) as err:
        load_joined_dataset(three["responses"], tasks=bad, **JOIN)
    assert str(err.value).startswith(f"{bad}, row 4, column 'id'") and "appears twice" in str(err.value)


@pytest.mark.parametrize("values", [[1.0, -1.0, 1.0], ["1.0", "-1", "1"], [1, -1, 1]])
def test_numbers_used_as_category_codes_match_the_categories(tmp_path, values):
    path = tmp_path / "codes.parquet"
    pd.DataFrame({"task": ["a", "a", "b"], "worker": ["x", "y", "x"], "label": values, "text": ["s", "s", "t"]}
                 ).to_parquet(path)
    ds = load_responses_file(path, label=LabelSpec("categorical", categories=("-1", "1")))
    assert list(ds.responses["label"]) == ["1", "-1", "1"]


def test_category_text_reads_codes_the_same_whatever_the_type():
    assert [category_text(v) for v in (1, 1.0, "1.0", " -1 ", np.int64(3), 0.5, "yes")] == \
        ["1", "1", "1", "-1", "3", "0.5", "yes"]


@pytest.mark.parametrize(("values", "kind"), [([0, 1, 1, 0], "categorical"), ([-1, 1], "categorical"),
                                              ([1, 2, 3], "ordinal"), ([2.5, 7.5], "categorical")])
def test_two_distinct_values_are_inferred_as_binary(values, kind):
    spec, note = infer_label_spec(pd.Series(values))
    assert spec.kind == kind
    if kind == "categorical":
        assert len(spec.categories) == 2 and "binary" in note


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_validate_joins_and_warns_once(three, capsys):
    args = ["data", "validate", str(three["responses"]), "--map", JOIN["column_map"], "--tasks", str(three["tasks"]),
            "--task-map", JOIN["task_map"], "--workers", str(three["workers"]), "--worker-map", JOIN["worker_map"]]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("OK: 77 responses, 11 tasks, 7 workers (19 left out)")
    assert sum("warning:" in line for line in captured.err.splitlines()) == 1
    assert main([*args, "--strict"]) == 2
    assert "--strict" in _one_error(capsys)


@pytest.mark.parametrize(("extra", "expect"), [
    (["--kind", "categorical"], "--kind categorical needs --categories"),
    (["--kind", "ordinal"], "--kind ordinal needs --scale"),
    (["--task-map", "task=id"], "--task-map describes the --tasks file"),
    (["--tasks", "{tasks}", "--task-map", "task=id,txt=comment"], "--task-map: unknown key 'txt'"),
    (["--tasks", "{tasks}", "--task-map", "task=ident"], "no column 'ident'"),
    (["--workers", "{workers}", "--worker-map", "worker=person,profile=gender+height"], "no profile column 'height'"),
])
def test_cli_errors_speak_flags(three, capsys, extra, expect):
    extra = [a.format(tasks=three["tasks"], workers=three["workers"]) for a in extra]
    assert main(["data", "validate", str(three["responses"]), "--map", JOIN["column_map"], *extra]) == 2
    assert expect in _one_error(capsys)


def test_ids_and_answers_alone_validate_and_evaluate_with_baselines(tmp_path, capsys):
    rng = np.random.default_rng(2)
    path = tmp_path / "ids.csv"
    pd.DataFrame([{"task": f"t{t}", "worker": f"w{w}", "label": int(rng.integers(1, 6))}
                  for t in range(15) for w in range(12)]).to_csv(path, index=False)
    assert main(["data", "validate", str(path), "--kind", "ordinal", "--scale", "1-5"]) == 0
    assert "No task text column" in capsys.readouterr().out
    assert main(["evaluate", "-d", str(path), "--kind", "ordinal", "--scale", "1-5", "--seeds", "1",
                 "--methods", "random,global,per-task", "--aggregators", "mean", "--no-progress"]) == 0
    assert "global" in capsys.readouterr().out
