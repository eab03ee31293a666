"""Bad input through the command line: every case gets ONE ``error:`` line on stderr that names the file,
row and column (or the setting), exit code 2, and no traceback anywhere in the output.

The cases are made here, one small file or setting each. Most run through :func:`crowdllm.cli.main` in this
process (fast); the ones marked ``process`` run the installed ``crowdllm`` script as a real subprocess, so the
exit code is the one a shell sees.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hardening_helpers import Result, child_env, closed_port, run_cli, run_process, write_crowd_csv

HEADER = "item,annotator,text,rating,gender"
GOOD = ["t1,w1,hello there,3,Woman", "t1,w2,hello there,4,Man", "t2,w1,bye now,1,Woman", "t2,w2,bye now,2,Man"]
MAP = "task=item,worker=annotator,label=rating"


def csv(d: Path, rows: list[str], *, header: str = HEADER, name: str = "crowd.csv") -> Path:
    path = d / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def validate(path: Path, *extra: str, cmap: str | None = MAP) -> list[str]:
    return ["data", "validate", str(path), *(["--map", cmap] if cmap else []), *extra]


def evaluate(path: Path | str, *extra: str, cmap: str | None = MAP) -> list[str]:
    return ["evaluate", "-d", str(path), *(["--map", cmap] if cmap else []), "--seeds", "1", "--methods", "global",
            "--no-progress", *extra]


@dataclass
class Case:
    id: str
    make: Callable[[Path], list[str]]
    #: parts the error line must contain; "{file}" is the data file the case wrote (crowd.*)
    expect: list[str]
    process: bool = False
    env: dict[str, str] = field(default_factory=dict)


def _latin1(d: Path) -> Path:
    path = d / "crowd.csv"
    path.write_bytes((HEADER + "\n" + GOOD[0] + "\n").encode() + "t2,w1,caf\xe9 au lait,2,Woman\n".encode("latin-1"))
    return path


def _huge(d: Path) -> Path:
    # one field over the loader's 1,000,000-character limit
    return csv(d, [*GOOD, "t3,w3," + "x" * 1_000_050 + ",2,Man"])


def _jsonl(d: Path, lines: list[str]) -> Path:
    path = d / "crowd.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _bad_template(d: Path) -> Path:
    path = d / "mine.toml"
    path.write_text('[rating]\nsystem = "Rate it"\nanswer_prefix = "Rating: \n', encoding="utf-8")
    return path


def _topk_votes(d: Path) -> Path:
    # each voter must pick exactly k=2 of the 3 items; v2 picks one
    rows = ["a,v1,1,park", "b,v1,1,bus", "c,v1,0,art", "a,v2,1,park", "b,v2,0,bus", "c,v2,0,art"]
    return csv(d, rows, header="item,voter,picked,text")


def reference(d: Path, *extra: str, url: str = "http://127.0.0.1:9/v1") -> list[str]:
    data = write_crowd_csv(d / "crowd.csv", n_tasks=2, n_workers=2)
    return ["reference", "--dataset", str(data), "--out", str(d / "refs.csv"), "--base-url", url,
            "--model", "fake-model", "--quiet", *extra]


CASES = [
    # ------------------------------------------------------------------ columns
    Case("missing-role-column-without-map", lambda d: validate(csv(d, GOOD), cmap=None),
         ["{file}", "row 1", "column 'task'", "--map"], process=True),
    Case("misspelt-label-column", lambda d: validate(csv(d, GOOD), cmap="task=item,worker=annotator,label=ratng"),
         ["{file}", "row 1", "column 'ratng'", "did you mean 'rating'"]),
    Case("misspelt-profile-column", lambda d: validate(csv(d, GOOD), cmap=MAP + ",profile=gendr"),
         ["{file}", "row 1", "column 'gendr'", "did you mean 'gender'"]),
    Case("duplicate-header-name", lambda d: validate(csv(d, [r + ",x" for r in GOOD], header=HEADER + ",text")),
         ["{file}", "row 1", "column 'text'", "twice"]),
    Case("bad-column-map-syntax", lambda d: validate(csv(d, GOOD), cmap="task item"), ["--map", "KEY=COLUMN"]),
    Case("bad-column-map-key", lambda d: evaluate(csv(d, GOOD), cmap="tsk=item,worker=annotator,label=rating"),
         ["--map", "'tsk'"]),
    Case("column-map-to-an-absent-column", lambda d: evaluate(csv(d, GOOD), cmap="task=instance,worker=annotator,"
                                                              "label=rating"),
         ["{file}", "row 1", "column 'instance'"]),
    # ------------------------------------------------------------------ labels
    Case("label-off-the-scale", lambda d: validate(csv(d, [*GOOD, "t3,w1,x,7,Woman"]), "--scale", "1-5"),
         ["{file}", "row 6", "column 'rating'", "off the scale"]),
    Case("text-where-a-number-belongs", lambda d: validate(csv(d, [*GOOD, "t3,w1,x,three,Woman"])),
         ["{file}", "row 6", "column 'rating'", "'three' is not a number"], process=True),
    Case("nan-label", lambda d: validate(csv(d, [*GOOD, "t3,w1,x,NaN,Woman"]), "--kind", "continuous"),
         ["{file}", "row 6", "column 'rating'", "'NaN'"]),
    Case("empty-label", lambda d: validate(csv(d, [*GOOD, "t3,w1,x,,Woman"])),
         ["{file}", "row 6", "column 'rating'", "missing"]),
    Case("label-not-a-category", lambda d: validate(csv(d, ["t1,w1,x,yes,Man", "t1,w2,x,maybe,Man"]),
                                                    "--categories", "no,yes"),
         ["{file}", "row 3", "column 'rating'", "'maybe'"]),
    Case("top-k-ballot-of-the-wrong-size", lambda d: validate(_topk_votes(d), "--kind", "topk", "--k", "2",
                                                              cmap="task=item,worker=voter,label=picked"),
         ["{file}", "v2"]),
    # ------------------------------------------------------------------ rows
    Case("duplicate-task-worker-pair", lambda d: validate(csv(d, [*GOOD, "t1,w1,hello there,5,Woman"])),
         ["{file}", "row 6", "column 'annotator'", "rows 2, 6"]),
    Case("missing-worker-id", lambda d: validate(csv(d, [*GOOD, "t3,,x,2,Man"])),
         ["{file}", "row 6", "column 'annotator'", "missing id"]),
    Case("task-without-text", lambda d: validate(csv(d, [*GOOD, "t9,w2,,2,Man"])),
         ["{file}", "row 6", "column 'text'", "no text"]),
    Case("inconsistent-task-text", lambda d: validate(csv(d, [*GOOD, "t2,w3,bye now!,2,Man"])),
         ["{file}", "row 6", "column 'text'", "task 't2'"]),
    Case("inconsistent-profile", lambda d: validate(csv(d, [*GOOD, "t3,w2,new,2,Woman"])),
         ["{file}", "row 6", "column 'gender'", "worker 'w2'"]),
    Case("row-with-too-many-fields", lambda d: validate(csv(d, [*GOOD, "t3,w2,hello, world,2,Man"])),
         ["{file}", "row 6", "column 'gender'", "6 fields"]),
    Case("unclosed-quote", lambda d: validate(csv(d, [*GOOD[:2], 't2,w1,"bye now,1,Woman', "t2,w3,bye,2,Man"])),
         ["{file}", "row 4", "never closed"]),
    Case("huge-field", lambda d: validate(_huge(d)), ["{file}", "row 6", "column 'text'", "characters"]),
    # ------------------------------------------------------------------ files
    Case("empty-file", lambda d: validate(_write(d / "crowd.csv", b"")), ["{file}", "empty"],
         process=True),
    Case("header-only", lambda d: validate(csv(d, [])), ["{file}", "row 1", "no data rows"]),
    Case("wrong-delimiter", lambda d: validate(csv(d, GOOD, name="crowd.tsv")),
         ["{file}", "row 1", "wrong delimiter"]),
    Case("non-utf8-bytes", lambda d: validate(_latin1(d)), ["{file}", "row 3", "column 'text'", "byte 0xe9", "UTF-8"],
         process=True),
    Case("unknown-extension", lambda d: validate(csv(d, GOOD, name="crowd.xlsx")), ["{file}", "'.xlsx'"]),
    Case("missing-file", lambda d: validate(d / "crowd.csv"), ["{file}", "no such file"]),
    Case("bad-json-line", lambda d: validate(_jsonl(d, ['{"task": "a", "worker": "b", "label": 1, "text": "x"}',
                                                        '{"task": "a", "worker": ']), cmap=None),
         ["{file}", "row 2", "not valid JSON"]),
    Case("json-line-not-an-object", lambda d: validate(_jsonl(d, ['{"task": "a", "worker": "b", "label": 1, '
                                                                   '"text": "x"}', "[1, 2]"]), cmap=None),
         ["{file}", "row 2", "JSON object"]),
    Case("damaged-parquet", lambda d: validate(_write(d / "crowd.parquet", b"PAR1 not really parquet")),
         ["{file}", "Parquet"]),
    Case("damaged-gzip", lambda d: validate(_write(d / "crowd.csv.gz", gzip.compress(
        (HEADER + "\n" + GOOD[0]).encode())[:25])), ["{file}", "cannot read"]),
    # ------------------------------------------------------------------ names and settings
    Case("unknown-data-set-name", lambda d: evaluate("popquorn-offensivness", cmap=None),
         ["popquorn-offensivness", "did you mean 'popquorn-offensiveness'"], process=True),
    Case("bad-scale-setting", lambda d: validate(csv(d, GOOD), "--scale", "five"), ["--scale", "'five'"]),
    Case("unknown-label-kind", lambda d: validate(csv(d, GOOD), "--kind", "stars"), ["'stars'"]),
    Case("bad-seeds-setting", lambda d: evaluate(csv(d, GOOD), "--seeds", "many"), ["--seeds", "'many'"]),
    Case("unknown-aggregator", lambda d: evaluate(csv(d, GOOD), "--aggregators", "mean,average"),
         ["aggregator", "'average'"]),
    Case("unknown-method", lambda d: ["evaluate", "-d", "x.csv", "--methods", "globl"], ["'globl'"]),
    Case("test-size-out-of-range", lambda d: evaluate(csv(d, GOOD), "--test-size", "1.5"), ["test_size", "1.5"]),
    Case("unknown-option", lambda d: validate(csv(d, GOOD), "--bogus"), ["--bogus", "crowdllm data validate --help"],
         process=True),
    Case("option-value-of-the-wrong-type", lambda d: validate(csv(d, GOOD), "--k", "two"), ["--k"]),
    Case("missing-argument", lambda d: ["data", "validate"], ["'path'"]),
    Case("reference-unknown-strategy", lambda d: reference(d, "--strategy", "vote"), ["--strategy", "'vote'"]),
    Case("reference-bad-out-suffix", lambda d: [*reference(d), "--out", str(d / "refs.txt")],
         ["--out", "refs.txt"]),
    Case("reference-missing-template-file", lambda d: reference(d, "--template", str(d / "absent.toml")),
         ["absent.toml", "does not exist"]),
    Case("reference-broken-template-file", lambda d: reference(d, "--template", str(_bad_template(d))),
         ["mine.toml", "TOML"]),
    Case("reference-zero-concurrency", lambda d: reference(d, "--concurrency", "0"), ["--concurrency"]),
    Case("reference-url-without-scheme", lambda d: reference(d, url="localhost:8000"), ["--base-url"]),
    Case("reference-model-path-with-base-url", lambda d: reference(d, "--model-path", "x.gguf"), ["--model-path"]),
    Case("reference-table-without-y_ref", lambda d: evaluate(csv(d, GOOD), "--methods", "crowdllm", "--reference",
                                                             str(_write(d / "refs.csv", b"task,score\nt1,3\n"))),
         ["refs.csv", "'y_ref'"]),
    Case("reference-table-missing", lambda d: evaluate(csv(d, GOOD), "--methods", "crowdllm", "--reference",
                                                       str(d / "refs.csv")), ["refs.csv", "does not exist"]),
    Case("reference-table-unclosed-quote", lambda d: evaluate(csv(d, GOOD), "--methods", "crowdllm", "--reference",
                                                              str(_write(d / "refs.csv", b'task,y_ref\nt1,"3\n'))),
         ["refs.csv", "cannot read"]),
    Case("option-that-must-be-a-number", lambda d: evaluate(csv(d, GOOD), "--methods", "llm-multi-persona", "--option",
                                                            "persona_budget=lots", "--base-url", "http://127.0.0.1:9/v1",
                                                            "--model", "m"), ["persona_budget", "'lots'"]),
    Case("option-that-must-be-a-mapping", lambda d: evaluate(csv(d, GOOD), "--methods", "crowdllm", "--option",
                                                             "crowd=big", "--base-url", "http://127.0.0.1:9/v1",
                                                             "--model", "m"), ["crowd", "'big'"]),
    Case("pipeline-setting-of-the-wrong-type", lambda d: ["pipeline", "run", "map-reduce", "--text", "x", "--set",
                                                          "workers=many", "--base-url", "http://127.0.0.1:9/v1",
                                                          "--model", "m"], ["workers", "'many'"]),
    Case("unknown-pipeline", lambda d: ["pipeline", "run", "map-reduse", "--text", "x"], ["'map-reduse'"]),
    Case("pipeline-trace-that-is-not-a-trace", lambda d: ["pipeline", "show", str(csv(d, GOOD))],
         ["{file}", "row 1"]),
    Case("report-on-a-missing-folder", lambda d: ["report", str(d / "results")], ["results", "does not exist"]),
    # fails mid-run, after the progress bar started: still only the one line
    Case("analyze-with-an-unreachable-server", lambda d: ["analyze", "theory", "--dataset", str(csv(d, GOOD)),
                                                          "--map", MAP, "--methods", "crowdllm", "--seeds", "1",
                                                          "--base-url", f"http://127.0.0.1:{closed_port()}/v1",
                                                          "--model", "m", "--out", str(d / "out")],
         ["--base-url"], process=True),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _data_file(d: Path) -> str | None:
    found = sorted(p for p in d.iterdir() if p.name.startswith("crowd."))
    return str(found[0]) if found else str(d / "crowd.csv")


def check(result: Result, case: Case, d: Path) -> None:
    assert "Traceback" not in result.text, result.text
    assert result.rc == 2, f"exit code {result.rc}\n{result.text}"
    line = result.error_line()
    for part in case.expect:
        want = part.replace("{file}", _data_file(d) or "")
        assert want in line, f"{want!r} not in {line!r}"


@pytest.mark.parametrize("case", [c for c in CASES if not c.process], ids=lambda c: c.id)
def test_bad_input_in_process(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = case.make(tmp_path)
    check(run_cli(capsys, *args), case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.process], ids=lambda c: c.id)
def test_bad_input_as_a_real_process(case: Case, tmp_path: Path) -> None:
    args = case.make(tmp_path)
    check(run_process(*args, env=child_env(**case.env), cwd=tmp_path), case, tmp_path)


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------- inputs that must load fine
def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "crowd.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "\n" + "\n".join(GOOD) + "\n").encode("utf-8"))
    res = run_cli(capsys, *validate(path))
    assert res.rc == 0, res.err
    assert res.out.splitlines()[0] == "OK: 4 responses, 2 tasks, 2 workers"


def test_no_arguments_prints_help_not_a_traceback(tmp_path: Path) -> None:
    res = run_process(cwd=tmp_path)
    assert "Traceback" not in res.text and "Commands" in res.text and res.rc == 2


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from crowdllm import __version__

    res = run_cli(capsys, "--version")
    assert res.rc == 0 and res.out.strip() == __version__


# ---------------------------------------------------------------------- LLM servers
def test_wrong_api_key_names_the_variable_never_the_key(tmp_path: Path) -> None:
    from fakeserver import FakeOpenAIServer

    with FakeOpenAIServer(api_key="sk-right-key") as server:
        args = reference(tmp_path, "--api-key-env", "MY_CROWD_KEY", url=server.url)
        res = run_process(*args, env=child_env(MY_CROWD_KEY="sk-wrong-key-5150"), cwd=tmp_path)
    assert "Traceback" not in res.text and res.rc == 2
    line = res.error_line()
    assert "401" in line and "MY_CROWD_KEY" in line and server.url in line
    assert "sk-wrong-key-5150" not in res.text
    assert not (tmp_path / "refs.csv").exists()


def test_unreachable_server_names_the_url_and_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          fast_backoff: None) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    res = run_cli(capsys, *reference(tmp_path, url=url))
    assert "Traceback" not in res.text and res.rc == 2
    line = res.error_line()
    assert url in line and "--base-url" in line
    assert not (tmp_path / "refs.csv").exists()


def test_a_damaged_answer_cache_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import sqlite3

    cache = Path(os.environ["CROWDLLM_CACHE"]) / "llm-cache.sqlite"
    con = sqlite3.connect(cache)
    con.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, kind TEXT, backend TEXT, model TEXT, value TEXT, "
                "created REAL)")
    con.executemany("INSERT INTO answers VALUES (?,?,?,?,?,?)",
                    [(f"k{i}", "generate", "fake", "m", json.dumps({"text": "x" * 300}), 0.0) for i in range(400)])
    con.commit()
    con.close()
    data = bytearray(cache.read_bytes())
    for start in range(4096, len(data), 4096):  # garble every page but the first: the file still opens
        data[start:start + 400] = b"\xff" * 400
    cache.write_bytes(bytes(data))
    res = run_cli(capsys, "cache", "info")
    assert "Traceback" not in res.text and res.rc == 2
    line = res.error_line()
    assert str(cache) in line and "CROWDLLM_CACHE" in line
    # a run that reads the cache stops the same way, before asking the server anything
    from fakeserver import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        res = run_cli(capsys, *reference(tmp_path, url=server.url))
    assert "Traceback" not in res.text and res.rc == 2
    assert str(cache) in res.error_line() and server.requests == 0
