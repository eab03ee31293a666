"""``crowdllm evaluate`` end to end, through crowdllm.cli.main."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.cli import main
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.evaluate.runner import RESULT_COLUMNS


@pytest.fixture
def crowd_csv(tmp_path):
    crowd = make_synthetic_crowd(n_tasks=30, n_workers=25, participation=0.6, random_state=2).dataset
    frame = crowd.merged().rename(columns={"task": "item", "worker": "rater", "label": "rating"})
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, index=False)
    return path


def test_evaluate_a_csv_and_write_results(crowd_csv, tmp_path, capsys) -> None:
    out = tmp_path / "res"
    code = main(["evaluate", "--dataset", str(crowd_csv), "--map", "task=item,worker=rater,label=rating",
                 "--kind", "ordinal", "--scale", "1-5", "--split", "worker", "--seeds", "2",
                 "--methods", "random,global,per-task", "--aggregators", "mean,mv", "--out", str(out),
                 "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "noise-ceiling" in printed and "per-task" in printed and "MAE" in printed
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert tuple(results.columns) == RESULT_COLUMNS
    assert set(results["seed"]) == {0, 1}
    assert set(results["method"]) == {"random", "global", "per-task", "noise-ceiling", "split-half"}
    assert set(results["aggregator"]) == {"mean", "mv", "-"}
    assert (out / "results.md").read_text().count("| random |") == 1
    assert not (out / "results.partial.csv").exists()


def test_task_split_says_what_it_skipped(crowd_csv, capsys) -> None:
    code = main(["evaluate", "--dataset", str(crowd_csv), "--map", "task=item,worker=rater,label=rating",
                 "--split", "task", "--seeds", "1", "--methods", "global,per-task", "--aggregators", "mean",
                 "--no-progress"])
    assert code == 0
    assert "per-task" in capsys.readouterr().out  # in the note, not as a row


def test_validation_flag_scores_inside_the_training_part(crowd_csv, tmp_path, capsys) -> None:
    """``--validation``: other scores than the plain run (an inner split), and the table says so."""
    base = ["evaluate", "--dataset", str(crowd_csv), "--map", "task=item,worker=rater,label=rating",
            "--split", "task", "--seeds", "2", "--methods", "global", "--aggregators", "mean", "--no-progress"]
    assert main([*base, "--validation", "--out", str(tmp_path / "v")]) == 0
    assert main([*base, "--out", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    assert "validation: scored on an inner split" in (tmp_path / "v" / "results.md").read_text()
    assert "validation" not in (tmp_path / "t" / "results.md").read_text()
    v, t = (pd.read_csv(tmp_path / d / "results.csv") for d in ("v", "t"))
    assert not np.allclose(v["value"], t["value"])


@pytest.mark.parametrize("args, message", [
    (["--split", "people"], "--split: 'people'"),
    (["--methods", "oracle"], "unknown method 'oracle'"),
    (["--aggregators", "average"], "unknown aggregator 'average'"),
    (["--seeds", "zero"], "--seeds: 'zero'"),
])
def test_user_errors_are_one_line_exit_2(crowd_csv, capsys, args, message) -> None:
    base = ["evaluate", "--dataset", str(crowd_csv), "--map", "task=item,worker=rater,label=rating",
            "--seeds", "1", "--no-progress"]
    code = main(base + args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_missing_file_is_a_one_line_error(tmp_path, capsys) -> None:
    code = main(["evaluate", "--dataset", str(tmp_path / "nope.csv"), "--no-progress"])
    assert code == 2
    assert "nope.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_popquorn_offensiveness_one_seed(shared_data, tmp_path, capsys) -> None:
    code = main(["evaluate", "--dataset", "popquorn-offensiveness", "--split", "worker", "--seeds", "1",
                 "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    results = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    value = results.set_index(["method", "aggregator", "metric"])["value"]
    # the per-task distribution of the other raters beats guessing uniformly, and the oracle beats both
    assert value[("per-task", "mean", "mae")] < value[("random", "mean", "mae")]
    assert value[("noise-ceiling", "mean", "mae")] < value[("per-task", "mean", "mae")]
    assert value[("per-task", "-", "cs_dist")] > value[("random", "-", "cs_dist")]


class AskTheLLM:
    """A toy LLM method: one prompt per pair, the first digit of the answer is the rating."""

    name = "ask-llm"

    def __init__(self, llm) -> None:
        self.llm = llm

    def fit(self, train):
        return self

    def sample(self, tasks, workers, *, pairs=None, random_state=None):
        texts = tasks.set_index("task")["text"]
        prompts = [[{"role": "user", "content": f"Rate 1-5: {texts[t]}"}] for t in pairs["task"]]
        answers = self.llm.generate(prompts, max_tokens=8)
        labels = [float(next(ch for ch in a[0].text if ch in "12345")) for a in answers]
        return pairs[["task", "worker"]].assign(label=labels)


def test_llm_methods_get_the_backend_from_the_shared_flags(crowd_csv, tmp_path, capsys) -> None:
    from crowdllm.evaluate import runner
    from fakeserver import FakeOpenAIServer

    before = (dict(runner.METHODS), dict(runner._SPECS))
    runner.register_method("ask-llm", lambda ctx: AskTheLLM(ctx.options["llm"]), needs_llm=True)
    try:
        with FakeOpenAIServer(answer=lambda req: "Rating: 4") as server:
            out = tmp_path / "llm"
            code = main(["evaluate", "--dataset", str(crowd_csv), "--map", "task=item,worker=rater,label=rating",
                         "--seeds", "1", "--methods", "ask-llm", "--aggregators", "mean", "--out", str(out),
                         "--base-url", server.url, "--model", "fake-model", "--no-progress"])
            assert code == 0, capsys.readouterr().err
            assert server.answered > 0
    finally:
        runner.METHODS.clear(), runner.METHODS.update(before[0])
        runner._SPECS.clear(), runner._SPECS.update(before[1])
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert "ask-llm" in set(results["method"])
    assert (out / "results.csv.usage.json").exists()  # the LLM's calls and tokens, next to the results


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_three_files_joined_with_tasks_and_workers(three_files, tmp_path, capsys) -> None:
    """Responses, task texts and profiles in three files: joined on the ids, the response rows whose task
    is missing from --tasks counted in one warning line, the profile baseline fed by --workers."""
    out = tmp_path / "res"
    argv = ["evaluate", "-d", str(three_files["responses"]), *three_files["args"], "--seeds", "1",
            "--methods", "global,profile-group", "--aggregators", "mean", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warned = _lines(captured.err, "warning:")
    assert len(warned) == 1, captured.err
    assert "'t0029'" in warned[0] and f"{three_files['missing_responses']} response(s) left out" in warned[0]
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert {"global", "profile-group"} <= set(results["method"])
    assert results.loc[results["method"] == "profile-group", "value"].notna().all()

    assert main([*argv, "--strict"]) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "'t0029'" in errors[0], captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("categories", ["-1,1", "1,-1"])
def test_numbers_used_as_category_codes_evaluate_with_the_baselines(tmp_path, capsys, categories) -> None:
    """Answers -1/1 (read as numbers by the file reader) with --kind categorical --categories=-1,1:
    the labels `data validate` accepts are scored by evaluate too."""
    rng = np.random.default_rng(3)
    p_yes = rng.uniform(0.1, 0.9, size=20)
    rows = [{"task": f"t{t}", "worker": f"w{w}", "gender": ("man", "woman")[w % 2],
             "label": 1 if rng.random() < p_yes[t] else -1} for t in range(20) for w in range(15)]
    frame = pd.DataFrame(rows)
    path = tmp_path / "binary.csv"
    frame.to_csv(path, index=False)
    flags = ["--map", "task=task,worker=worker,label=label,profile=gender", "--kind", "categorical",
             f"--categories={categories}"]
    assert main(["data", "validate", str(path), *flags]) == 0
    capsys.readouterr()
    out = tmp_path / "res"
    assert main(["evaluate", "-d", str(path), *flags, "--seeds", "1", "--methods", "random,global,per-task,profile-group",
                 "--aggregators", "mv", "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert {"random", "global", "per-task", "profile-group", "noise-ceiling"} <= set(results["method"])
    scored = results[results["method"].isin(["global", "per-task"])]
    assert len(scored) and pd.to_numeric(scored["value"], errors="coerce").notna().all()
