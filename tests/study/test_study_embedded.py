"""`crowdllm crowd fit -> info -> sample -> ask` on the embedded SmolLM2 test model (few calls, fast)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from study_helpers import fit_args

from crowdllm.cli import main

pytestmark = [pytest.mark.embedded, pytest.mark.requires("llama-cpp")]


def test_fit_info_sample_ask_on_the_embedded_test_model(study_files, tmp_path, capsys):
    embedded = ["--model-path", "test"]
    out = tmp_path / "crowd"
    assert main(fit_args(study_files, out, "--question", "How offensive is this comment?", *embedded)) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["reference"]["backend"] == "llama-cpp"
    assert card["reference"]["backend_flags"]["model_path"] == "test"
    refs = pd.read_csv(out / "references.csv")
    assert len(refs) == 40 and refs["y_ref"].between(1, 5).all()
    assert main(["crowd", "info", str(out)]) == 0
    assert "How offensive" in capsys.readouterr().out
    # sample without backend flags: the crowd's own backend (the test model) answers the new tasks
    answers = tmp_path / "a.csv"
    assert main(["crowd", "sample", str(out), "--tasks", str(study_files["new"]), "--task-map",
                 "task=id,text=comment", "--people", "20", "--out", str(answers), "--no-progress"]) == 0
    frame = pd.read_csv(answers)
    assert len(frame) == 60 and frame["label"].between(1, 5).all()
    assert main(["crowd", "ask", str(out), "a bad bad comment", "--people", "50", "--by", "age"]) == 0
    printed = capsys.readouterr().out
    assert "by age:" in printed and "18-24" in printed


def test_a_crowd_fitted_with_hidden_states_reads_them_for_new_tasks_too(study_files, tmp_path):
    out = tmp_path / "crowd"
    assert main(fit_args(study_files, out, "--question", "How offensive is this comment?", "--model-path", "test",
                         "--hidden-states")) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["reference"]["backend_flags"]["hidden_states"] is True
    refs = pd.read_csv(out / "references.csv")
    hidden = [c for c in refs.columns if c.startswith("h_")]
    assert len(hidden) == 576 and refs[hidden].notna().all().all()  # SmolLM2-135M's state has 576 numbers
    # new tasks: the crowd's own backend is opened with hidden states again (else the crowd refuses them)
    answers = tmp_path / "a.csv"
    assert main(["crowd", "sample", str(out), "--tasks", str(study_files["new"]), "--task-map",
                 "task=id,text=comment", "--people", "20", "--out", str(answers), "--no-progress"]) == 0
    assert len(pd.read_csv(answers)) == 60
    # a crowd fitted on a reference file that holds hidden states (no flag) asks for them on new tasks too
    again = tmp_path / "again"
    assert main(fit_args(study_files, again, "--question", "How offensive is this comment?", "--model-path", "test",
                         "--reference", str(out / "references.csv"))) == 0
    assert main(["crowd", "sample", str(again), "--tasks", str(study_files["new"]), "--task-map",
                 "task=id,text=comment", "--people", "20", "--out", str(answers), "--no-progress"]) == 0
