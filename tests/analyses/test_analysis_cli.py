"""``crowdllm analyze ...`` and ``crowdllm report``: files written, settings recorded, one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from crowdllm.cli import main
from crowdllm.data.synthetic import make_synthetic_crowd

MAP = "task=task,worker=worker,label=label,text=text,profile=gender+age+group"
BASELINES = "profile-group,global"


@pytest.fixture(scope="module")
def crowd_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    make_synthetic_crowd(n_tasks=30, n_workers=40, random_state=1).dataset.merged().to_csv(path, index=False)
    return path


def _run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_every_analysis_writes_csv_png_and_settings_then_one_report(crowd_file, tmp_path, capsys):
    out = tmp_path / "res"
    common = ["--dataset", str(crowd_file), "--map", MAP, "--methods", BASELINES, "--out", str(out)]
    runs = {
        "data_efficiency": ["data-efficiency", *common, "--fractions", "50,100", "--sizes", "1,4"],
        "crowd_size": ["crowd-size", *common, "--sizes", "1,3"],
        "cost_needed": ["cost", *common, "--max-people", "6", "--tolerances", "0.2,0.4"],
        "growth": ["growth", *common, "--factors", "people", "--people", "3,10", "--n-virtual", "4"],
    }
    for stem, argv in runs.items():
        rc, stdout, stderr = _run(capsys, "analyze", *argv)
        assert rc == 0, stderr
        assert (out / f"{stem}.csv").stat().st_size > 0 and (out / f"{stem}.png").stat().st_size > 0
        settings = json.loads((out / f"settings_{stem}.json").read_text())
        assert settings["command"].startswith(f"crowdllm analyze {argv[0]} ")
        assert settings["methods"] == BASELINES.split(",") and settings["seeds"] == [0]
    fractions = json.loads((out / "settings_data_efficiency.json").read_text())["fractions"]
    assert fractions == [0.5, 1.0]
    assert set(pd.read_csv(out / "data_efficiency.csv")["fraction"]) == {0.5, 1.0}
    preds = pd.read_csv(out / "predictions.csv")
    assert set(preds["source"]) == {"real", "virtual"}
    assert set(preds.loc[preds["source"] == "virtual", "method"]) == set(BASELINES.split(","))
    assert (out / "cost.csv").exists()

    sim = tmp_path / "sim"
    rc, _, stderr = _run(capsys, "analyze", "simulation", "--methods", BASELINES, "--noise", "0,2", "--diversity", "1",
                         "--workers", "8", "--tasks-per-worker", "10", "--n-tasks", "20", "--out", str(sim))
    assert rc == 0, stderr
    assert set(pd.read_csv(sim / "simulation.csv")["noise"]) == {0.0, 2.0}

    rc, stdout, stderr = _run(capsys, "report", str(tmp_path))
    assert rc == 0, stderr
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count("<img ") == 6  # five analysis figures + the real-vs-virtual distributions
    assert "Simulation study" in page and "Growth curves" in page


@pytest.mark.parametrize(("argv", "message"), [
    (["--fractions", "a,b"], "--fractions"),
    (["--methods", "no-such-method"], "unknown method 'no-such-method'"),
    (["--sizes", "0,3"], "sizes"),
    (["--crowd-param", "epochs"], "--crowd-param: 'epochs' is not KEY=VALUE"),
    (["--max-tasks", "1"], "--max-tasks must be at least 2"),
])
def test_bad_settings_are_one_line_errors(crowd_file, tmp_path, capsys, argv, message):
    rc, _, stderr = _run(capsys, "analyze", "data-efficiency", "--dataset", str(crowd_file), "--map", MAP,
                         "--out", str(tmp_path), *(["--methods", BASELINES] if "--methods" not in argv else []),
                         *argv)
    assert rc == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not (tmp_path / "data_efficiency.csv").exists()


@pytest.mark.slow
def test_popquorn_offensiveness_crowd_size_with_baselines(shared_data, tmp_path, capsys):
    rc, stdout, stderr = _run(capsys, "analyze", "crowd-size", "--dataset", "popquorn-offensiveness", "--methods",
                              "profile-group,per-task", "--sizes", "1,10", "--out", str(tmp_path))
    assert rc == 0, stderr
    res = pd.read_csv(tmp_path / "crowd_size.csv")
    assert set(res["method"]) == {"profile-group", "per-task"} and res["resolution_rate"].between(0, 1).all()
    assert res["dataset"].eq("popquorn-offensiveness").all()


@pytest.mark.slow
def test_theory_command_writes_coverage_and_terms(crowd_file, tmp_path, capsys):
    rc, stdout, stderr = _run(capsys, "analyze", "theory", "--dataset", str(crowd_file), "--map", MAP, "--methods",
                              "vae-only", "--embedder", "hashing", "--seeds", "1", "--n-virtual", "10", "--draws", "2",
                              "--alphas", "0.5,0.1", "--no-simulated", "--crowd-param", "epochs=5", "--out", str(tmp_path))
    assert rc == 0, stderr
    cov = pd.read_csv(tmp_path / "theory_coverage.csv")
    # the real held-out crowd only (the simulated crowd's truth target is tested in test_analysis_theory)
    assert set(cov["target"]) == {"held-out mean"} and set(cov["method"]) == {"vae-only"}
    assert sorted(cov["nominal"].unique()) == [0.5, 0.9]
    terms = pd.read_csv(tmp_path / "theory_terms.csv")
    assert set(terms["term"]) == {"L1", "L2", "L3", "L4", "L5", "L_terms", "L_direct"}
    assert (tmp_path / "theory_coverage.png").exists() and (tmp_path / "theory_terms.png").exists()
    rc, _, stderr = _run(capsys, "analyze", "theory", "--dataset", str(crowd_file), "--map", MAP, "--methods",
                         "global", "--out", str(tmp_path / "x"))
    assert rc == 2 and "need a digital crowd" in stderr


def test_an_interrupted_run_keeps_the_finished_steps(crowd_file, tmp_path, capsys, monkeypatch):
    # the second method fails after the first has finished: its rows are in the partial file
    from crowdllm.errors import CrowdLLMError
    from crowdllm.evaluate import baselines

    def broken_fit(self, train):
        raise CrowdLLMError("simulated failure")

    monkeypatch.setattr(baselines.GlobalDistribution, "fit", broken_fit)
    rc, _, stderr = _run(capsys, "analyze", "crowd-size", "--dataset", str(crowd_file), "--map", MAP, "--methods",
                         "profile-group,global", "--sizes", "1,2", "--out", str(tmp_path))
    assert rc == 2 and "simulated failure" in stderr
    partial = pd.read_csv(tmp_path / "crowd_size.partial.csv")
    assert set(partial["method"]) == {"profile-group"}
    assert not (tmp_path / "crowd_size.csv").exists()


@pytest.mark.slow
def test_crowdllm_with_an_llm_server_records_its_usage(crowd_file, tmp_path, capsys):
    # a fake OpenAI-compatible server on 127.0.0.1 reads the offensiveness level off the words
    from crowdllm.data import synthetic
    from fakeserver import FakeOpenAIServer

    def answer(req):
        words = req.last_user.split()
        levels = [lv for lv, pool in enumerate(synthetic._WORDS) for w in words if w.strip(".,:;\"'") in pool]
        return f"Rating: {1 + round(sum(levels) / len(levels)) if levels else 3}"

    with FakeOpenAIServer(answer=answer) as server:
        rc, stdout, stderr = _run(capsys, "analyze", "cost", "--dataset", str(crowd_file), "--map", MAP,
                                  "--methods", "crowdllm,global", "--embedder", "hashing", "--crowd-param", "epochs=5", "--max-people", "5",
                                  "--tolerances", "0.5", "--base-url", server.url, "--model", "fake-model",
                                  "--price-per-mtok", "1000", "--out", str(tmp_path))
        assert rc == 0, stderr
        assert server.answered > 0
    usage = json.loads((tmp_path / "cost.usage.json").read_text())
    assert usage["calls"] == server.answered and usage["prompt_tokens"] > 0
    cost = pd.read_csv(tmp_path / "cost.csv").set_index("method")
    # one reference call per task at the measured tokens per call; the global baseline calls nothing
    per_call = (usage["prompt_tokens"] + usage["completion_tokens"]) / usage["calls"]
    assert cost.loc["crowdllm", "tokens_per_task"] == pytest.approx(per_call)
    assert cost.loc["crowdllm", "llm_cost_per_task"] == pytest.approx(per_call / 1e6 * 1000)
    assert cost.loc["global", "llm_calls_per_task"] == 0
    rc, _, _ = _run(capsys, "report", str(tmp_path))
    assert "cost.usage.json" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_max_tasks_cuts_the_data_to_a_seeded_choice_of_tasks(crowd_file, tmp_path, capsys):
    rc, _, stderr = _run(capsys, "analyze", "crowd-size", "--dataset", str(crowd_file), "--map", MAP, "--methods",
                         "global", "--sizes", "1,2", "--max-tasks", "8", "--out", str(tmp_path))
    assert rc == 0, stderr
    res = pd.read_csv(tmp_path / "crowd_size.csv")
    assert len(res) == 2 * 2  # 2 sizes x (diverse, fixed)
    settings = json.loads((tmp_path / "settings_crowd_size.json").read_text())
    assert "--max-tasks 8" in settings["command"]
    rc, _, _ = _run(capsys, "analyze", "data-efficiency", "--dataset", str(crowd_file), "--map", MAP, "--methods",
                    "global", "--sizes", "1", "--fractions", "100", "--max-tasks", "8", "--out", str(tmp_path))
    assert rc == 0
    assert pd.read_csv(tmp_path / "predictions.csv")["task"].nunique() <= 8


def test_the_help_texts_name_the_librarys_defaults():
    """The library is the one source of the defaults; the help texts must say the same values."""
    import inspect

    from crowdllm.cli import analyze as cli
    from crowdllm.evaluate.analyses import crowd_size, data_efficiency, people_needed, theory_checks
    from crowdllm.evaluate.analyses.crowd_size import PAPER as CS_PAPER
    from crowdllm.evaluate.analyses.data_efficiency import PAPER as DE_PAPER

    def default(func, name):
        return inspect.signature(func).parameters[name].default

    def helps(func):
        return {p.name: (p.default.help or "") for p in inspect.signature(func).parameters.values()
                if hasattr(p.default, "help")}

    de, cs, cost, theory = (helps(f) for f in (cli.data_efficiency_cmd, cli.crowd_size_cmd, cli.cost_cmd, cli.theory_cmd))
    assert f"default {cli.shown(default(data_efficiency, 'sizes'))})" in de["sizes"]
    assert f"default {cli.shown(default(data_efficiency, 'fractions'))};" in de["fractions"]
    assert f"--paper: {cli.shown(DE_PAPER['fractions'])})" in de["fractions"]
    assert f"default {cli.shown(default(crowd_size, 'sizes'))})" in cs["sizes"]
    assert f"default {cli.shown(default(crowd_size, 'fractions'))};" in cs["fractions"]
    assert f"--paper: {cli.shown(CS_PAPER['fractions'])})" in cs["fractions"]
    assert f"default {cli.shown(default(crowd_size, 'tolerances'))};" in cs["tolerances"]
    assert f"default {cli.shown(default(people_needed, 'tolerances'))};" in cost["tolerances"]
    assert f"default {default(people_needed, 'max_people')})" in cost["max_people"]
    assert f"default {cli.shown(default(theory_checks, 'alphas'))})" in theory["alphas"]


def test_seeds_option_and_crowd_param_mean_the_same_in_every_command(capsys):
    """--seeds N or a list, --option and --crowd-param: one declaration, in analyze, evaluate and reproduce."""
    for argv in (["analyze", "growth"], ["analyze", "theory"], ["evaluate"], ["reproduce", "voting"]):
        rc, out, _ = _run(capsys, *argv, "--help")
        flat = " ".join(out.replace("│", " ").split())
        assert rc == 0 and "--seeds" in flat and "0..N-1" in flat, argv
        assert "--crowd-param" in flat and "--option" in flat, argv
