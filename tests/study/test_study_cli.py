"""`crowdllm crowd fit -> info -> sample -> ask` end to end on the fake OpenAI-compatible server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from study_helpers import fit_args, write_study_files

from crowdllm.cli import main
from fakeserver import FakeOpenAIServer

QUESTION = "How offensive is this comment?"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer() as s:
        yield s


def backend(server: FakeOpenAIServer) -> list[str]:
    return ["--base-url", server.url, "--model", "fake-model"]


@pytest.fixture(scope="module")
def _fitted_once(tmp_path_factory, server):
    """One fit for the module (three fits with validation: the slow part), with its own answer cache."""
    files = write_study_files(tmp_path_factory.mktemp("study"))
    out = tmp_path_factory.mktemp("fitted") / "crowd"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CROWDLLM_CACHE", str(tmp_path_factory.mktemp("crowdllm-cache")))
        assert main(fit_args(files, out, "--question", QUESTION, "--levels", "1=not at all,5=very",
                             *backend(server))) == 0
    return out


@pytest.fixture
def fitted(_fitted_once, tmp_path):
    """A fresh copy of the fitted crowd (some tests damage it)."""
    out = tmp_path / "crowd"
    shutil.copytree(_fitted_once, out)
    return out


def test_fit_writes_crowd_card_and_question_into_the_prompt(study_files, tmp_path, server, capsys):
    out = tmp_path / "crowd"
    before = server.answered
    assert main(fit_args(study_files, out, "--question", QUESTION, "--levels", "1=not at all,5=very",
                         *backend(server))) == 0
    printed = capsys.readouterr().out
    # one reference call per task, and each prompt carries the question and the level words
    assert server.answered - before == 40
    prompts = [json.loads(k)["what"] for k in server.prompts]
    asked = [p for p in prompts if QUESTION in json.dumps(p)]
    assert len(asked) >= 40 and all("5 = very" in json.dumps(p) for p in asked)
    for name in ("crowd.json", "belief.safetensors", "CARD.md", "card.json", "references.csv"):
        assert (out / name).is_file(), name
    card = json.loads((out / "card.json").read_text())
    assert card["question"]["question"] == QUESTION
    assert card["data"] == {**card["data"], "responses": card["data"]["responses"], "tasks": 40, "workers": 30}
    assert set(card["profiles"]) == {"gender", "age"}
    v = card["validation"]
    assert set(v["table"]) == {"crowd", "global", "noise-ceiling"}
    # the ceiling is a floor: no model beats it on its own held-out data
    assert v["table"]["noise-ceiling"]["MAE (mean)"] <= v["table"]["global"]["MAE (mean)"]
    # also held-out tasks with all their people, where the interval for a real crowd's mean is sized
    assert v["by_tasks"]["split"] == "task" and v["by_tasks"]["n_tasks"] == 8
    iv = v["interval"]
    assert iv["tau"] > 0 and 0 <= iv["coverage"] <= 1 and iv["n_check"] == 4 and iv["people_per_task"] > 1
    # 8 held-out tasks cannot size a 90 % split-conformal interval (it needs 9): it spans the scale, and says so
    assert iv["calibration_tasks"] == 8 and iv["q"] == float("inf") and iv["coverage"] == 1.0
    assert "too few held-out tasks (8)" in printed
    assert "## Validation" in printed and QUESTION in printed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_info_prints_the_card(fitted, capsys):
    assert main(["crowd", "info", str(fitted)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Digital crowd") and QUESTION in out and "noise-ceiling" in out


def test_sample_writes_one_row_per_task_and_person_and_reruns_ask_nothing(fitted, study_files, tmp_path, server,
                                                                          capsys):
    answers, summary = tmp_path / "answers.parquet", tmp_path / "summary.csv"
    args = ["crowd", "sample", str(fitted), "--tasks", str(study_files["new"]), "--task-map", "task=id,text=comment",
            "--people", "40", "--out", str(answers), "--summary", str(summary), "--no-progress", *backend(server)]
    before = server.answered
    assert main(args) == 0
    assert server.answered - before == 3  # the three new tasks' references
    frame = pd.read_parquet(answers)
    assert len(frame) == 3 * 40 and set(frame["task"]) == {"n1", "n2", "n3"}
    assert {"gender", "age"} <= set(frame.columns)
    assert set(frame["label"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    table = pd.read_csv(summary)
    assert list(table["task"]) == ["n1", "n2", "n3"] and (table["n"] == 40).all()
    shares = table[[f"share_{v}" for v in range(1, 6)]].sum(axis=1)
    assert shares.round(9).eq(1.0).all()
    assert (table["mean_low"] <= table["mean"]).all() and (table["mean"] <= table["mean_high"]).all()
    again = server.answered
    assert main(args) == 0
    assert server.answered == again  # everything came from the cache
    assert capsys.readouterr().err.count("error") == 0


def test_participation_keeps_a_share_of_pairs(fitted, study_files, tmp_path, server):
    out = tmp_path / "a.csv"
    assert main(["crowd", "sample", str(fitted), "--tasks", str(study_files["new"]), "--task-map",
                 "task=id,text=comment", "--people", "200", "--participation", "0.25", "--out", str(out),
                 "--no-progress", *backend(server)]) == 0
    n = len(pd.read_csv(out))
    # 600 pairs kept with p=0.25 each: 150 expected, sd ~10.6; 5 sd either side
    assert 97 <= n <= 203


def test_real_answers_move_the_crowd_toward_them(fitted, study_files, tmp_path, server):
    real = tmp_path / "many_real.csv"
    pd.DataFrame({"task": ["n1"] * 20, "label": [5] * 20}).to_csv(real, index=False)
    means = {}
    for name, extra in (("plain", []), ("mixed", ["--real", str(real)])):
        summary = tmp_path / f"{name}.csv"
        assert main(["crowd", "sample", str(fitted), "--tasks", str(study_files["new"]), "--task-map",
                     "task=id,text=comment", "--people", "300", "--out", str(tmp_path / f"{name}.parquet"),
                     "--summary", str(summary), "--seed", "3", "--no-progress", *backend(server), *extra]) == 0
        means[name] = pd.read_csv(summary).set_index("task")["mean"]
    # 20 answers of 5 with kappa ~1 move the decision ~95% of the way to 5; the blended mean follows most
    # of it (measured: +1.2 to +1.8 over seeds); the other tasks are unchanged up to sampling noise
    assert means["mixed"]["n1"] > means["plain"]["n1"] + 0.8
    assert abs(means["mixed"]["n3"] - means["plain"]["n3"]) < 0.35


def test_ask_prints_distribution_mean_and_split(fitted, server, capsys):
    assert main(["crowd", "ask", str(fitted), "a bad bad bad comment", "--people", "200", "--by", "gender",
                 *backend(server)]) == 0
    out = capsys.readouterr().out
    bars = [line for line in out.splitlines() if line.rstrip().endswith("%")]  # a 1% bar has no '#'
    assert len(bars) == 5 and "5 very" in out and "1 not at all" in out
    assert sum(float(b.rsplit(None, 1)[-1].rstrip("%")) for b in bars) == pytest.approx(100, abs=0.5)
    assert "mean:" in out and "by gender:" in out and "man" in out and "woman" in out


def test_fitting_your_own_data_without_a_question_warns_once(study_files, tmp_path, server, capsys):
    assert main(fit_args(study_files, tmp_path / "c", "--no-validation", *backend(server))) == 0
    got = capsys.readouterr()
    assert got.err.count("warning: no --question") == 1
    # the card says why there are no validation numbers: the flag, not the data's size
    assert "- not measured (fitted with --no-validation)" in got.out and "too few people" not in got.out


def test_data_with_ids_only_says_the_crowd_needs_texts(study_files, tmp_path, server, capsys):
    args = ["crowd", "fit", str(study_files["responses"]), "--map", "task=item,worker=uid,label=score",
            "--out", str(tmp_path / "c"), "--no-progress", *backend(server)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--tasks" in err and "\n" not in err
    assert not (tmp_path / "c").exists()


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _sample_args(crowd: Path, files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["crowd", "sample", str(crowd), "--tasks", str(files["new"]), "--task-map", "task=id,text=comment",
            "--out", str(out), "--no-progress", *extra]


@pytest.mark.parametrize("case", ["real-ids", "unseen-category", "targets-sum", "empty-tasks", "real-label",
                                  "twice-task", "blank-text", "no-text-column"])
def test_bad_sample_input_is_one_line_exit_2_nothing_written(case, fitted, study_files, tmp_path, server, capsys):
    out = tmp_path / "answers.parquet"
    extra: list[str] = [*backend(server)]
    bad = tmp_path / "bad"
    if case == "real-ids":
        pd.DataFrame({"task": ["n1", "zz9"], "label": [5, 4]}).to_csv(bad.with_suffix(".csv"), index=False)
        extra += ["--real", str(bad.with_suffix(".csv"))]
        expect = "'zz9' is not among the tasks sampled"
    elif case == "real-label":
        pd.DataFrame({"task": ["n1"], "label": [9]}).to_csv(bad.with_suffix(".csv"), index=False)
        extra += ["--real", str(bad.with_suffix(".csv"))]
        expect = "not a number on the crowd's scale"
    elif case == "unseen-category":
        pd.DataFrame({"worker": ["a", "b"], "gender": ["man", "robot"], "age": ["18-24", "25-34"]}).to_csv(
            bad.with_suffix(".csv"), index=False)
        extra += ["--profiles", str(bad.with_suffix(".csv"))]
        expect = "'robot' is a category the crowd never saw"
    elif case == "targets-sum":
        bad.with_suffix(".json").write_text(json.dumps({"gender": {"man": 0.5, "woman": 0.7}}))
        extra += ["--targets", str(bad.with_suffix(".json"))]
        expect = "sum to 1.2"
    else:  # a bad tasks file: the file, its row and column named
        body, expect = {"empty-tasks": ("id,comment\n", "no data rows"),
                        "twice-task": ("id,comment\nn1,fine\nn2,also fine\nn1,again\n",
                                       "row 4, column 'id': task id 'n1' appears twice in --tasks"),
                        "blank-text": ("id,comment\nn1,fine\nn2,  \n", "row 3, column 'comment': task text is empty"),
                        "no-text-column": ("id,body\nn1,fine\n", "no column 'comment' (the task text; map it with "
                                           "--task-map text=COLUMN)")}[case]
        bad.with_suffix(".csv").write_text(body)
        args = ["crowd", "sample", str(fitted), "--tasks", str(bad.with_suffix(".csv")), "--task-map",
                "task=id,text=comment", "--out", str(out), "--no-progress", *extra]
        assert main(args) == 2
        line = _one_error(capsys)
        assert expect in line and str(bad.with_suffix(".csv")) in line, line
        assert not out.exists()
        return
    assert main(_sample_args(fitted, study_files, out, *extra)) == 2
    line = _one_error(capsys)
    assert expect in line, line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".answers")]


@pytest.mark.parametrize("damage", ["newer", "json", "weights", "card-missing", "no-folder"])
def test_damaged_or_newer_crowd_folder_is_one_line(damage, fitted, study_files, tmp_path, server, capsys):
    state = json.loads((fitted / "crowd.json").read_text())
    if damage == "newer":
        state["format_version"] = 99
        (fitted / "crowd.json").write_text(json.dumps(state))
        expect = "newer than this crowdllm"
    elif damage == "json":
        (fitted / "crowd.json").write_text("{ half a file")
        expect = "not valid JSON"
    elif damage == "weights":
        with open(fitted / "belief.safetensors", "ab") as fh:
            fh.write(b"x")
        expect = "does not belong"
    elif damage == "card-missing":
        (fitted / "card.json").unlink()
        expect = "no model card"
    else:
        fitted = tmp_path / "nowhere"
        expect = "no such crowd folder"
    for args in (["crowd", "info", str(fitted)],
                 _sample_args(fitted, study_files, tmp_path / "a.csv", "--people", "5", *backend(server)),
                 ["crowd", "ask", str(fitted), "hello", *backend(server)]):
        assert main(args) == 2
        assert expect in _one_error(capsys)
    assert not (tmp_path / "a.csv").exists()


def test_fit_with_tasks_that_do_not_match(study_files, tmp_path, server, capsys):
    short = tmp_path / "short_tasks.csv"
    pd.read_csv(study_files["tasks"]).iloc[:30].to_csv(short, index=False)
    files = {**study_files, "tasks": short}
    out = tmp_path / "c"
    assert main(fit_args(files, out, "--strict", *backend(server))) == 2
    line = _one_error(capsys)
    assert "is not in --tasks" in line and "--strict" in line
    assert not out.exists()
    # without --strict: one warning naming the missing ids and the count left out, then the fit
    assert main(fit_args(files, out, "--no-validation", "--question", QUESTION, *backend(server))) == 0
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if "missing from --tasks" in line]
    assert len(warned) == 1 and "'t30'" in warned[0] and "left out" in warned[0]
    assert json.loads((out / "card.json").read_text())["data"]["tasks"] == 30


def test_refitting_over_another_folder_is_refused(study_files, tmp_path, server, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert main(fit_args(study_files, other, *backend(server))) == 2
    assert "not a crowd folder" in _one_error(capsys)
    assert (other / "notes.txt").read_text() == "keep me"


def test_targets_rake_the_people_and_profiles_are_used_as_given(fitted, study_files, tmp_path, server):
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"gender": {"man": 0.8, "woman": 0.2}}))
    out = tmp_path / "raked.csv"
    assert main(_sample_args(fitted, study_files, out, "--targets", str(targets), "--people", "2000",
                             *backend(server))) == 0
    people = pd.read_csv(out).drop_duplicates("worker")
    # 2000 draws at p = 0.8: sd 0.009, so 0.75..0.85 is more than 5 sd either side
    assert len(people) == 2000 and 0.75 <= (people["gender"] == "man").mean() <= 0.85
    profiles = tmp_path / "people.csv"
    pd.DataFrame({"worker": ["ann", "bob"], "gender": ["woman", "man"], "age": ["18-24", "35-44"]}).to_csv(
        profiles, index=False)
    out2 = tmp_path / "given.csv"
    assert main(_sample_args(fitted, study_files, out2, "--profiles", str(profiles), *backend(server))) == 0
    frame = pd.read_csv(out2)
    assert sorted(frame["worker"].unique()) == ["ann", "bob"] and len(frame) == 6
    assert set(zip(frame["worker"], frame["gender"], strict=True)) == {("ann", "woman"), ("bob", "man")}


def test_a_binary_crowd_with_number_codes_fits_samples_and_mixes(study_files, tmp_path, server, capsys):
    # the same study with answers -1 / 1 (number codes of two categories, inferred as binary)
    frame = pd.read_csv(study_files["responses"])
    frame["score"] = frame["score"].map(lambda v: 1 if v >= 3 else -1)
    frame.to_csv(study_files["responses"], index=False)
    out = tmp_path / "binary"
    args = fit_args(study_files, out, "--question", "Is this comment toxic?", "--levels", "-1=not toxic,1=toxic",
                    *backend(server))
    args = [a for a in args if a not in ("--kind", "ordinal", "--scale", "1-5")]
    assert main(args) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["label"]["categories"] == ["-1", "1"] and "error rate (mv)" in card["validation"]["metrics"]
    real = tmp_path / "real.csv"
    pd.DataFrame({"task": ["n1"] * 8, "label": [1.0] * 8}).to_csv(real, index=False)  # 1.0 is the category 1
    shares = {}
    for name, extra in (("plain", []), ("mixed", ["--real", str(real)])):
        summary = tmp_path / f"{name}.csv"
        assert main(_sample_args(out, study_files, tmp_path / f"{name}.parquet", "--people", "300", "--summary",
                                 str(summary), *extra, *backend(server))) == 0
        shares[name] = pd.read_csv(summary).set_index("task")["share_1"]
    # 8 answers of 1 with kappa ~1 move the share of 1 eight ninths of the way to 1
    assert shares["mixed"]["n1"] > 0.9 > shares["plain"]["n1"]
    capsys.readouterr()
    assert main(["crowd", "ask", str(out), "a bad bad comment", "--people", "100", *backend(server)]) == 0
    printed = capsys.readouterr().out
    assert "-1 not toxic" in printed and "1 toxic" in printed


def test_task_metadata_the_crowd_reads_must_come_with_new_tasks(study_files, tmp_path, server, capsys):
    tasks = pd.read_csv(study_files["tasks"]).assign(source=["web", "app"] * 20)
    tasks.to_csv(study_files["tasks"], index=False)
    out = tmp_path / "meta"
    assert main(fit_args(study_files, out, "--meta", "source", "--no-validation", "--question", "Q?",
                         *backend(server))) == 0
    assert main(_sample_args(out, study_files, tmp_path / "a.csv", "--people", "5", *backend(server))) == 2
    assert "reads the task metadata source" in _one_error(capsys)
    assert main(fit_args(study_files, tmp_path / "m2", "--meta", "sauce", *backend(server))) == 2
    assert "--meta: 'sauce' is not a task metadata column" in _one_error(capsys)


def test_crowd_params_reach_the_crowd_and_bad_ones_are_one_line(study_files, tmp_path, server, capsys):
    out = tmp_path / "one"
    assert main(fit_args(study_files, out, "--question", QUESTION, "--no-validation", "--crowd-param", "ensemble=1",
                         "--crowd-param", "J=10", *backend(server))) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["crowd"]["ensemble"] == 1 and card["crowd"]["J"] == 10
    saved = json.loads((out / "crowd.json").read_text())
    assert saved["belief_members"] == 1 and saved["hyper"]["J"] == 10 and not (out / "belief-1.json").exists()
    capsys.readouterr()
    for bad, says in (("nope=1", "--crowd-param: DigitalCrowd has no parameter 'nope'"),
                      ("epochs=3", "--crowd-param epochs=...: set it with --epochs")):
        assert main(fit_args(study_files, tmp_path / bad, "--crowd-param", bad, *backend(server))) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: {says}" + (" (see docs/crowd.md for the crowd's parameters)" if "nope" in bad else "")]
        assert not (tmp_path / bad).exists()


def _set_interval(crowd: Path, **values) -> None:
    """Give the fitted crowd's card an interval (the test study's 8 held-out tasks cannot size a finite one)."""
    card = json.loads((crowd / "card.json").read_text())
    card["validation"]["interval"].update(values)
    for key in [k for k, v in values.items() if v is None]:
        del card["validation"]["interval"][key]
    (crowd / "card.json").write_text(json.dumps(card))


def test_real_crowd_sizes_the_summary_interval_and_ask_says_for_whom(fitted, study_files, tmp_path, server, capsys):
    _set_interval(fitted, tau=0.2, q=1.5, people_per_task=5.0)
    tables = {}
    for n in ("2", "50", None):
        summary = tmp_path / f"s{n}.csv"
        extra = ["--real-crowd", n] if n else []
        assert main(_sample_args(fitted, study_files, tmp_path / "a.csv", "--people", "40", "--summary",
                                 str(summary), *extra, *backend(server))) == 0
        tables[n] = pd.read_csv(summary).set_index("task")
    assert list(tables["2"]["interval_real_crowd"]) == [2, 2, 2] and (tables[None]["interval_real_crowd"] == 5).all()
    assert (tables["50"]["half_width"] < tables[None]["half_width"]).all()
    assert (tables[None]["half_width"] < tables["2"]["half_width"]).all()
    # the formula on each task's 40 virtual answers (the same seed: the same answers)
    var = pd.read_csv(tmp_path / "a.csv").groupby("task")["label"].var()
    expect = 1.5 * (0.2 ** 2 + var / 2) ** 0.5
    assert list(tables["2"]["half_width"]) == pytest.approx(list(expect.reindex(tables["2"].index)))
    capsys.readouterr()
    assert main(["crowd", "ask", str(fitted), "a bad bad comment", "--real-crowd", "3", *backend(server)]) == 0
    assert "mean of a real crowd of 3 people: [" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["no-summary", "zero", "old-card"])
def test_bad_real_crowd_is_one_line(case, fitted, study_files, tmp_path, server, capsys):
    out = tmp_path / "a.csv"
    extra = ["--real-crowd", "0" if case == "zero" else "4"]
    if case != "no-summary":
        extra += ["--summary", str(tmp_path / "s.csv")]
    if case == "old-card":
        _set_interval(fitted, halfwidth=1.2, tau=None, q=None)
    assert main(_sample_args(fitted, study_files, out, *extra, *backend(server))) == 2
    line = _one_error(capsys)
    assert {"no-summary": "give --summary FILE", "zero": "--real-crowd must be at least 1",
            "old-card": "holds one half-width for real crowds of about"}[case] in line, line
    assert not out.exists()
