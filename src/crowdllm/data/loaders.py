"""Read users' files into frames and crowd datasets, checking everything once, at the edge.

- :func:`load_table` reads CSV/TSV (delimiter detected from the header line), JSONL and Parquet
  (``.gz`` compressed CSV/JSONL too). The frame's index is the 1-based row number in the file: for CSV
  the header is row 1, so the first data row is 2 (a quoted field spanning several lines counts from the
  line where its record starts); for JSONL the line number; for Parquet the record number.
- :func:`parse_column_map` turns ``"task=instance_id,worker=user_id,label=offensiveness"`` into a dict.
- :func:`load_responses_file` / :func:`dataset_from_frame` turn one long-form table (one row per
  response; the task text and the worker profile repeated on every row) into a validated
  :class:`~crowdllm.data.dataset.CrowdDataset`.

Every problem with a user's file raises :class:`~crowdllm.errors.CrowdDataError` naming the file, the
row and the column (or :class:`~crowdllm.errors.ConfigError` naming the setting), never a traceback.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm.data.dataset import CrowdDataset, LabelSpec, category_text
from crowdllm.errors import ConfigError, CrowdDataError

#: Longest field (in characters) accepted in a file; longer ones are almost always an unclosed quote.
MAX_FIELD_CHARS = 1_000_000
#: Integer labels spanning at most this many steps are read as an ordinal scale when no kind is given.
MAX_INFERRED_ORDINAL_STEPS = 10
#: String labels with more distinct values than this (and mostly unique) are read as free text.
MAX_INFERRED_CATEGORIES = 50

FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_DELIMITERS = (",", "\t", ";", "|")
_DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
MAP_KEYS: tuple[str, ...] = ("task", "worker", "label", "text", "profile")
_ROLE_HELP = {"task": "the task id", "worker": "the worker id", "label": "the response",
              "text": "the task text"}

# The csv module refuses fields over 128 KiB by default; we check field sizes ourselves (naming the
# row and column), so lift its limit once for this process.
if csv.field_size_limit() < 2**31 - 1:
    csv.field_size_limit(2**31 - 1)


# ---------------------------------------------------------------------------------------------- helpers
def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice (case-insensitive), or ``""``."""
    choices = [str(c) for c in choices]
    lowered = {c.lower(): c for c in choices}
    if name.lower() in lowered:
        return f"; did you mean '{lowered[name.lower()]}'?"
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean '{lowered[close[0]]}'?" if close else ""


def file_format(path: str | Path) -> str:
    """``csv``, ``jsonl`` or ``parquet`` from the file name (``.gz`` allowed for csv/jsonl)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        if suffixes and FORMATS.get(suffixes[-1]) == "parquet":
            suffixes = []
    ext = suffixes[-1] if suffixes else ""
    if ext not in FORMATS:
        supported = ", ".join(sorted(FORMATS))
        shown = "".join(p.suffixes) or "(none)"
        raise CrowdDataError(
            f"unknown file extension '{shown}'; crowdllm reads {supported} (and .csv.gz/.jsonl.gz); "
            "save the table as CSV, JSONL or Parquet",
            file=str(path),
        )
    return FORMATS[ext]


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8 (a BOM is dropped); bad bytes are reported by line and byte offset."""
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except FileNotFoundError:
        raise CrowdDataError("no such file", file=str(path)) from None
    except (OSError, EOFError) as err:
        raise CrowdDataError(f"cannot read the file: {err}", file=str(path)) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        column = _column_at(data, line_start, err.start, path)
        raise CrowdDataError(
            f"not valid UTF-8: byte 0x{data[err.start]:02x} at byte offset {err.start} "
            f"(byte {err.start - line_start + 1} of the line); save the file as UTF-8",
            file=str(path), row=line, column=column,
        ) from None


def _column_at(data: bytes, line_start: int, pos: int, path: Path) -> str | None:
    """Best effort: the CSV header name of the field holding byte ``pos`` (None when unknown)."""
    try:
        if file_format(path) != "csv":
            return None
        header_line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
        delim = _sniff_delimiter(header_line, path)
        header = next(csv.reader([header_line], delimiter=delim))
        prefix = data[line_start:pos].decode("utf-8", errors="replace")
        index = len(next(csv.reader([prefix + "x"], delimiter=delim))) - 1
        return header[index].strip() if 0 <= index < len(header) else None
    except Exception:  # noqa: BLE001 - purely cosmetic, never mask the real error
        return None


def _sniff_delimiter(header_line: str, path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


# ---------------------------------------------------------------------------------------------- tables
def load_table(path: str | Path, *, infer_types: bool = True) -> pd.DataFrame:
    """Read a CSV/TSV, JSONL or Parquet file into a frame indexed by 1-based file row.

    CSV values are read as text; with ``infer_types`` (the default) columns whose every value is a
    number become numeric. Empty CSV fields are missing (NaN). ``frame.attrs`` records ``source``,
    ``format`` and (CSV) ``delimiter``.
    """
    p = Path(path)
    fmt = file_format(p)
    if not p.exists():
        raise CrowdDataError("no such file", file=str(p))
    if p.is_dir():
        raise CrowdDataError("is a folder, not a file", file=str(p))
    if p.stat().st_size == 0:
        raise CrowdDataError("the file is empty", file=str(p))
    if fmt == "csv":
        frame = _read_csv(p)
        if infer_types:
            frame = _numeric_columns(frame)
    elif fmt == "jsonl":
        frame = _read_jsonl(p)
    else:
        frame = _read_parquet(p)
    _check_field_sizes(frame, str(p))
    frame.attrs["source"] = str(p)
    frame.attrs["format"] = fmt
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    text = _read_text(path)
    src = str(path)
    if not text.strip():
        raise CrowdDataError("the file is empty (no header, no rows)", file=src)
    header_line = text.split("\n", 1)[0].rstrip("\r")
    delim = _sniff_delimiter(header_line, path)
    records, starts = _csv_records(text, delim, src, strict=True)
    if not records:
        raise CrowdDataError("the file is empty (no header, no rows)", file=src)
    header = [h.strip() for h in records[0]]
    header = [h if h else f"Unnamed: {i}" for i, h in enumerate(header)]
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise CrowdDataError("this column name appears twice in the header", file=src, row=starts[0],
                                 column=h)
        seen.add(h)
    ncol = len(header)
    rows, index = records[1:], starts[1:]
    if not rows:
        raise CrowdDataError("the file has a header but no data rows", file=src, row=starts[0])
    for rec, row in zip(rows, index, strict=True):
        if len(rec) > ncol:
            extra = rec[ncol:]
            if any(f.strip() for f in extra):
                raise CrowdDataError(
                    f"{len(rec)} fields but the header has {ncol} (an unquoted "
                    f"{_DELIMITER_NAMES[delim]} inside a value, or a wrong delimiter?)",
                    file=src, row=row, column=header[-1],
                )
            del rec[ncol:]
        elif len(rec) < ncol:
            rec.extend([""] * (ncol - len(rec)))
    columns: dict[str, list[Any]] = {}
    for j, name in enumerate(header):
        columns[name] = [r[j] if r[j] != "" else None for r in rows]
    frame = pd.DataFrame(columns, index=pd.Index(index, dtype="int64"))
    frame.attrs["delimiter"] = delim
    return frame


def _csv_records(text: str, delim: str, src: str, *, strict: bool) -> tuple[list[list[str]], list[int]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=strict)
    records: list[list[str]] = []
    starts: list[int] = []
    prev = 0
    try:
        for rec in reader:
            start, prev = prev + 1, reader.line_num
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue  # blank line
            records.append(rec)
            starts.append(start)
    except csv.Error as err:
        if "unexpected end of data" in str(err) or "EOF" in str(err):
            raise CrowdDataError(
                "a quoted field that starts in this row is never closed (a missing '\"'?)",
                file=src, row=prev + 1,
            ) from None
        if strict:  # a stray quote inside a field: read leniently, as spreadsheets do
            return _csv_records(text, delim, src, strict=False)
        raise CrowdDataError(f"malformed CSV: {err}", file=src, row=prev + 1) from None
    return records, starts


def _read_jsonl(path: Path) -> pd.DataFrame:
    text = _read_text(path)
    src = str(path)
    records: list[dict[str, Any]] = []
    index: list[int] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise CrowdDataError(f"not valid JSON: {err.msg} (character {err.colno})", file=src,
                                 row=lineno) from None
        if not isinstance(obj, dict):
            raise CrowdDataError(f"each line must be a JSON object {{...}}, found {type(obj).__name__}",
                                 file=src, row=lineno)
        records.append(obj)
        index.append(lineno)
    if not records:
        raise CrowdDataError("the file is empty (no JSON records)", file=src)
    return _nested_as_json(pd.DataFrame.from_records(records, index=pd.Index(index, dtype="int64")))


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for a bad file
        msg = " ".join(str(err).split())[:200]
        raise CrowdDataError(f"cannot read this Parquet file: {msg}", file=str(path)) from None
    if len(frame) == 0:
        raise CrowdDataError("the file is empty (no records)", file=str(path))
    frame = frame.reset_index(drop=True)
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    frame.columns = [str(c) for c in frame.columns]
    return _nested_as_json(frame)


def _nested_as_json(frame: pd.DataFrame) -> pd.DataFrame:
    """Lists, arrays and objects inside cells become their JSON text (so every cell is comparable)."""
    for col in frame.columns:
        if frame[col].dtype != object:
            continue
        nested = frame[col].map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray)))
        if nested.any():
            frame[col] = frame[col].map(
                lambda v: json.dumps(v.tolist() if isinstance(v, np.ndarray) else v, ensure_ascii=False,
                                     default=str)
                if isinstance(v, (list, tuple, dict, np.ndarray)) else v)
    return frame


def _check_field_sizes(frame: pd.DataFrame, src: str) -> None:
    for col in frame.columns:
        s = frame[col]
        if s.dtype.kind in "biufcmM":
            continue
        lengths = s.map(lambda v: len(v) if isinstance(v, str) else 0)
        if len(lengths) and int(lengths.max()) > MAX_FIELD_CHARS:
            pos = int(np.argmax(lengths.to_numpy()))
            raise CrowdDataError(
                f"a field of {int(lengths.iloc[pos]):,} characters (limit {MAX_FIELD_CHARS:,}); "
                "an unclosed quote swallowing the rest of the file?",
                file=src, row=_row_at(frame.index, pos), column=str(col),
            )


def _numeric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        num = _all_numeric(out[col])
        if num is not None:
            out[col] = num
    return out


def _all_numeric(s: pd.Series) -> pd.Series | None:
    """The column as numbers when every non-missing value is one (whole numbers as int64 when none
    is missing); ``None`` when some value is not a number or all are missing."""
    if s.dtype.kind in "biuf":
        return s
    if s.notna().sum() == 0:
        return None
    try:
        num = pd.to_numeric(s.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
    except (TypeError, ValueError):
        return None
    if (num.isna() & s.notna()).any():
        return None
    arr = num.to_numpy(dtype=float)
    if not num.isna().any() and np.isfinite(arr).all() and np.all(arr == np.round(arr)):
        return num.astype("int64")
    return num.astype(float)


# ---------------------------------------------------------------------------------------------- column map
def parse_column_map(spec: str | Mapping[str, Any] | None, *, setting: str = "--map",
                     keys: Sequence[str] = MAP_KEYS) -> dict[str, Any]:
    """Parse ``"task=instance_id,worker=user_id,label=offensiveness"`` into ``{"task": "instance_id", ...}``.

    Keys: ``task``, ``worker``, ``label``, ``text`` (the task text) and ``profile`` (worker profile
    columns joined by ``+``, e.g. ``profile=gender+age``; returned as a list). Column names may contain
    spaces (``text=original email``). A mapping is checked and returned as a plain dict.
    Raises :class:`ConfigError` naming ``setting`` on bad syntax or an unknown key.
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        items = []
        for part in str(spec).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ConfigError(
                    f"{setting}: '{part.strip()}' is not KEY=COLUMN "
                    f"(write e.g. {setting} task=instance_id,worker=user_id,label=rating)"
                )
            key, value = part.split("=", 1)
            items.append((key, value))
    out: dict[str, Any] = {}
    for raw_key, raw_value in items:
        key = raw_key.strip().lower()
        if key not in keys:
            raise ConfigError(
                f"{setting}: unknown key '{raw_key.strip()}' (keys: {', '.join(keys)})"
                f"{did_you_mean(key, list(keys))}"
            )
        if key in out:
            raise ConfigError(f"{setting}: key '{key}' is given twice")
        if key == "profile":
            names = raw_value if isinstance(raw_value, (list, tuple)) else str(raw_value).split("+")
            cols = [str(n).strip() for n in names if str(n).strip()]
            if not cols:
                raise ConfigError(f"{setting}: 'profile=' names no columns (write profile=gender+age)")
            out[key] = cols
            continue
        if not isinstance(raw_value, str) or not raw_value.strip():
            raise ConfigError(f"{setting}: '{key}=' needs a column name")
        out[key] = raw_value.strip()
    roles = {k: v for k, v in out.items() if k != "profile"}
    seen: dict[str, str] = {}
    for key, col in roles.items():
        if col in seen:
            raise ConfigError(f"{setting}: '{seen[col]}' and '{key}' both map to column '{col}'")
        seen[col] = key
    return out


# ---------------------------------------------------------------------------------------------- three files
TASK_MAP_KEYS: tuple[str, ...] = ("task", "text")
WORKER_MAP_KEYS: tuple[str, ...] = ("worker", "profile")
#: How many unmatched ids a warning or error names before it says "and N more".
_SHOWN_IDS = 3


def _side_table(table: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    if isinstance(table, pd.DataFrame):
        return table, table.attrs.get("source")
    frame = load_table(table, infer_types=False)
    return frame, str(table)


def _named_ids(ids: Sequence[str], total: int) -> str:
    shown = ", ".join(f"'{i}'" for i in ids[:_SHOWN_IDS])
    more = total - min(total, _SHOWN_IDS)
    return shown + (f" and {more} more" if more else "")


def _free_join_name(name: str, taken: set[str], suffix: str) -> str:
    out = name if name not in taken else f"{name}_{suffix}"
    while out in taken:
        out += "_"
    return out


def _side_columns(role: str, table: str | Path | pd.DataFrame, side_map: str | Mapping[str, Any] | None, flag: str,
                  map_flag: str, keys: Sequence[str]) -> tuple[pd.DataFrame, str | None, pd.Series, list[str]]:
    """Read a --tasks/--workers table: (table, its file, its ids, the columns carried into the join)."""
    side, side_src = _side_table(table)
    smap = parse_column_map(side_map, setting=map_flag, keys=keys)
    side_cols = [str(c) for c in side.columns]
    id_col = smap.get(role, role)
    if id_col not in side_cols:
        raise CrowdDataError(f"no column '{id_col}' (the {role} id; map it with {map_flag} {role}=COLUMN)"
                             f"{did_you_mean(id_col, side_cols)} (columns: {', '.join(side_cols)})",
                             file=side_src, column=id_col)
    ids = _ids(side[id_col], side_src, id_col)
    dup = ids.duplicated().to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        raise CrowdDataError(f"{role} id '{ids.iloc[pos]}' appears twice in {flag}", file=side_src,
                             row=_row_at(side.index, pos), column=id_col)
    if role == "task":
        text_col = smap.get("text", "text")
        if text_col not in side_cols:
            raise CrowdDataError(f"no column '{text_col}' (the task text; map it with {map_flag} text=COLUMN)"
                                 f"{did_you_mean(text_col, side_cols)} (columns: {', '.join(side_cols)})",
                                 file=side_src, column=text_col)
        carried = [text_col] + [c for c in side_cols if c not in (id_col, text_col)]
    else:
        extra = [c for c in side_cols if c != id_col]
        wanted = list(smap["profile"]) if "profile" in smap else extra
        for col in wanted:
            if col not in side_cols:
                raise CrowdDataError(f"no profile column '{col}' ({map_flag} profile=...)"
                                     f"{did_you_mean(col, side_cols)} (columns: {', '.join(side_cols)})",
                                     file=side_src, column=col)
        carried = wanted
    return side, side_src, ids, carried


def read_tasks(table: str | Path | pd.DataFrame, task_map: str | Mapping[str, Any] | None = None, *,
               flag: str = "--tasks", map_flag: str = "--task-map") -> pd.DataFrame:
    """A task table on its own (new questions for a fitted crowd): ``task`` (ids as strings), ``text``
    and every other column as task metadata; the same checks and messages as a ``--tasks`` table joined
    to responses, and an empty text is an error naming its row."""
    side, src, ids, carried = _side_columns("task", table, task_map, flag, map_flag, TASK_MAP_KEYS)
    text_col = carried[0]
    blank = (side[text_col].isna() | (side[text_col].astype(str).str.strip() == "")).to_numpy()
    if blank.any():
        raise CrowdDataError("task text is empty", file=src, row=_row_at(side.index, int(np.flatnonzero(blank)[0])),
                             column=text_col)
    out = side[carried].rename(columns={text_col: "text"})
    out.insert(0, "task", ids.to_numpy())
    return out.reset_index(drop=True)


def _check_id_columns(frame: pd.DataFrame, cmap: Mapping[str, Any], src: str | None) -> list[str]:
    columns = [str(c) for c in frame.columns]
    for role in ("task", "worker"):
        col = cmap.get(role, role)
        if col not in columns:
            raise CrowdDataError(f"no column '{col}' ({_ROLE_HELP[role]}; map it with --map {role}=COLUMN)"
                                 f"{did_you_mean(col, columns)} (columns: {', '.join(columns)})",
                                 file=src, column=col)
    return columns


def _report_unmatched(out: pd.DataFrame, keep: np.ndarray, messages: list[str],
                      first_bad: tuple[int, str, str] | None, strict: bool, src: str | None) -> tuple[int, str]:
    """ONE warning naming what the join leaves out (an error with ``strict``); (rows left out, warning)."""
    import warnings

    if first_bad is not None and strict:
        pos, col, msg = first_bad
        raise CrowdDataError(f"{msg} (--strict; {'; '.join(messages)})", file=src,
                             row=_row_at(out.index, pos), column=col)
    n_dropped = int((~keep).sum())
    warning = ""
    if messages:
        warning = ("; ".join(messages) + f": {n_dropped:,} response(s) left out (--strict makes this an error)")
        warnings.warn(warning, UserWarning, stacklevel=3)
    if n_dropped == len(out):
        raise CrowdDataError(f"no response is left after the join ({warning})", file=src)
    return n_dropped, warning


def join_tables(
    frame: pd.DataFrame,
    *,
    column_map: str | Mapping[str, Any] | None = None,
    tasks: str | Path | pd.DataFrame | None = None,
    task_map: str | Mapping[str, Any] | None = None,
    workers: str | Path | pd.DataFrame | None = None,
    worker_map: str | Mapping[str, Any] | None = None,
    strict: bool = False,
    source: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any], int, str]:
    """Join a responses table with a table of task texts and/or a table of people's profiles.

    ``task_map`` names the tasks table's columns (``task=ID_COLUMN,text=TEXT_COLUMN``; every other
    column becomes task metadata); ``worker_map`` the workers table's (``worker=ID_COLUMN`` and
    optionally ``profile=A+B``; default: every other column is a profile attribute). Ids are matched as
    text (``12`` and ``12.0`` are the same id).

    Responses whose task (or person) is missing from the other table are counted and named in ONE
    warning and left out (``strict``: an error naming the first such row). Returns the joined frame (file
    rows as index), the column map to read it with, the number of responses left out and the warning.
    """

    src = source or frame.attrs.get("source")
    cmap = parse_column_map(column_map)
    columns = _check_id_columns(frame, cmap, src)
    out = frame.copy()
    out.attrs = dict(frame.attrs)
    keep = np.ones(len(out), dtype=bool)
    messages: list[str] = []
    first_bad: tuple[int, str, str] | None = None
    new_map: dict[str, Any] = dict(cmap)
    role_cols = {cmap.get(r, r) for r in ("task", "worker", "label")} | ({cmap["text"]} if "text" in cmap else set())
    if "profile" in cmap:
        profile: list[str] | None = list(cmap["profile"])
    elif workers is not None:
        profile = []  # the people's profiles come from the workers table
    elif tasks is not None:
        profile = [c for c in columns if c not in role_cols and not (c == "text" and "text" not in cmap)]
    else:
        profile = None
    sides = []
    if tasks is not None:
        sides.append(("task", tasks, task_map, "--tasks", "--task-map", TASK_MAP_KEYS))
    if workers is not None:
        sides.append(("worker", workers, worker_map, "--workers", "--worker-map", WORKER_MAP_KEYS))
    for role, table, side_map, flag, map_flag, keys in sides:
        side, side_src, ids, carried = _side_columns(role, table, side_map, flag, map_flag, keys)
        key = _ids(out[cmap.get(role, role)], src, cmap.get(role, role))
        matched = key.isin(set(ids)).to_numpy()
        unmatched = ~matched & keep
        if unmatched.any():
            missing_ids = list(dict.fromkeys(key[unmatched].tolist()))
            n_rows = int(unmatched.sum())
            messages.append(f"{n_rows:,} response(s) name {len(missing_ids):,} {role} id(s) missing from {flag} "
                            f"{side_src or ''} ({_named_ids(missing_ids, len(missing_ids))})".replace("  ", " "))
            if first_bad is None:
                pos = int(np.flatnonzero(unmatched)[0])
                first_bad = (pos, cmap.get(role, role), f"{role} id '{key.iloc[pos]}' is not in {flag} {side_src or ''}")
        keep &= matched
        lookup = side.assign(**{"__id__": ids.to_numpy()}).drop_duplicates("__id__").set_index("__id__")
        taken = {str(c) for c in out.columns}
        for col in carried:
            name = _free_join_name(col, taken, f"{role}s")
            taken.add(name)
            out[name] = key.map(lookup[col]).to_numpy()
            if role == "task" and col == carried[0]:
                new_map["text"] = name
            elif role == "worker":
                assert profile is not None
                if name not in profile:
                    profile.append(name)
        if role == "task" and profile is not None:
            profile = [c for c in profile if c not in carried]
    n_dropped, warning = _report_unmatched(out, keep, messages, first_bad, strict, src)
    joined = out[keep]
    joined.attrs = dict(frame.attrs)
    if profile is not None:
        new_map["profile"] = profile
    return joined, new_map, n_dropped, warning


def load_joined_dataset(
    path: str | Path | pd.DataFrame,
    *,
    column_map: str | Mapping[str, Any] | None = None,
    label: LabelSpec | None = None,
    tasks: str | Path | pd.DataFrame | None = None,
    task_map: str | Mapping[str, Any] | None = None,
    workers: str | Path | pd.DataFrame | None = None,
    worker_map: str | Mapping[str, Any] | None = None,
    strict: bool = False,
    text_column: str | None = "text",
    name: str | None = None,
) -> CrowdDataset:
    """A responses file (ids + answers) joined with a tasks file and/or a workers file (see
    :func:`join_tables`), as a validated :class:`CrowdDataset`. Without ``tasks``/``workers`` this is
    :func:`load_responses_file`."""
    if isinstance(path, pd.DataFrame):
        frame, src = path, path.attrs.get("source")
    else:
        frame, src = load_table(path, infer_types=False), str(path)
    stem = name or (Path(src).stem if src else "custom")
    if tasks is None and workers is None:
        return dataset_from_frame(frame, column_map=column_map, label=label, text_column=text_column, source=src,
                                  name=stem)
    joined, cmap, dropped, _ = join_tables(frame, column_map=column_map, tasks=tasks, task_map=task_map,
                                           workers=workers, worker_map=worker_map, strict=strict, source=src)
    ds = dataset_from_frame(joined, column_map=cmap, label=label, text_column=text_column, source=src, name=stem)
    ds.dropped_rows += dropped
    return ds


# ---------------------------------------------------------------------------------------------- datasets
def load_responses_file(
    path: str | Path,
    column_map: str | Mapping[str, Any] | None = None,
    label: LabelSpec | None = None,
    text_column: str | None = "text",
    profile_columns: Sequence[str] | None = None,
    *,
    name: str | None = None,
    ordered_attributes: Mapping[str, Sequence[str]] | None = None,
) -> CrowdDataset:
    """Read ONE long-form file (one row per response) into a validated :class:`CrowdDataset`.

    ``column_map`` maps the roles ``task``, ``worker``, ``label`` (and optionally ``text`` and
    ``profile``) to the file's column names; a role left out uses the column of the same name.
    ``profile_columns`` (default: every column not mapped to a role) are the worker profile; when they
    are given, the remaining columns become task metadata (if constant per task) or extra response
    columns. With ``label=None`` the label kind is inferred and the dataset's description says how.
    """
    p = Path(path)
    frame = load_table(p, infer_types=False)
    return dataset_from_frame(frame, column_map=column_map, label=label, text_column=text_column,
                              profile_columns=profile_columns, source=str(p), name=name or p.stem,
                              ordered_attributes=ordered_attributes)


def dataset_from_frame(
    frame: pd.DataFrame,
    *,
    column_map: str | Mapping[str, Any] | None = None,
    label: LabelSpec | None = None,
    text_column: str | None = "text",
    profile_columns: Sequence[str] | None = None,
    source: str | None = None,
    name: str = "custom",
    ordered_attributes: Mapping[str, Sequence[str]] | None = None,
    description: str = "",
) -> CrowdDataset:
    """Build a validated dataset from a long-form frame (see :func:`load_responses_file`).

    The frame's index should carry file row numbers (as :func:`load_table` gives) so errors can name
    the row; ``source`` names the file.
    """
    src = source or frame.attrs.get("source")
    cmap = parse_column_map(column_map)
    header_row = 1 if frame.attrs.get("format") == "csv" else None
    notes = [description] if description else []
    roles, text_col = _frame_roles(frame, cmap, text_column, src, header_row, notes)
    if profile_columns is None and "profile" in cmap:
        profile_columns = cmap["profile"]
    profile, others, explicit_profile = _profile_and_other_columns(frame, roles, profile_columns, src,
                                                                   header_row, notes)

    task = _ids(frame[roles["task"]], src, roles["task"])
    worker = _ids(frame[roles["worker"]], src, roles["worker"])
    _check_one_answer_per_pair(frame, task, worker, src, roles["worker"])
    tasks = _tasks_table(frame, task, text_col, src)
    workers = _workers_table(frame, worker, profile, explicit_profile, src, notes)
    extras = _task_metadata_or_extras(frame, task, others, tasks, notes)

    raw_label = frame[roles["label"]]
    if label is None:
        label, note = infer_label_spec(raw_label, source=src, column=roles["label"])
        notes.append(note)
    if label.is_numeric:
        raw_label = raw_label.map(lambda v: v.strip() if isinstance(v, str) else v)
    responses = pd.DataFrame({"task": task, "worker": worker, "label": raw_label}, index=frame.index)
    for col, values in extras.items():
        responses[col] = values

    ds = CrowdDataset(
        responses=responses, tasks=tasks, workers=workers, label=label, name=name, source=src,
        ordered_attributes={k: list(v) for k, v in (ordered_attributes or {}).items()},
        description=" ".join(n for n in notes if n),
    )
    reverse = {"task": roles["task"], "worker": roles["worker"], "label": roles["label"]}
    if text_col is not None:
        reverse["text"] = text_col
    try:
        return ds.validate()
    except CrowdDataError as err:
        raise CrowdDataError(err.message, file=err.file, row=err.row,
                             column=reverse.get(err.column or "", err.column)) from None


def _frame_roles(frame: pd.DataFrame, cmap: dict[str, Any], text_column: str | None, src: str | None,
                 header_row: int | None, notes: list[str]) -> tuple[dict[str, str], str | None]:
    """The column of each role (task, worker, label, text), checked against the frame's columns."""
    roles: dict[str, str] = {r: cmap.get(r, r) for r in ("task", "worker", "label")}
    text_col = cmap.get("text", text_column)
    if "text" not in cmap and text_col == "text" and text_col not in [str(c) for c in frame.columns]:
        # task texts are needed only by what reads them (LLM references, the digital crowd)
        text_col = None
        notes.append("No task text column ('text'): methods that read task texts need one "
                     "(--map text=COLUMN or --tasks FILE).")
    if text_col is not None:
        roles["text"] = text_col
    for role in ("task", "worker", "label"):
        if text_col is not None and text_col == roles[role]:
            raise ConfigError(f"--map: the task text and the {role} are both column '{text_col}'; "
                              "name the task text with text=COLUMN")
    columns = [str(c) for c in frame.columns]
    needed = list(dict.fromkeys(roles.values()))
    if len(columns) == 1 and len(needed) > 1 and columns[0] not in needed[1:]:
        delim = frame.attrs.get("delimiter")
        how = f" as {_DELIMITER_NAMES.get(delim, repr(delim))}-separated" if delim else ""
        raise CrowdDataError(
            f"the file has only one column ('{columns[0][:60]}') but {len(needed)} are needed "
            f"({', '.join(needed)}); wrong delimiter? (read{how})",
            file=src, row=header_row, column=columns[0][:60],
        )
    for role, col in roles.items():
        if col not in columns:
            via = f" (mapped from --map {role}={col})" if role in cmap else f" ({_ROLE_HELP[role]})"
            hint = did_you_mean(col, columns)
            if not hint and role not in cmap:
                hint = f"; map it with --map {role}=COLUMN"
            raise CrowdDataError(
                f"no column '{col}'{via}{hint} (columns: {', '.join(columns)})",
                file=src, row=header_row, column=col,
            )
    return roles, text_col


def _profile_and_other_columns(frame: pd.DataFrame, roles: dict[str, str], profile_columns: Sequence[str] | None,
                               src: str | None, header_row: int | None, notes: list[str]
                               ) -> tuple[list[str], list[str], bool]:
    """Profile columns (given, or every column without a role) and the other columns; columns empty in
    every row are left out with a note."""
    columns = [str(c) for c in frame.columns]
    role_cols = set(roles.values())
    empty = [c for c in columns if c not in role_cols and frame[c].isna().all()
             and (profile_columns is None or c not in profile_columns)]
    if empty:
        notes.append(f"Column{'s' if len(empty) > 1 else ''} {', '.join(repr(c) for c in empty)} "
                     f"{'are' if len(empty) > 1 else 'is'} empty in every row and left out.")
        columns = [c for c in columns if c not in empty]
    if profile_columns is None:
        profile = [c for c in columns if c not in role_cols]
        explicit_profile = False
    else:
        profile = [str(c) for c in profile_columns]
        explicit_profile = True
        for col in profile:
            if col not in columns:
                raise CrowdDataError(
                    f"no profile column '{col}'{did_you_mean(col, columns)} (columns: {', '.join(columns)})",
                    file=src, row=header_row, column=col,
                )
            if col in role_cols:
                raise ConfigError(f"profile column '{col}' is also mapped to a role in the column map")
    others = [c for c in columns if c not in role_cols and c not in profile]
    return profile, others, explicit_profile


def _check_one_answer_per_pair(frame: pd.DataFrame, task: pd.Series, worker: pd.Series, src: str | None,
                               worker_col: str) -> None:
    """One row per (task, worker)."""
    dup = pd.DataFrame({"t": task, "w": worker}).duplicated(keep=False).to_numpy()
    if dup.any():
        pairs = pd.DataFrame({"t": task[dup], "w": worker[dup], "row": frame.index[dup]})
        first = pairs.groupby(["t", "w"], sort=False)["row"].apply(list).iloc[0]
        t0, w0 = pairs.iloc[0]["t"], pairs.iloc[0]["w"]
        raise CrowdDataError(
            f"duplicate response: worker '{w0}' answered task '{t0}' more than once "
            f"(rows {', '.join(map(str, first[:5]))})",
            file=src, row=_row_at(pd.Index(first), 1), column=worker_col,
        )


def _tasks_table(frame: pd.DataFrame, task: pd.Series, text_col: str | None, src: str | None) -> pd.DataFrame:
    """Tasks table (first row of each task); the text must be the same in every row of a task."""
    task_first = ~task.duplicated().to_numpy()
    tasks = pd.DataFrame({"task": task[task_first]}, index=frame.index[task_first])
    if text_col is not None:
        text = frame[text_col]
        _check_consistent(text, task, src, text_col, "task")
        first_text = text.groupby(task.to_numpy(), sort=False).first()
        no_text = tasks["task"][~tasks["task"].isin(first_text.dropna().index)]
        if len(no_text):
            raise CrowdDataError(f"task '{no_text.iloc[0]}' has no text in any row", file=src,
                                 row=_row_at(no_text.index, 0), column=text_col)
        tasks["text"] = tasks["task"].map(first_text).astype(str).to_numpy()
    return tasks


def _workers_table(frame: pd.DataFrame, worker: pd.Series, profile: list[str], explicit_profile: bool,
                   src: str | None, notes: list[str]) -> pd.DataFrame:
    """Workers table; each profile attribute must be the same in every row of a worker."""
    worker_first = ~worker.duplicated().to_numpy()
    workers = pd.DataFrame({"worker": worker[worker_first]}, index=frame.index[worker_first])
    for col in profile:
        values = frame[col]
        _check_consistent(values, worker, src, col, "worker", hint=not explicit_profile)
        firsts = values.groupby(worker.to_numpy(), sort=False).first()
        workers[_free_name(col, workers, notes)] = _maybe_numeric(workers["worker"].map(firsts))
    return workers


def _task_metadata_or_extras(frame: pd.DataFrame, task: pd.Series, others: list[str], tasks: pd.DataFrame,
                             notes: list[str]) -> dict[str, pd.Series]:
    """Remaining columns: task metadata (added to ``tasks``) if constant per task, else returned to be
    kept on the responses."""
    extras: dict[str, pd.Series] = {}
    for col in others:
        values = frame[col]
        per_task = values.groupby(task.to_numpy(), sort=False).nunique(dropna=True)
        if int(per_task.max() if len(per_task) else 0) <= 1:
            firsts = values.groupby(task.to_numpy(), sort=False).first()
            tasks[_free_name(col, tasks, notes)] = _maybe_numeric(tasks["task"].map(firsts))
        else:
            taken = pd.DataFrame(columns=["task", "worker", "label", *extras])
            extras[_free_name(col, taken, notes)] = _maybe_numeric(values)
    return extras


def _row_at(index: pd.Index, pos: int) -> int | None:
    """The file row at position ``pos`` when the index holds row numbers, else None."""
    value = index[pos]
    return int(value) if isinstance(value, (int, np.integer)) else None


def _ids(values: pd.Series, src: str | None, column: str) -> pd.Series:
    """Ids as strings; ``"12.0"``-style ids (a float column written out) become ``"12"``."""
    missing = values.isna().to_numpy()
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise CrowdDataError("missing id (empty)", file=src, row=_row_at(values.index, pos), column=column)
    if values.dtype.kind == "f":
        as_float = values.to_numpy(dtype=float)
        if np.all(np.isfinite(as_float)) and np.all(np.abs(as_float) < 2**53) \
                and np.all(as_float == np.round(as_float)):
            return pd.Series(as_float.astype(np.int64).astype(str), index=values.index, dtype=object)
    ids = values.map(lambda v: str(v).strip())
    blank = (ids == "").to_numpy()
    if blank.any():
        pos = int(np.flatnonzero(blank)[0])
        raise CrowdDataError("missing id (blank)", file=src, row=_row_at(values.index, pos), column=column)
    if ids.str.fullmatch(r"-?\d+\.0+").all():
        ids = ids.str.replace(r"\.0+$", "", regex=True)
    return ids.astype(object)


def _check_consistent(values: pd.Series, key: pd.Series, src: str | None, column: str, what: str,
                      *, hint: bool = False) -> None:
    """Every row of one id must carry the same value (missing values are ignored)."""
    first = values.groupby(key.to_numpy(), sort=False).transform("first")
    present = values.notna().to_numpy() & first.notna().to_numpy()
    differs = present & (values.astype(str).to_numpy() != first.astype(str).to_numpy())
    if differs.any():
        pos = int(np.flatnonzero(differs)[0])
        ident = key.iloc[pos]
        same = np.flatnonzero((key.to_numpy() == ident) & values.notna().to_numpy())
        first_row = _row_at(values.index, int(same[0]))
        shown = str(values.iloc[pos])
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        msg = (f"{what} '{ident}' has a different value here ('{shown}') than in row {first_row}; "
               f"each {what} must have one {'text' if what == 'task' else 'profile'}")
        if hint:
            msg += (f"; if '{column}' is not part of the worker profile, list the profile columns "
                    "(--map profile=col1+col2)")
        raise CrowdDataError(msg, file=src, row=_row_at(values.index, pos), column=column)


def _free_name(col: str, table: pd.DataFrame, notes: list[str]) -> str:
    """``col``, or ``col_file`` when the table already uses that name (e.g. a second 'text' column)."""
    if col not in table.columns:
        return col
    new = f"{col}_file"
    notes.append(f"File column '{col}' is kept as '{new}' ('{col}' is taken).")
    return new


def _maybe_numeric(values: pd.Series) -> pd.Series:
    num = _all_numeric(values)
    return num if num is not None else values


def infer_label_spec(values: pd.Series, *, source: str | None = None,
                     column: str = "label") -> tuple[LabelSpec, str]:
    """Guess the label kind from the values; returns the spec and a sentence saying what was inferred.

    Integers spanning at most ``MAX_INFERRED_ORDINAL_STEPS`` steps -> ordinal on that range; other
    numbers -> continuous; strings -> categorical (free text when almost every value is distinct).
    A column of mostly numbers with some text raises naming the first row that is not a number.
    """
    present = values.dropna()
    if len(present) == 0:
        raise CrowdDataError("the label column is empty in every row", file=source, column=column)
    if present.dtype.kind in "biuf":
        num = present.astype(float)
    else:
        num = pd.to_numeric(present.map(lambda v: str(v).strip()), errors="coerce")
    is_num = num.notna().to_numpy()
    override = "pass a label spec (CLI: --kind/--scale) to set it"
    if is_num.all():
        arr = num.to_numpy(dtype=float)
        if not np.isfinite(arr).all():
            pos = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise CrowdDataError(f"label '{present.iloc[pos]}' is not a finite number", file=source,
                                 row=_row_at(present.index, pos), column=column)
        lo, hi = float(arr.min()), float(arr.max())
        distinct = np.unique(arr)
        if len(distinct) == 2:
            cats = tuple(category_text(v) for v in distinct)
            return LabelSpec("categorical", categories=cats), (
                f"Label kind inferred from column '{column}': categorical (binary: {cats[0]}, {cats[1]}; two "
                f"distinct values); pass --kind ordinal --scale {cats[0]}..{cats[1]} for a rating scale.")
        if np.all(arr == np.round(arr)) and 0 < hi - lo <= MAX_INFERRED_ORDINAL_STEPS:
            spec = LabelSpec("ordinal", scale=(int(lo), int(hi)))
            return spec, (f"Label kind inferred from column '{column}': ordinal {int(lo)}..{int(hi)} "
                          f"(whole numbers from {int(lo)} to {int(hi)}); {override} if the scale is wider.")
        return LabelSpec("continuous"), (f"Label kind inferred from column '{column}': continuous "
                                         f"(numbers from {lo:g} to {hi:g}); {override}.")
    if is_num.mean() >= 0.5:
        pos = int(np.flatnonzero(~is_num)[0])
        raise CrowdDataError(
            f"label '{present.iloc[pos]}' is not a number, but the other labels in this column are numbers",
            file=source, row=_row_at(present.index, pos), column=column,
        )
    strings = present.map(str)
    cats = sorted(strings.unique())
    if len(cats) > MAX_INFERRED_CATEGORIES and len(cats) > 0.5 * len(strings):
        return LabelSpec("text"), (f"Label kind inferred from column '{column}': free text "
                                   f"({len(cats)} distinct values); {override}.")
    shown = ", ".join(cats[:8]) + (", ..." if len(cats) > 8 else "")
    return LabelSpec("categorical", categories=tuple(cats)), (
        f"Label kind inferred from column '{column}': categorical with {len(cats)} categories "
        f"({shown}); {override}.")
