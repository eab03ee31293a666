"""`crowd fit --template A --template B`: several wordings of the question, each task asked once per wording
(averaged), recorded in the card and used again for new tasks in `crowd sample` / `crowd ask`; old cards
with one `template_file` behave as before. On the fake OpenAI-compatible server, with a fresh answer cache
per test so every call reaches the server and can be counted."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from study_helpers import fit_args

from crowdllm.cli import main
from crowdllm.llm.prompts import get_template
from fakeserver import FakeOpenAIServer, FakeRequest, default_answer

PACKAGED = "popquorn-offensiveness-rudeness"
MINE_SYSTEM = "You judge how hurtful comments are to the people they name."


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CROWDLLM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def mine(tmp_path) -> Path:
    path = tmp_path / "hurtful.toml"
    path.write_text(f'[rating]\nsystem = "{MINE_SYSTEM}"\ninstructions = "How hurtful is it, {{low}} to {{high}}?"\n'
                    'answer_prefix = "Rating: "\n', encoding="utf-8")
    return path


class Recorder:
    """A fake server that remembers (system prompt, task id) of every answered request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.server = FakeOpenAIServer(answer=self._answer)

    def _answer(self, req: FakeRequest) -> str:
        task = re.search(r"(comment \d+:|a new one|another bad bad|a third|a fresh text)", req.last_user)
        system = req.messages[0]["content"].split("\n\n")[0]  # the template's system line (instructions follow)
        self.seen.append((system, task.group(1) if task else "?"))
        return default_answer(req)

    def __enter__(self) -> Recorder:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def backend(self) -> list[str]:
        return ["--base-url", self.server.url, "--model", "fake-model"]

    def by_system(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for system, task in self.seen:
            out.setdefault(system, Counter())[task] += 1
        return out


def _packaged_system() -> str:
    return get_template("rating", PACKAGED).system


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _sample(crowd: Path, files: dict[str, Path], out: Path, rec: Recorder, *extra: str) -> list[str]:
    return ["crowd", "sample", str(crowd), "--tasks", str(files["new"]), "--task-map", "task=id,text=comment",
            "--people", "30", "--out", str(out), "--no-progress", *extra, *rec.backend()]


def test_fit_asks_every_task_once_per_wording_and_new_tasks_get_the_same(study_files, mine, tmp_path, capsys):
    out = tmp_path / "crowd"
    with Recorder() as rec:
        assert main(fit_args(study_files, out, "--template", PACKAGED, "--template", str(mine), "--no-validation",
                             *rec.backend())) == 0
        fitted = rec.by_system()
        assert set(fitted) == {_packaged_system(), MINE_SYSTEM}
        tasks = {f"comment {t}:" for t in range(40)}
        # every one of the 40 tasks once under each wording, nothing else
        assert fitted[_packaged_system()] == Counter(dict.fromkeys(tasks, 1))
        assert fitted[MINE_SYSTEM] == Counter(dict.fromkeys(tasks, 1))
        assert rec.server.answered == 80
        card = json.loads((out / "card.json").read_text())
        assert card["question"]["templates"] == [PACKAGED, str(mine)]
        assert card["reference"]["template"] == [PACKAGED, str(mine)] and card["reference"]["strategy"] == "logprob"
        printed = capsys.readouterr().out
        assert "2 wordings of the question" in printed and "(2 LLM calls per task, new tasks too)" in printed
        assert f"1. {PACKAGED}" in printed and f"2. {mine}" in printed

        # new tasks: each asked twice, once per wording
        rec.seen.clear()
        assert main(_sample(out, study_files, tmp_path / "a.csv", rec)) == 0
        new = {"a new one": 1, "another bad bad": 1, "a third": 1}
        assert rec.by_system() == {_packaged_system(): Counter(new), MINE_SYSTEM: Counter(new)}
        rec.seen.clear()
        assert main(["crowd", "ask", str(out), "a fresh text", "--people", "50", *rec.backend()]) == 0
        assert rec.by_system() == {_packaged_system(): Counter({"a fresh text": 1}),
                                   MINE_SYSTEM: Counter({"a fresh text": 1})}
    capsys.readouterr()
    assert main(["crowd", "info", str(out)]) == 0
    assert "2 wordings of the question" in capsys.readouterr().out


def test_reference_file_is_reused_and_its_missing_tasks_are_asked_with_the_wordings(study_files, mine, tmp_path):
    refs = tmp_path / "refs.csv"
    with Recorder() as rec:
        first = tmp_path / "first"
        assert main(fit_args(study_files, first, "--template", PACKAGED, "--template", str(mine), "--no-validation",
                             *rec.backend())) == 0
        pd.read_csv(first / "references.csv").iloc[:30].to_csv(refs, index=False)  # t0..t29
        rec.seen.clear()
        cache = tmp_path / "cache2"  # a new cache: the 10 missing tasks must reach the server again
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CROWDLLM_CACHE", str(cache))
            assert main(fit_args(study_files, tmp_path / "second", "--reference", str(refs), "--template", PACKAGED,
                                 "--template", str(mine), "--no-validation", *rec.backend())) == 0
        missing = Counter({f"comment {t}:": 1 for t in range(30, 40)})
        assert rec.by_system() == {_packaged_system(): missing, MINE_SYSTEM: missing}
    card = json.loads((tmp_path / "second" / "card.json").read_text())
    assert card["question"]["templates"] == [PACKAGED, str(mine)] and card["reference"]["tasks"] == 40


def test_a_two_wording_reference_file_needs_as_many_templates(study_files, mine, tmp_path, capsys):
    """References averaged over two wordings, reused by a fit that would ask new tasks with one: refused
    (the crowd would read new tasks differently from its training tasks), before any call."""
    with Recorder() as rec:
        first = tmp_path / "first"
        assert main(fit_args(study_files, first, "--template", PACKAGED, "--template", str(mine), "--no-validation",
                             *rec.backend())) == 0
        capsys.readouterr()
        rec.seen.clear()
        refs = tmp_path / "refs-2w.csv"  # as `crowdllm reference --template A --template B` writes it
        saved = pd.read_csv(first / "references.csv")
        saved.assign(y_ref_1=saved["y_ref"] - 0.5, y_ref_2=saved["y_ref"] + 0.5, n_calls=2).to_csv(refs, index=False)
        assert main(fit_args(study_files, tmp_path / "second", "--reference", str(refs), "--template", PACKAGED,
                             "--no-validation", *rec.backend())) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --reference {refs}: its references average 2 wordings") and "\n" not in err
        assert rec.seen == []


def test_a_card_with_one_template_file_from_before_several_wordings_behaves_as_before(study_files, mine, tmp_path,
                                                                                     capsys):
    new_card = tmp_path / "new"
    with Recorder() as rec:
        assert main(fit_args(study_files, new_card, "--template", str(mine), "--no-validation", *rec.backend())) == 0
        assert rec.by_system() == {MINE_SYSTEM: Counter({f"comment {t}:": 1 for t in range(40)})}
        card = json.loads((new_card / "card.json").read_text())
        assert card["question"] == {"question": "", "levels": {}, "templates": [str(mine)]}
        assert card["reference"]["template"] == str(mine)  # one wording: the name as before, not a list
        # the same crowd with the card an older crowdllm wrote (one template_file, no templates)
        old_card = tmp_path / "old"
        old_card.mkdir()
        for f in new_card.iterdir():
            (old_card / f.name).write_bytes(f.read_bytes())
        card["question"] = {"question": "", "levels": {}, "template_file": str(mine)}
        (old_card / "card.json").write_text(json.dumps(card))
        summaries = {}
        for name, crowd in (("old", old_card), ("new", new_card)):
            rec.seen.clear()
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("CROWDLLM_CACHE", str(tmp_path / f"cache-{name}"))  # both ask the server
                assert main(_sample(crowd, study_files, tmp_path / f"{name}.csv", rec, "--summary",
                                    str(tmp_path / f"{name}-summary.csv"))) == 0
            # one call per new task, with the file's prompt
            assert rec.by_system() == {MINE_SYSTEM: Counter({"a new one": 1, "another bad bad": 1, "a third": 1})}
            summaries[name] = pd.read_csv(tmp_path / f"{name}-summary.csv")
    pd.testing.assert_frame_equal(summaries["old"], summaries["new"])
    capsys.readouterr()
    assert main(["crowd", "info", str(old_card)]) == 0
    assert f"- template file: {mine}" in capsys.readouterr().out
    assert main(["crowd", "info", str(new_card)]) == 0
    assert f"- prompt template: {mine}" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["unknown-name", "missing-file", "bad-file", "twice", "with-question",
                                  "zero-shot"])
def test_bad_templates_are_one_line_before_the_data_is_read(case, mine, tmp_path, capsys):
    # the responses file does not exist: an error about it would mean the data was read first
    extra, expect = {
        "unknown-name": (["--template", "no-such-wording"], "--template no-such-wording: no such file or packaged "
                         "template (packaged: "),
        "missing-file": (["--template", PACKAGED, "--template", str(tmp_path / "gone.toml")],
                         f"--template {tmp_path / 'gone.toml'}: no such file"),
        "bad-file": (["--template", str(tmp_path / "bad.toml")], f"--template: {tmp_path / 'bad.toml'}: not a valid "
                     "TOML template file"),
        "twice": (["--template", PACKAGED, "--template", PACKAGED], f"--template {PACKAGED}: given twice"),
        "with-question": (["--template", PACKAGED, "--question", "Q?"], "--template replaces the packaged prompt"),
        "zero-shot": (["--template", PACKAGED, "--template", str(mine), "--strategy", "zero-shot"],
                      "--template: several wordings are averaged for log-prob references only, not with "
                      "--strategy zero-shot"),
    }[case]
    (tmp_path / "bad.toml").write_text("[rating\nsystem = ")
    out = tmp_path / "crowd"
    args = ["crowd", "fit", str(tmp_path / "nowhere.csv"), "--out", str(out), "--no-progress", *extra,
            "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    assert main(args) == 2
    line = _one_error(capsys)
    assert line.startswith(f"error: {expect}"), line
    assert not out.exists()


def test_several_wordings_the_backend_cannot_average_are_one_line_at_sample_time(study_files, mine, tmp_path,
                                                                                 capsys):
    out = tmp_path / "crowd"
    with Recorder() as rec:
        assert main(fit_args(study_files, out, "--template", PACKAGED, "--template", str(mine), "--no-validation",
                             *rec.backend())) == 0
        card = json.loads((out / "card.json").read_text())
        card["reference"]["strategy"] = "zero-shot"  # a crowd whose references were sampled, not log-probs
        (out / "card.json").write_text(json.dumps(card))
        capsys.readouterr()
        rec.seen.clear()
        assert main(_sample(out, study_files, tmp_path / "a.csv", rec)) == 2
        assert "error: the crowd's --template: several wordings are averaged for log-prob" in _one_error(capsys)
        assert rec.seen == [] and not (tmp_path / "a.csv").exists()
