"""Loaders: file formats, row numbers, column maps, label inference, and the long-form -> dataset story."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdllm.data import LabelSpec, load_responses_file, load_table, parse_column_map
from crowdllm.data.loaders import infer_label_spec
from crowdllm.errors import ConfigError

# A tiny long-form file: 2 texts, 3 people, the text and profile repeated on every row.
ROWS = [
    ("item", "annotator", "text", "rating", "gender"),
    ("t1", "w1", "hello there", "3", "Woman"),
    ("t1", "w2", "hello there", "4", "Man"),
    ("t2", "w1", "bye now", "1", "Woman"),
    ("t2", "w3", "bye now", "2", "Woman"),
]
MAP = "task=item,worker=annotator,label=rating"


def _csv_text(rows, delimiter=","):
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


# ------------------------------------------------------------------------------------------ tables
def test_csv_index_is_the_file_row_counting_the_header_as_row_1(tmp_path):
    # the second record's text spans two lines, so the third record starts on line 5
    text = 'id,text\na,"one line"\nb,"two\nlines"\nc,"after"\n'
    frame = load_table(_write(tmp_path, "t.csv", text))
    assert list(frame.index) == [2, 3, 5]
    assert frame.loc[3, "text"] == "two\nlines"
    assert frame.attrs["delimiter"] == ","


def test_tab_semicolon_and_bom_files_read_the_same_as_a_plain_csv(tmp_path):
    plain = load_table(_write(tmp_path, "plain.csv", _csv_text(ROWS)))
    tsv = load_table(_write(tmp_path, "tabbed.tsv", _csv_text(ROWS, "\t")))
    semi = load_table(_write(tmp_path, "semi.csv", _csv_text(ROWS, ";")))
    bom = load_table(_write(tmp_path, "bom.csv", "\ufeff" + _csv_text(ROWS)))
    for other in (tsv, semi, bom):
        pd.testing.assert_frame_equal(plain, other)
    assert list(bom.columns)[0] == "item"  # no BOM glued to the first name
    assert tsv.attrs["delimiter"] == "\t" and semi.attrs["delimiter"] == ";"


def test_types_are_inferred_for_tables_but_kept_as_text_for_responses(tmp_path):
    path = _write(tmp_path, "t.csv", _csv_text(ROWS))
    assert load_table(path)["rating"].tolist() == [3, 4, 1, 2]
    assert load_table(path, infer_types=False)["rating"].tolist() == ["3", "4", "1", "2"]


def test_jsonl_index_is_the_line_number_and_blank_lines_are_skipped(tmp_path):
    lines = ['{"task": "t1", "worker": "w1", "label": 2, "text": "x"}', "",
             '{"task": "t1", "worker": "w2", "label": 5, "text": "x"}']
    frame = load_table(_write(tmp_path, "r.jsonl", "\n".join(lines) + "\n"))
    assert list(frame.index) == [1, 3]
    assert frame["label"].tolist() == [2, 5]


def test_parquet_index_is_the_record_number(tmp_path):
    df = pd.DataFrame({"task": ["a", "b", "c"], "worker": ["x", "x", "y"], "label": [0.5, 1.5, 2.5]})
    path = tmp_path / "r.parquet"
    df.to_parquet(path)
    frame = load_table(path)
    assert list(frame.index) == [1, 2, 3]
    assert frame["label"].tolist() == [0.5, 1.5, 2.5]


def test_gzipped_csv_is_read(tmp_path):
    path = tmp_path / "r.csv.gz"
    path.write_bytes(gzip.compress(_csv_text(ROWS).encode()))
    assert len(load_table(path)) == 4


def test_real_popquorn_row_numbers_point_at_the_physical_line(shared_data):
    path = shared_data / "popquorn" / "offensiveness.csv"
    ds = load_responses_file(path, MAP.replace("item", "instance_id").replace("annotator", "user_id")
                             .replace("rating", "offensiveness"))
    lines = path.read_text(encoding="utf-8").split("\n")
    sample = ds.responses.sample(60, random_state=1)
    for row, r in sample.iterrows():
        assert lines[row - 1].startswith(f"{r['task']},{r['worker']},"), row
    assert ds.responses.index.min() == 2


# ------------------------------------------------------------------------------------------ column map
def test_parse_column_map_reads_roles_profiles_and_spaces():
    m = parse_column_map(" task = instance_id , worker=user_id,label=revised email,profile=gender+age ")
    assert m == {"task": "instance_id", "worker": "user_id", "label": "revised email",
                 "profile": ["gender", "age"]}
    assert parse_column_map(None) == {}
    assert parse_column_map({"task": "a"}) == {"task": "a"}


@pytest.mark.parametrize("spec, expected", [
    ("task instance_id", "is not KEY=COLUMN"),
    ("taks=instance_id", "did you mean 'task'?"),
    ("task=a,task=b", "given twice"),
    ("label=", "needs a column name"),
    ("task=a,worker=a", "both map to column 'a'"),
    ("profile=+", "names no columns"),
])
def test_bad_column_map_names_the_setting(spec, expected):
    with pytest.raises(ConfigError) as err:
        parse_column_map(spec)
    assert "--map" in str(err.value) and expected in str(err.value)


_name = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="_ -"),
                min_size=1, max_size=12).map(str.strip).filter(bool)


@given(st.dictionaries(st.sampled_from(["task", "worker", "label", "text"]), _name, min_size=1))
def test_column_map_round_trips(mapping):
    if len(set(mapping.values())) < len(mapping):
        with pytest.raises(ConfigError):
            parse_column_map(",".join(f"{k}={v}" for k, v in mapping.items()))
        return
    assert parse_column_map(",".join(f"{k}={v}" for k, v in mapping.items())) == mapping


# ------------------------------------------------------------------------------------------ datasets
def test_long_form_file_becomes_tasks_workers_and_responses(tmp_path):
    ds = load_responses_file(_write(tmp_path, "crowd.csv", _csv_text(ROWS)), MAP)
    assert (ds.n_responses, ds.n_tasks, ds.n_workers) == (4, 2, 3)
    assert dict(zip(ds.tasks["task"], ds.tasks["text"], strict=True)) == {"t1": "hello there", "t2": "bye now"}
    assert dict(zip(ds.workers["worker"], ds.workers["gender"], strict=True)) == {
        "w1": "Woman", "w2": "Man", "w3": "Woman"}
    # w1 answered t1 on file row 2 and t2 on row 4
    w1 = ds.responses[ds.responses["worker"] == "w1"]
    assert dict(zip(w1.index, w1["label"], strict=True)) == {2: 3.0, 4: 1.0}
    # no label spec given: whole numbers 1..4 -> an ordinal 1..4 scale, and the description says so
    assert ds.label == LabelSpec("ordinal", scale=(1, 4))
    assert "ordinal 1..4" in ds.description and "rating" in ds.description


def test_explicit_profile_sends_other_columns_to_tasks_or_responses(tmp_path):
    rows = [("item", "annotator", "text", "rating", "gender", "topic", "seconds")]
    rows += [("t1", "w1", "a", "1", "Man", "sport", "3.5"), ("t1", "w2", "a", "2", "Woman", "sport", "9"),
             ("t2", "w1", "b", "2", "Man", "news", "4")]
    ds = load_responses_file(_write(tmp_path, "c.csv", _csv_text(rows)), MAP + ",profile=gender")
    assert ds.profile_columns == ["gender"]
    assert dict(zip(ds.tasks["task"], ds.tasks["topic"], strict=True)) == {"t1": "sport", "t2": "news"}
    assert ds.responses["seconds"].tolist() == [3.5, 9.0, 4.0]


def test_float_written_ids_are_normalised(tmp_path):
    rows = [("task", "worker", "label", "text"), ("1.0", "10.0", "a", "x"), ("2.0", "10.0", "b", "y")]
    ds = load_responses_file(_write(tmp_path, "c.csv", _csv_text(rows)))
    assert sorted(ds.tasks["task"]) == ["1", "2"] and ds.workers["worker"].tolist() == ["10"]


@pytest.mark.parametrize("values, kind", [
    (["1", "2", "5"], "ordinal"),
    (["0.5", "2.25", "1"], "continuous"),
    (["0", "100", "37"], "continuous"),  # a 0-100 slider is not a small ordinal scale
    (["yes", "no", "no"], "categorical"),
])
def test_label_kind_inference(values, kind):
    spec, note = infer_label_spec(pd.Series(values, index=[2, 3, 4]), column="y")
    assert spec.kind == kind and kind in note and "'y'" in note


def test_many_distinct_strings_are_free_text():
    values = pd.Series([f"answer number {i}" for i in range(200)])
    assert infer_label_spec(values)[0].kind == "text"


def test_categorical_labels_keep_sorted_categories(tmp_path):
    rows = [("task", "worker", "label", "text"), ("a", "x", "yes", "t"), ("a", "y", "no", "t")]
    ds = load_responses_file(_write(tmp_path, "c.csv", _csv_text(rows)))
    assert ds.label.categories == ("no", "yes")
    assert ds.label_codes().tolist() == [1.0, 0.0]


def test_jsonl_and_parquet_long_form_files_give_the_same_dataset(tmp_path):
    df = pd.DataFrame(ROWS[1:], columns=ROWS[0]).assign(rating=lambda d: d["rating"].astype(int))
    df.to_json(tmp_path / "c.jsonl", orient="records", lines=True)
    df.to_parquet(tmp_path / "c.parquet")
    a = load_responses_file(tmp_path / "c.jsonl", MAP)
    b = load_responses_file(tmp_path / "c.parquet", MAP)
    c = load_responses_file(_write(tmp_path, "c.csv", _csv_text(ROWS)), MAP)
    for ds in (a, b):
        assert ds.label == c.label
        assert ds.responses["label"].tolist() == c.responses["label"].tolist()
        assert ds.workers["gender"].tolist() == c.workers["gender"].tolist()


# ------------------------------------------------------------------------------------------ robustness
_cells = st.text(alphabet=st.sampled_from(list("ab1 2.5,;\t\"\n\r\x00é?-")), max_size=6)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.lists(_cells, min_size=1, max_size=5), max_size=6), raw=st.binary(max_size=40),
       use_raw=st.booleans())
def test_any_file_gives_a_dataset_or_a_crowdllm_error_never_a_traceback(tmp_path, body, raw, use_raw):
    from crowdllm.errors import CrowdLLMError

    content = raw if use_raw else ("task,worker,label,text\n" + "\n".join(",".join(r) for r in body)).encode()
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    try:
        ds = load_responses_file(path)
    except CrowdLLMError as err:
        assert str(err)  # a message, and nothing else escaped
        return
    assert ds.n_responses >= 1
    assert not np.any(ds.responses["task"].isna())


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2),
    max_leaves=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.fixed_dictionaries({
    "task": _json_values, "worker": _json_values, "label": _json_values, "text": _json_values,
    "extra": _json_values}), min_size=1, max_size=6), explicit_profile=st.booleans())
def test_any_jsonl_gives_a_dataset_or_a_crowdllm_error(tmp_path, records, explicit_profile):
    import json

    from crowdllm.errors import CrowdLLMError

    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    try:
        ds = load_responses_file(path, profile_columns=[] if explicit_profile else None)
    except CrowdLLMError:
        return
    assert ds.n_responses == len(records)
