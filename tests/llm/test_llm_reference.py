"""References per task: log-prob expected values, K samples at temperature 0, self-consistency, top-k."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crowdllm.errors import ConfigError, CrowdDataError
from crowdllm.llm import FakeLLM, MeteredLLM, open_backend
from crowdllm.llm.reference import compute_references, load_references, persona_choice_probs, save_references

TASKS = pd.DataFrame({"task": ["a", "b", "c"], "text": ["level 1 text", "level 3 text", "level 5 text"]})


def level_of(messages: list[dict[str, str]]) -> int:
    last = [m for m in messages if m["role"] == "user"][-1]["content"]
    return int(re.search(r"level (\d)", last).group(1))


def test_logprob_reference_is_the_expected_value_of_the_distribution() -> None:
    def dist(messages, choices):  # noqa: ANN001, ANN202 - all mass on the level and its upper neighbour
        lv = level_of(messages)
        p = np.zeros(5)
        p[lv - 1] = 0.75
        p[min(lv, 4)] += 0.25
        return p

    fake = FakeLLM(choice_script=dist)
    refs = compute_references(TASKS, fake, strategy="logprob", progress=False)
    assert list(refs.index) == ["a", "b", "c"] and refs.index.name == "task"
    assert refs["y_ref"].tolist() == pytest.approx([1.25, 3.25, 5.0])
    assert refs.loc["b", ["p_1", "p_2", "p_3", "p_4", "p_5"]].tolist() == pytest.approx([0, 0, 0.75, 0.25, 0])
    assert (refs["n_calls"] == 1).all() and (refs["strategy"] == "logprob").all()
    assert len(fake.calls) == 3


def test_zero_shot_makes_k_calls_per_task_at_temperature_zero_and_takes_the_mean() -> None:
    def script(messages, index, params):  # noqa: ANN001, ANN202
        assert params.temperature == 0.0
        # one of the K samples disagrees by one point: the mean moves, the majority does not
        return f"Rating: {level_of(messages) - (1 if index == 7 and level_of(messages) > 1 else 0)}"

    fake = FakeLLM(script)
    refs = compute_references(TASKS, fake, strategy="zero-shot", k=8, progress=False)
    assert len(fake.calls) == 3 * 8
    assert sorted({c["sample"] for c in fake.calls}) == list(range(8))
    assert refs["y_ref"].tolist() == pytest.approx([1.0, 3 - 1 / 8, 5 - 1 / 8])
    assert refs["y_majority"].tolist() == [1.0, 3.0, 5.0]
    assert refs.loc["b", "p_2"] == pytest.approx(1 / 8) and refs.loc["b", "p_3"] == pytest.approx(7 / 8)


def test_self_consistency_samples_at_half_temperature_and_takes_the_majority() -> None:
    answers = {0: "4", 1: "4", 2: "2", 3: "Rating: 4", 4: "5"}

    def script(messages, index, params):  # noqa: ANN001, ANN202
        assert params.temperature == 0.5
        return answers[index]

    refs = compute_references(TASKS.iloc[:1], FakeLLM(script), strategy="self-consistency", k=5, progress=False)
    row = refs.iloc[0]
    assert row["y_ref"] == 4.0 and row["y_majority"] == 4.0
    assert row["y_mean"] == pytest.approx(19 / 5)
    assert row["n_calls"] == 5


def test_unparseable_samples_are_counted_and_their_text_kept() -> None:
    answers = ["Rating: 2", "I refuse to rate this", "2", "???"]
    fake = FakeLLM(lambda m, i, p: answers[i])
    metered = MeteredLLM(fake)
    refs = compute_references(TASKS.iloc[:1], metered, strategy="zero-shot", k=4, progress=False)
    row = refs.iloc[0]
    assert row["y_ref"] == 2.0 and row["parse_failures"] == 2
    assert json.loads(row["failed_answers"]) == ["I refuse to rate this", "???"]
    assert metered.usage.as_dict()["parse_failures"] == 2


def test_no_parseable_sample_gives_nan_never_a_default() -> None:
    refs = compute_references(TASKS.iloc[:1], FakeLLM("no idea"), strategy="zero-shot", k=3, progress=False)
    assert np.isnan(refs.iloc[0]["y_ref"]) and refs.iloc[0]["parse_failures"] == 3


def test_limit_takes_the_first_tasks() -> None:
    refs = compute_references(TASKS, FakeLLM(), strategy="logprob", limit=2, progress=False)
    assert list(refs.index) == ["a", "b"]


def test_references_on_a_synthetic_crowd_follow_its_hidden_scores(synthetic) -> None:  # noqa: ANN001
    """A fake model that reads the crowd's known task score gives references ranked like the truth."""
    scores = dict(zip(synthetic.dataset.tasks["task"], synthetic.scores, strict=True))
    text_to_task = dict(zip(synthetic.dataset.tasks["text"], synthetic.dataset.tasks["task"], strict=True))

    def dist(messages, choices):  # noqa: ANN001, ANN202
        text = messages[-2]["content"].split("Text:\n", 1)[1]
        s = scores[text_to_task[text]]
        return np.exp(-((np.arange(1, 6) - s) ** 2))

    refs = compute_references(synthetic.dataset.tasks, FakeLLM(choice_script=dist), progress=False)
    truth = pd.Series(scores)
    assert refs["y_ref"].corr(truth.loc[refs.index], method="spearman") > 0.99


ITEMS = pd.DataFrame({"task": [f"#{i}" for i in range(1, 7)], "text": [f"project {i}" for i in range(1, 7)]})


def test_topk_logprob_reference_is_p_yes_per_item() -> None:
    def dist(messages, choices):  # noqa: ANN001, ANN202
        assert choices == ("Yes", "No")
        n = int(re.search(r"#(\d)", messages[-2]["content"]).group(1))
        return [n / 10, 1 - n / 10]

    fake = FakeLLM(choice_script=dist)
    refs = compute_references(ITEMS, fake, kind="topk", strategy="logprob", top_k=2, progress=False)
    assert refs["y_ref"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert len(fake.calls) == 6
    # every item question lists all items
    assert all("#6: project 6" in c["messages"][0]["content"] for c in fake.calls)


def test_topk_sampling_reference_counts_how_often_each_item_is_on_the_ballot() -> None:
    ballots = ["#1, #2", "#1, #3", "Answer: 1 and 2", "#9, #10"]  # the last names no items: a parse failure
    fake = FakeLLM(lambda m, i, p: ballots[i])
    refs = compute_references(ITEMS, fake, kind="topk", strategy="zero-shot", k=4, top_k=2, progress=False)
    assert len(fake.calls) == 4  # one ballot prompt, K samples, shared by all items
    assert refs["y_ref"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 0, 0, 0])
    assert refs["votes"].tolist() == [3, 2, 1, 0, 0, 0]
    assert (refs["parse_failures"] == 1).all()


def test_choice_references() -> None:
    fake = FakeLLM(choice_script=lambda m, c: [0.2, 0.8] if "level 5" in m[-2]["content"] else [0.9, 0.1])
    refs = compute_references(TASKS, fake, kind="choice", choices=["no", "yes"], progress=False)
    assert refs["y_ref"].tolist() == ["no", "no", "yes"]
    assert refs.loc["c", "p_yes"] == pytest.approx(0.8)


def test_choice_references_by_sampling_take_the_majority_and_count_what_is_unreadable() -> None:
    answers = ["yes", "no", "yes", "maybe"]
    refs = compute_references(TASKS.iloc[:1], FakeLLM(lambda m, i, p: answers[i]), kind="choice",
                              choices=["no", "yes"], strategy="self-consistency", k=4, progress=False)
    row = refs.iloc[0]
    assert row["y_ref"] == "yes" and row["p_yes"] == pytest.approx(2 / 3) and row["p_no"] == pytest.approx(1 / 3)
    assert row["n_calls"] == 4 and row["parse_failures"] == 1 and json.loads(row["failed_answers"]) == ["maybe"]


def test_persona_choice_probs_asks_once_per_pair_with_the_persona_in_the_prompt() -> None:
    profiles = pd.DataFrame({"worker": ["w1", "w2"], "gender": ["Woman", "Man"], "age": ["18-24", "60-64"]})

    def dist(messages, choices):  # noqa: ANN001, ANN202 - women rate one point higher
        lv = level_of(messages) + (1 if "You are a woman" in messages[-2]["content"] else 0)
        p = np.zeros(5)
        p[min(lv, 5) - 1] = 1
        return p

    fake = FakeLLM(choice_script=dist)
    out = persona_choice_probs(fake, TASKS, profiles, progress=False)
    assert len(out) == 6 and len(fake.calls) == 6
    got = {(r.task, r.worker): r.y for r in out.itertuples()}
    assert got[("b", "w1")] == 4.0 and got[("b", "w2")] == 3.0 and got[("c", "w1")] == 5.0
    pairs = pd.DataFrame({"task": ["a"], "worker": ["w2"]})
    assert len(persona_choice_probs(fake, TASKS, profiles, pairs=pairs, progress=False)) == 1
    with pytest.raises(CrowdDataError, match="w9"):
        persona_choice_probs(fake, TASKS, profiles, pairs=[("a", "w9")], progress=False)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_save_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    refs = compute_references(pd.DataFrame({"task": ["001", "2"], "text": ["x", "y"]}), FakeLLM(),
                              progress=False)
    path = save_references(refs, tmp_path / f"refs{suffix}")
    back = load_references(path)
    assert list(back.index) == ["001", "2"]  # ids stay strings, leading zeros kept
    pd.testing.assert_series_equal(back["y_ref"], refs["y_ref"], check_names=False)


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    # the library names its arguments; the command line maps them to its flags (tests/llm/test_llm_cli.py)
    with pytest.raises(ConfigError, match="^strategy 'best': use one of"):
        compute_references(TASKS, FakeLLM(), strategy="best", progress=False)
    with pytest.raises(ConfigError, match=r"^limit must be at least 1 \(got 0\)$"):
        compute_references(TASKS, FakeLLM(), limit=0, progress=False)
    with pytest.raises(ConfigError, match=r"^k must be at least 1"):
        compute_references(TASKS, FakeLLM(), strategy="zero-shot", k=0, progress=False)
    with pytest.raises(CrowdDataError, match="text"):
        compute_references(TASKS[["task"]], FakeLLM(), progress=False)
    with pytest.raises(ConfigError, match="top_k"):
        compute_references(ITEMS, FakeLLM(), kind="topk", progress=False)
    with pytest.raises(ConfigError, match=".csv or .parquet"):
        save_references(pd.DataFrame({"y_ref": [1.0]}), tmp_path / "refs.txt")


def test_self_consistency_against_the_fake_server_makes_k_calls_per_task_and_none_on_rerun(tmp_path: Path) -> None:
    from fakeserver import FakeOpenAIServer

    tasks = pd.DataFrame({"task": [f"t{i}" for i in range(6)], "text": [f"level {1 + i % 5} text {i}" for i in range(6)]})
    with FakeOpenAIServer(answer=lambda req: f"Rating: {level_of(req.messages)}") as server:
        first = open_backend(base_url=server.url, model="fake-model", cache=tmp_path / "c.sqlite", concurrency=4)
        try:
            refs = compute_references(tasks, first, strategy="self-consistency", k=8, progress=False)
        finally:
            first.close()
        assert server.requests == 6 * 8
        assert len(server.prompts) == 6 * 8  # every (prompt, seed) asked exactly once
        again = open_backend(base_url=server.url, model="fake-model", cache=tmp_path / "c.sqlite")
        try:
            refs2 = compute_references(tasks, again, strategy="self-consistency", k=8, progress=False)
        finally:
            again.close()
    assert server.requests == 6 * 8
    assert again.usage.as_dict()["calls"] == 0 and again.usage.as_dict()["cache_hits"] == 48
    pd.testing.assert_frame_equal(refs, refs2)
    assert refs["y_ref"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 1.0]


def _wording(messages: list[dict[str, str]]) -> str:
    return "rude" if "rude" in messages[0]["content"] else "offensive"


RUDE = {"rating": {"system": "You judge how rude comments are.", "instructions": "How rude is it, {low} to {high}?\n"
                   "{scale}", "answer_prefix": "Rating: "}}


def test_two_wordings_ask_each_task_twice_and_average_the_distributions() -> None:
    """Two wordings of the question: one call per task each, the distributions averaged, y_ref read from
    the average (not the mean of two y_refs rounded anywhere), each wording's own y_ref kept."""
    def dist(messages, choices):  # noqa: ANN001, ANN202 - the rude wording reads one level higher
        lv = min(level_of(messages) + (1 if _wording(messages) == "rude" else 0), 5)
        p = np.zeros(5)
        p[lv - 1] = 1.0
        return p

    fake = FakeLLM(choice_script=dist)
    refs = compute_references(TASKS, fake, template=["popquorn-offensiveness", RUDE], progress=False)
    assert refs["y_ref_1"].tolist() == pytest.approx([1, 3, 5]) and refs["y_ref_2"].tolist() == pytest.approx([2, 4, 5])
    assert refs["y_ref"].tolist() == pytest.approx([1.5, 3.5, 5.0])
    assert refs.loc["a", ["p_1", "p_2", "p_3"]].tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert (refs["n_calls"] == 2).all() and len(fake.calls) == 6
    assert sorted(_wording(c["messages"]) for c in fake.calls) == ["offensive"] * 3 + ["rude"] * 3


def test_two_wordings_average_the_hidden_states_and_skip_a_failed_wording() -> None:
    """Hidden states (the embedded model's, here scripted) are averaged like the distributions; a wording
    that gave no distribution for a task is left out of that task's average, its failure counted."""
    class Hidden(FakeLLM):
        def _choice_probs(self, prompts, choices):  # noqa: ANN001, ANN202
            out = super()._choice_probs(prompts, choices)
            for messages, d in zip(prompts, out, strict=True):
                rude = _wording(messages) == "rude"
                if rude and level_of(messages) == 5:  # the rude wording fails on the last task
                    d.probs = tuple(float("nan") for _ in d.probs)
                d.extra["hidden"] = [10.0 if rude else 0.0, float(level_of(messages))]
            return out

    refs = compute_references(TASKS, Hidden(), template=[None, RUDE], progress=False)
    assert refs[["h_0", "h_1"]].to_numpy().tolist() == [[5.0, 1.0], [5.0, 3.0], [0.0, 5.0]]
    assert refs.loc["c", "y_ref_2"] != refs.loc["c", "y_ref_2"]  # NaN: that wording's own reading
    assert np.isfinite(refs["y_ref"]).all() and refs.loc["c", "parse_failures"] == 1


def test_several_wordings_are_refused_where_they_cannot_be_averaged() -> None:
    with pytest.raises(ConfigError, match="^template: several wordings are averaged for log-prob ratings"):
        compute_references(TASKS, FakeLLM(), strategy="zero-shot", template=[None, RUDE], progress=False)
    with pytest.raises(ConfigError, match="^template: give at least one"):
        compute_references(TASKS, FakeLLM(), template=[], progress=False)


def test_a_bad_second_wording_fails_before_any_call() -> None:
    fake = FakeLLM()
    with pytest.raises(ConfigError, match="unknown template 'no-such-wording'"):
        compute_references(TASKS, fake, template=["popquorn-offensiveness", "no-such-wording"], progress=False)
    assert fake.calls == []
