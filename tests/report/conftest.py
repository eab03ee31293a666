"""A small results folder, made the way the CLI makes one, for the report tests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.evaluate.analyses import crowd_size, data_efficiency, people_needed
from crowdllm.report import figures


class NoisyTaskMean:
    """Answers a task's training mean plus noise, rounded to the scale (unseen tasks: global mean)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def fit(self, train):
        self.mean_ = train.responses.groupby("task")["label"].mean()
        self.global_ = float(train.responses["label"].mean())
        return self

    def sample(self, tasks, workers, *, pairs, random_state=None):
        gen = np.random.default_rng(random_state)
        m = self.mean_.reindex(pairs["task"].to_numpy()).fillna(self.global_).to_numpy()
        return pairs.assign(label=np.clip(np.round(m + gen.normal(0, 0.9, len(pairs))), 1, 5))


def _factory(train, seed):
    return NoisyTaskMean(seed).fit(train)


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    syn = make_synthetic_crowd(n_tasks=40, n_workers=50, participation=0.5, random_state=2)
    ds = syn.dataset
    methods = {"noisy-mean": _factory}
    sub = root / "analyses"
    de = data_efficiency(ds, methods, fractions=[0.2, 1.0], sizes=[1, 3, 10], seeds=[0, 1])
    sub.mkdir()
    de.to_csv(sub / "data_efficiency.csv", index=False)
    figures.plot_data_efficiency(de, sub / "data_efficiency.png")
    cs = crowd_size(ds, methods, sizes=[1, 2, 5, 10], seeds=[0])
    cs.to_csv(sub / "crowd_size.csv", index=False)
    figures.plot_crowd_size(cs, sub / "crowd_size.png")
    need = people_needed(ds, methods, max_people=12, seeds=[0])
    need.to_csv(sub / "cost_needed.csv", index=False)
    figures.plot_cost(need, sub / "cost_needed.png")
    (sub / "settings_data_efficiency.json").write_text(json.dumps(
        {"command": ["crowdllm", "analyze", "data-efficiency", "--dataset", "synthetic"], "seeds": [0, 1]}))
    # a reproduction folder: long results, predictions, usage, settings
    rep = root / "offensiveness"
    rep.mkdir()
    rows = [("synthetic", "worker", s, m, "mean", metric, v + 0.01 * s)
            for s in (0, 1, 2) for m, base in (("per-task", 0.5), ("crowdllm", 0.4))
            for metric, v in (("mae", base), ("avg_wd", base / 2))]
    pd.DataFrame(rows, columns=["dataset", "split", "seed", "method", "aggregator", "metric", "value"]).to_csv(
        rep / "results.csv", index=False)
    real = ds.responses.assign(source="real", method="")
    gen = np.random.default_rng(0)
    virtual = real.assign(source="virtual", method="crowdllm",
                          label=np.clip(real["label"] + gen.integers(-1, 2, len(real)), 1, 5))
    pd.concat([real, virtual])[["task", "worker", "label", "source", "method"]].to_csv(
        rep / "predictions.csv", index=False)
    (rep / "usage.json").write_text(json.dumps({"calls": 1200, "tokens": {"prompt": 250000, "completion": 3000},
                                                "time_s": 61.5, "cost": 0.0}))
    (rep / "settings.json").write_text(json.dumps({"command": "crowdllm reproduce offensiveness --seeds 3",
                                                   "seeds": [0, 1, 2], "model": "qwen2.5-1.5b"}))
    return root
