"""Every bad file gives ONE clear error naming the file, the row and the column (or the setting)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from crowdllm.data import LabelSpec, load_responses_file, load_table
from crowdllm.data import loaders as loaders_module
from crowdllm.errors import ConfigError, CrowdDataError

HEADER = "item,annotator,text,rating,gender\n"
GOOD_ROWS = ["t1,w1,hello there,3,Woman", "t1,w2,hello there,4,Man", "t2,w1,bye now,1,Woman"]
MAP = "task=item,worker=annotator,label=rating"


def _file(tmp_path: Path, rows: list[str], *, name: str = "crowd.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _error(path: Path, column_map=MAP, **kw) -> str:
    with pytest.raises(CrowdDataError) as err:
        load_responses_file(path, column_map, **kw)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert str(path) in message  # every message names the file
    return message


def test_misspelt_label_column_suggests_the_closest_name(tmp_path):
    msg = _error(_file(tmp_path, GOOD_ROWS), "task=item,worker=annotator,label=ratng")
    assert "row 1" in msg and "column 'ratng'" in msg
    assert "no column 'ratng'" in msg and "did you mean 'rating'?" in msg


def test_missing_role_column_without_a_map_says_how_to_map_it(tmp_path):
    msg = _error(_file(tmp_path, GOOD_ROWS), None)
    assert "row 1" in msg and "column 'task'" in msg and "--map task=COLUMN" in msg


def test_misspelt_profile_column(tmp_path):
    msg = _error(_file(tmp_path, GOOD_ROWS), MAP + ",profile=gendr")
    assert "row 1" in msg and "column 'gendr'" in msg and "did you mean 'gender'?" in msg


def test_label_off_the_scale(tmp_path):
    rows = GOOD_ROWS + ["t2,w2,bye now,7,Man"]
    msg = _error(_file(tmp_path, rows), label=LabelSpec("ordinal", scale=(1, 5)))
    assert "row 5" in msg and "column 'rating'" in msg and "off the scale" in msg


def test_text_where_numbers_belong_is_found_when_inferring(tmp_path):
    rows = GOOD_ROWS + ["t2,w2,bye now,three,Man", "t3,w2,hi,2,Man"]
    msg = _error(_file(tmp_path, rows))
    assert "row 5" in msg and "column 'rating'" in msg and "'three' is not a number" in msg


def test_text_where_numbers_belong_with_a_given_scale(tmp_path):
    rows = ["t1,w1,hello there,3,Woman", "t1,w2,hello there,n/a,Man"]
    msg = _error(_file(tmp_path, rows), label=LabelSpec("ordinal", scale=(1, 5)))
    assert "row 3" in msg and "column 'rating'" in msg and "not a number" in msg


def test_empty_label(tmp_path):
    rows = GOOD_ROWS + ["t2,w2,bye now,,Man"]
    msg = _error(_file(tmp_path, rows))
    assert "row 5" in msg and "column 'rating'" in msg and "missing" in msg


def test_nan_written_as_a_label(tmp_path):
    rows = GOOD_ROWS + ["t2,w2,bye now,NaN,Man"]
    msg = _error(_file(tmp_path, rows), label=LabelSpec("continuous"))
    assert "row 5" in msg and "column 'rating'" in msg and "'NaN' is not a number" in msg


def test_label_not_among_the_categories(tmp_path):
    rows = ["t1,w1,x,yes,Man", "t1,w2,x,maybe,Man"]
    msg = _error(_file(tmp_path, rows), label=LabelSpec("categorical", categories=("no", "yes")))
    assert "row 3" in msg and "column 'rating'" in msg and "'maybe'" in msg


def test_duplicate_task_worker_pair_names_both_rows(tmp_path):
    rows = GOOD_ROWS + ["t1,w1,hello there,5,Woman"]
    msg = _error(_file(tmp_path, rows))
    assert "row 5" in msg and "column 'annotator'" in msg and "rows 2, 5" in msg
    assert "worker 'w1' answered task 't1' more than once" in msg


def test_inconsistent_task_text(tmp_path):
    rows = GOOD_ROWS + ["t2,w2,bye now!,2,Man"]
    msg = _error(_file(tmp_path, rows))
    assert "row 5" in msg and "column 'text'" in msg and "task 't2'" in msg and "row 4" in msg


def test_inconsistent_profile(tmp_path):
    rows = GOOD_ROWS + ["t3,w2,new,2,Woman"]
    msg = _error(_file(tmp_path, rows))
    assert "row 5" in msg and "column 'gender'" in msg and "worker 'w2'" in msg and "row 3" in msg
    assert "profile=" in msg  # how to say which columns are the profile


def test_missing_worker_id(tmp_path):
    rows = GOOD_ROWS + ["t2,,bye now,2,Man"]
    msg = _error(_file(tmp_path, rows))
    assert "row 5" in msg and "column 'annotator'" in msg and "missing id" in msg


def test_task_without_any_text(tmp_path):
    rows = GOOD_ROWS + ["t9,w2,,2,Man"]
    msg = _error(_file(tmp_path, rows))
    assert "row 5" in msg and "column 'text'" in msg and "no text" in msg


def test_empty_file(tmp_path):
    path = tmp_path / "crowd.csv"
    path.write_bytes(b"")
    assert "empty" in _error(path)


def test_blank_file(tmp_path):
    path = tmp_path / "crowd.csv"
    path.write_text("\n\n  \n")
    assert "empty" in _error(path)


def test_header_without_rows(tmp_path):
    msg = _error(_file(tmp_path, [], header=HEADER.rstrip("\n")))
    assert "row 1" in msg and "no data rows" in msg


def test_wrong_delimiter(tmp_path):
    # a comma-separated file saved as .tsv is read with tabs -> one column only
    msg = _error(_file(tmp_path, GOOD_ROWS, name="crowd.tsv"))
    assert "wrong delimiter?" in msg and "row 1" in msg and "column 'item,annotator" in msg
    assert "tab-separated" in msg


def test_colon_separated_file_is_one_column(tmp_path):
    msg = _error(_file(tmp_path, [r.replace(",", ":") for r in GOOD_ROWS], header=HEADER.replace(",", ":")))
    assert "wrong delimiter?" in msg and "only one column" in msg


def test_non_utf8_byte_names_row_byte_and_column(tmp_path):
    path = tmp_path / "crowd.csv"
    path.write_bytes((HEADER + GOOD_ROWS[0] + "\n").encode() + "t2,w1,caf\xe9 au lait,2,Woman\n".encode("latin-1"))
    msg = _error(path)
    assert "row 3" in msg and "byte 0xe9" in msg and "column 'text'" in msg and "UTF-8" in msg


def test_huge_field(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders_module, "MAX_FIELD_CHARS", 1000)
    rows = GOOD_ROWS + ["t3,w2," + "x" * 5000 + ",2,Man"]
    msg = _error(_file(tmp_path, rows))
    assert "row 5" in msg and "column 'text'" in msg and "5,000 characters" in msg


def test_unclosed_quote(tmp_path):
    rows = GOOD_ROWS[:2] + ['t2,w1,"bye now,1,Woman', "t2,w3,bye now,2,Man"]
    msg = _error(_file(tmp_path, rows))
    assert "row 4" in msg and "never closed" in msg


def test_row_with_too_many_fields(tmp_path):
    rows = GOOD_ROWS + ["t3,w2,hello, world,2,Man"]
    msg = _error(_file(tmp_path, rows))
    assert "row 5" in msg and "6 fields but the header has 5" in msg and "column 'gender'" in msg


def test_duplicate_header_name(tmp_path):
    msg = _error(_file(tmp_path, [r + ",x" for r in GOOD_ROWS], header=HEADER.rstrip("\n") + ",text\n"))
    assert "row 1" in msg and "column 'text'" in msg and "twice" in msg


def test_unknown_extension(tmp_path):
    path = _file(tmp_path, GOOD_ROWS, name="crowd.xlsx")
    msg = _error(path)
    assert "unknown file extension '.xlsx'" in msg and ".csv" in msg


def test_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path / "absent.csv")


def test_bad_json_line(tmp_path):
    path = tmp_path / "crowd.jsonl"
    path.write_text('{"task": "a", "worker": "b", "label": 1, "text": "x"}\n{"task": "a", "worker": \n')
    msg = _error(path, None)
    assert "row 2" in msg and "not valid JSON" in msg


def test_json_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "crowd.jsonl"
    path.write_text('{"task": "a", "worker": "b", "label": 1, "text": "x"}\n[1, 2]\n')
    msg = _error(path, None)
    assert "row 2" in msg and "JSON object" in msg


def test_jsonl_label_of_the_wrong_type(tmp_path):
    path = tmp_path / "crowd.jsonl"
    path.write_text('{"task": "a", "worker": "b", "y": 1, "text": "x"}\n'
                    '{"task": "a", "worker": "c", "y": "high", "text": "x"}\n')
    msg = _error(path, "label=y", label=LabelSpec("ordinal", scale=(1, 5)))
    assert "row 2" in msg and "column 'y'" in msg and "not a number" in msg


def test_damaged_parquet(tmp_path):
    path = tmp_path / "crowd.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    assert "cannot read this Parquet file" in _error(path)


def test_damaged_gzip(tmp_path):
    path = tmp_path / "crowd.csv.gz"
    path.write_bytes(gzip.compress((HEADER + GOOD_ROWS[0]).encode())[:25])
    assert "cannot read" in _error(path)


def test_bad_map_syntax_names_the_setting(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_responses_file(_file(tmp_path, GOOD_ROWS), "task item")
    assert "--map" in str(err.value) and "KEY=COLUMN" in str(err.value)


def test_the_frame_from_load_table_also_checks_field_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders_module, "MAX_FIELD_CHARS", 10)
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": "short"}\n{"a": "a much longer value"}\n')
    with pytest.raises(CrowdDataError) as err:
        load_table(path)
    assert "row 2" in str(err.value) and "column 'a'" in str(err.value)
