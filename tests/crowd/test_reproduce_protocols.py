"""reproduce() in both protocols, with the linear baselines and the conformal interval beside Theorem 5."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.synthetic import _WORDS, make_synthetic_crowd
from crowdllm.evaluate.reproduce import reproduce
from crowdllm.llm.fake import FakeLLM


def _level(messages) -> float:
    text = " ".join(m["content"] for m in messages).lower()
    hits = [lv for lv, words in enumerate(_WORDS) for w in words if f" {w} " in f" {text} "]
    return float(np.mean(hits)) if hits else 1.0


@pytest.mark.slow
def test_reproduce_scores_both_protocols_and_the_conformal_interval(tmp_path) -> None:
    def script(messages, choices):
        p = np.exp(-1.5 * (np.arange(1, len(choices) + 1) - (1 + 0.8 * _level(messages))) ** 2)
        return p / p.sum()

    small = make_synthetic_crowd(n_tasks=40, n_workers=24, random_state=2).dataset
    rep = reproduce(small, llm=FakeLLM(choice_script=script), seeds=[0], splits=["task"],
                    methods=["global", "text+reference", "crowdllm"], aggregators=["mean"], out=tmp_path,
                    options={"embedder": "hashing", "crowd": {"epochs": 10}}, progress=False, per_answer=10)
    results = pd.read_csv(tmp_path / "results.csv")
    assert set(results["protocol"]) == {"matched", "population"}
    assert {"text+reference", "sampling-oracle"} <= set(results["method"])
    assert "population protocol" in rep.markdown and "Split-conformal intervals" in rep.theory["task"]
    theory = pd.read_csv(tmp_path / "theory.csv")
    assert {"conformal_lower", "conformal_upper", "conformal_half_width", "conformal_covered"} <= set(theory.columns)
    assert (theory["conformal_lower"] < theory["conformal_upper"]).all()
