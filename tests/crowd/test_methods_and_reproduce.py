"""The LLM-based, CrowdLLM and supervised-text methods in the runner, the theory numbers, reproduce()."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.data.splits import split_dataset
from crowdllm.data.synthetic import _WORDS, make_synthetic_crowd
from crowdllm.evaluate.runner import run_experiment, summarize
from crowdllm.llm.fake import FakeLLM

LEVEL = {w: i for i, words in enumerate(_WORDS) for w in words}


def _text_level(messages) -> float:
    text = [m["content"] for m in messages if m["role"] == "user"][-1]
    levels = [LEVEL[w] for w in text.split() if w in LEVEL]
    return float(np.mean(levels)) if levels else 0.0


def knowing_llm() -> FakeLLM:
    """An LLM whose rating distribution peaks near the text's offensiveness (1 + 0.8 * word level)."""
    def script(messages, choices):
        centre = 1 + 0.8 * _text_level(messages)
        p = np.exp(-1.5 * (np.arange(1, len(choices) + 1) - centre) ** 2)
        return p / p.sum()
    return FakeLLM(choice_script=script)


@pytest.fixture(scope="module")
def syn():
    return make_synthetic_crowd(n_tasks=40, n_workers=30, random_state=1)


def _table(res: pd.DataFrame) -> pd.DataFrame:
    s = summarize(res)
    keep = s[(s["aggregator"].isin(["mean", "-"])) & s["metric"].isin(["mae", "avg_wd"])]
    return keep.pivot_table(index="method", columns="metric", values="mean")


@pytest.mark.slow
def test_crowdllm_with_an_informative_llm_beats_its_ablations_on_unseen_tasks(syn):
    llm = knowing_llm()
    methods = ["global", "supervised-text", "vae-only", "crowdllm", "llm-zero-shot", "llm-multi-persona"]
    res = run_experiment(syn.dataset, methods=methods, split="task", seeds=[0], aggregators=["mean"],
                         options={"llm": llm, "_refs": {}, "embedder": "hashing", "persona_budget": 40,
                                  "crowd": {"epochs": 40}}, progress=False)
    t = _table(res)
    assert t.loc["crowdllm", "mae"] < 0.8 * t.loc["vae-only", "mae"]
    assert t.loc["crowdllm", "mae"] < 0.6 * t.loc["global", "mae"]
    assert t.loc["crowdllm", "avg_wd"] < t.loc["llm-zero-shot", "avg_wd"]
    assert t.loc["supervised-text", "mae"] < t.loc["global", "mae"]
    persona_calls = [c for c in llm.calls if c["kind"] == "choice_probs"
                     and "as this person would" in c["messages"][-2]["content"]]
    assert 0 < len(persona_calls) <= 40


def test_zero_shot_is_the_argmax_and_self_consistency_a_majority_on_a_logprob_backend(syn):
    from crowdllm.evaluate.methods.llm import SelfConsistencyLLM, ZeroShotLLM

    llm = knowing_llm()
    options = {"llm": llm, "_refs": {}}
    tasks = syn.dataset.tasks.head(12)
    people = syn.dataset.workers.head(5)
    zero = ZeroShotLLM(options=options).fit(syn.dataset).sample(tasks, people, random_state=0)
    sc = SelfConsistencyLLM(options=options).fit(syn.dataset).sample(tasks, people, random_state=0)
    calls_after_first = len(llm.calls)
    for frame in (zero, sc):
        assert (frame.groupby("task")["label"].nunique() == 1).all()  # one answer per task
    expected = {t: 1.0 + float(np.clip(np.round(0.8 * _text_level([{"role": "user", "content": x}])), 0, 4))
                for t, x in zip(tasks["task"], tasks["text"], strict=True)}
    got = zero.groupby("task")["label"].first()
    assert all(got[t] == expected[t] for t in got.index)
    # a rerun asks nothing new: the one log-prob call per task is shared by both methods
    ZeroShotLLM(options=options).fit(syn.dataset).sample(tasks, people, random_state=1)
    assert len(llm.calls) == calls_after_first == 12


def test_llm_methods_sample_real_answers_on_a_backend_without_logprobs(syn):
    from crowdllm.evaluate.methods.llm import SelfConsistencyLLM, ZeroShotLLM

    def script(messages, index, params):
        return "Rating: 2" if params.temperature == 0 else f"Rating: {4 if index % 3 else 5}"

    llm = FakeLLM(script, logprobs=False)
    options = {"llm": llm, "_refs": {}}
    tasks, people = syn.dataset.tasks.head(4), syn.dataset.workers.head(3)
    zero = ZeroShotLLM(options=options).fit(syn.dataset).sample(tasks, people)
    assert set(zero["label"]) == {2.0}
    sc = SelfConsistencyLLM(options=options).fit(syn.dataset).sample(tasks, people)
    assert set(sc["label"]) == {4.0}  # 8 samples at temperature 0.5: 4,5,4,4,5,4,4,5 -> majority 4
    temps = {c["params"]["temperature"] for c in llm.calls}
    assert temps == {0.0, 0.5}


def test_multi_persona_respects_its_call_budget_and_falls_back(syn):
    from crowdllm.evaluate.methods.llm import MultiPersonaLLM

    llm = knowing_llm()
    method = MultiPersonaLLM(options={"llm": llm, "_refs": {}}, budget=7).fit(syn.dataset)
    tasks, people = syn.dataset.tasks.head(3), syn.dataset.workers.head(6)
    out = method.sample(tasks, people, random_state=0)
    assert len(out) == 18 and out["label"].notna().all()
    assert method.calls_ == 7
    persona = [c for c in llm.calls if "as this person would" in c["messages"][-2]["content"]]
    assert len(persona) == 7


def _voting(n_voters: int = 40, seed: int = 0) -> CrowdDataset:
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"task": [f"#{i}" for i in range(1, 11)], "text": [f"project {i}" for i in range(1, 11)],
                          "Category": ["Nature"] * 5 + ["Culture"] * 5})
    voters = pd.DataFrame({"worker": [f"v{i}" for i in range(n_voters)],
                           "favourite": rng.choice(["Nature", "Culture"], size=n_voters)})
    rows = []
    for w, fav in zip(voters["worker"], voters["favourite"], strict=True):
        u = np.where(items["Category"] == fav, 1.5, 0.0) + rng.gumbel(size=10)
        chosen = set(np.argsort(-u)[:3])
        rows += [{"task": items["task"][i], "worker": w, "label": int(i in chosen)} for i in range(10)]
    return CrowdDataset(pd.DataFrame(rows), items, voters, LabelSpec("topk", k=3), name="toy-votes").validate()


def test_vote_methods_cast_k_votes_each_and_are_scored_on_counts():
    ds = _voting()
    llm = FakeLLM(script="Projects: #1, #2, #6", choice_script=lambda m, c: [0.6, 0.4])
    res = run_experiment(ds, methods=["crowdllm", "llm-zero-shot", "llm-multi-persona", "supervised-text"],
                         split="worker", seeds=[0], options={"llm": llm, "_refs": {}, "embedder": "hashing",
                                                            "crowd": {"epochs": 30}}, progress=False)
    assert set(res["metric"]) >= {"mae", "rmse", "cs_raw", "wd"}
    assert set(res["method"]) >= {"crowdllm", "llm-zero-shot", "llm-multi-persona", "supervised-text"}
    from crowdllm.evaluate.methods.llm import ZeroShotLLM

    votes = ZeroShotLLM(options={"llm": llm, "_refs": {}}).fit(ds).sample(ds.tasks, ds.workers.head(4))
    assert (votes.groupby("worker")["label"].sum() == 3).all()
    assert set(votes.loc[votes["label"] == 1, "task"]) == {"#1", "#2", "#6"}


@pytest.mark.slow
def test_theorem5_intervals_cover_and_theorem2_terms_add_up(syn):
    from crowdllm.crowd import DigitalCrowd
    from crowdllm.evaluate.theory import risk_decomposition, theorem5_intervals

    parts = split_dataset(syn.dataset, by="worker", random_state=0)
    crowd = DigitalCrowd(embedder="hashing", epochs=30).fit(parts.train, reference=pd.DataFrame({"y_ref": syn.truth}))
    rep = theorem5_intervals(crowd, parts.train, parts.test, n_virtual=60)
    s = rep.summary
    assert s["tasks"] == parts.test.responses["task"].nunique()
    assert s["coverage"] >= 0.9  # the theorem's bound (eps0 = RMS residual) is conservative
    assert s["half_width_sharp"] < s["half_width"]
    assert s["eta_term"] == 0.0 and s["delta_term"] > 0 and s["resid_term"] > 0
    assert "coverage" in rep.render()
    risk = risk_decomposition(crowd, parts.test, draws=6).terms
    assert risk["L4"] > 0 and risk["L5"] > 0 and risk["L1"] + risk["L2"] > 0
    assert risk["L_terms"] == pytest.approx(risk["L_direct"], rel=0.15)  # measured |rel| <= 0.077, random_state 0-7


@pytest.mark.slow
def test_reproduce_writes_tables_references_theory_and_the_llm_cost(syn, tmp_path):
    from crowdllm.evaluate.reproduce import reproduce
    from crowdllm.llm.usage import MeteredLLM, Usage

    small = make_synthetic_crowd(n_tasks=24, n_workers=20, random_state=2).dataset
    llm = MeteredLLM(knowing_llm(), Usage())
    rep = reproduce(small, llm=llm, seeds=[0], splits=["worker"], methods=["global", "crowdllm", "llm-zero-shot"],
                    aggregators=["mean", "mv"], out=tmp_path, options={"embedder": "hashing", "crowd": {"epochs": 15}},
                    progress=False)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"results.csv", "results.md", "references.csv", "run.json", "theory.csv"} <= files
    results = pd.read_csv(tmp_path / "results.csv")
    assert list(results.columns) == ["dataset", "split", "seed", "method", "aggregator", "metric", "value"]
    assert {"crowdllm", "noise-ceiling"} <= set(results["method"])
    md = (tmp_path / "results.md").read_text()
    assert "LLM: fake / fake-1" in md and "calls" in md and "Theorem 5" in md and "Theorem 2" in md
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["usage"]["calls"] == small.n_tasks  # one log-prob reference call per task, nothing else
    assert rep.info["embedder"].startswith("hashing")
