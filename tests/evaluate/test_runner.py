"""The experiment runner: layout, determinism, skipping, plugins, and a cheating method as a known answer."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.errors import ConfigError
from crowdllm.evaluate import runner
from crowdllm.evaluate.runner import (
    METHODS,
    RESULT_COLUMNS,
    ExperimentContext,
    method_seed,
    register_method,
    run_experiment,
    summarize,
)


@pytest.fixture
def small_crowd() -> CrowdDataset:
    return make_synthetic_crowd(n_tasks=30, n_workers=25, participation=0.6, random_state=1).dataset


@pytest.fixture
def restore_registry():
    before_methods, before_specs = dict(METHODS), dict(runner._SPECS)
    yield
    METHODS.clear()
    METHODS.update(before_methods)
    runner._SPECS.clear()
    runner._SPECS.update(before_specs)


class Cheater:
    """Knows every real answer: a perfect digital twin. Scores must be perfect."""

    name = "cheater"

    def __init__(self, everything: CrowdDataset) -> None:
        self.answers = everything.responses.set_index(["task", "worker"])["label"]

    def fit(self, train: CrowdDataset) -> Cheater:
        return self

    def sample(self, tasks, workers, *, pairs=None, random_state=None) -> pd.DataFrame:
        labels = self.answers.reindex(pd.MultiIndex.from_frame(pairs[["task", "worker"]])).to_numpy()
        return pairs[["task", "worker"]].assign(label=labels)


def test_layout_determinism_and_noise_rows(small_crowd: CrowdDataset) -> None:
    kw = dict(methods=["random", "global"], split="worker", seeds=[0, 1], aggregators=["mean", "mv"], progress=False)
    a = run_experiment(small_crowd, **kw)
    b = run_experiment(small_crowd, **kw)
    assert tuple(a.columns) == RESULT_COLUMNS
    pd.testing.assert_frame_equal(a, b)
    assert set(a["method"]) == {"random", "global", "noise-ceiling", "split-half"}
    assert set(a["seed"]) == {0, 1}
    assert set(a["dataset"]) == {"synthetic"} and set(a["split"]) == {"worker"}
    assert a.attrs["notes"] == []
    # the two seeds hold out different workers, so the scores differ
    r = a[(a["method"] == "random") & (a["aggregator"] == "mean") & (a["metric"] == "mae")]
    assert r["value"].nunique() == 2


def test_a_perfect_twin_scores_perfectly(small_crowd: CrowdDataset, restore_registry) -> None:
    register_method("cheater", lambda ctx: Cheater(small_crowd))
    out = run_experiment(small_crowd, methods=["cheater"], seeds=[0], split="both", noise=False, progress=False)
    values = {(r.aggregator, r.metric): r.value for r in out.itertuples()}
    for agg in ("mean", "median", "mv", "ds", "glad"):
        assert values[(agg, "mae")] == 0.0
    assert values[("-", "avg_wd")] == 0.0 and values[("-", "cs_dist")] == pytest.approx(1.0)


def test_seen_tasks_only_methods_are_skipped_on_task_splits(small_crowd: CrowdDataset) -> None:
    out = run_experiment(small_crowd, methods=["per-task", "global"], split="task", seeds=[0],
                         aggregators=["mean"], noise=False, progress=False)
    assert set(out["method"]) == {"global"}
    assert any("per-task" in note and "skipped" in note for note in out.attrs["notes"])
    kept = run_experiment(small_crowd, methods=["per-task"], split="worker", seeds=[0], aggregators=["mean"],
                          noise=False, progress=False)
    assert set(kept["method"]) == {"per-task"}


def test_the_runner_and_the_analyses_skip_and_wrap_errors_the_same_way(small_crowd: CrowdDataset,
                                                                        restore_registry) -> None:
    """One MethodFactory contract: the analyses take the registered methods with the runner's skip rules
    and the runner's error wrapping (method name and seed in the one-line message)."""
    from crowdllm.errors import BackendError
    from crowdllm.evaluate.analyses._common import registered_methods

    notes: list[str] = []
    trainers = registered_methods(["per-task", "global"], small_crowd, split="task", notes=notes)
    out = run_experiment(small_crowd, methods=["per-task", "global"], split="task", seeds=[0],
                         aggregators=["mean"], noise=False, progress=False)
    assert list(trainers) == ["global"] and notes == out.attrs["notes"]

    class Broken(Cheater):
        def fit(self, train):
            raise BackendError("no good")

    register_method("broken", lambda ctx: Broken(small_crowd))
    with pytest.raises(BackendError, match=r"^method 'broken' \(seed 2\): no good$"):
        run_experiment(small_crowd, methods=["broken"], seeds=[2], noise=False, progress=False)
    with pytest.raises(BackendError, match=r"^method 'broken' \(seed 2\): no good$"):
        registered_methods(["broken"], small_crowd, split="worker")["broken"](small_crowd, 2)


def test_factories_get_the_context(small_crowd: CrowdDataset, restore_registry) -> None:
    seen: list[ExperimentContext] = []

    def factory(ctx: ExperimentContext):
        seen.append(ctx)
        return METHODS["global"](ctx)

    register_method("spy", factory, needs_llm=True)
    run_experiment(small_crowd, methods=["spy"], split="worker", seeds=[3, 4], aggregators=["mean"],
                   options={"budget": 7}, noise=False, progress=False)
    assert [(c.dataset, c.split, c.seed, c.options["budget"]) for c in seen] == [
        ("synthetic", "worker", 3, 7), ("synthetic", "worker", 4, 7)]
    assert runner.method_spec("spy").needs_llm


def test_bad_methods_are_one_line_config_errors(small_crowd: CrowdDataset, restore_registry) -> None:
    with pytest.raises(ConfigError, match="unknown method 'oracle'"):
        run_experiment(small_crowd, methods=["oracle"], seeds=[0], progress=False)

    class Short(Cheater):
        def sample(self, tasks, workers, *, pairs=None, random_state=None):
            return super().sample(tasks, workers, pairs=pairs).iloc[:-1]

    register_method("short", lambda ctx: Short(small_crowd))
    with pytest.raises(ConfigError, match="method 'short' returned"):
        run_experiment(small_crowd, methods=["short"], seeds=[0], noise=False, progress=False)
    with pytest.raises(ConfigError):
        register_method("noise-ceiling", lambda ctx: Short(small_crowd))


def test_method_plugins_are_discovered(tmp_path, monkeypatch, small_crowd: CrowdDataset, restore_registry) -> None:
    import crowdllm.evaluate.methods as plugins

    (tmp_path / "extra_method.py").write_text(textwrap.dedent("""
        from crowdllm.evaluate.baselines import GlobalDistribution
        from crowdllm.evaluate.runner import register_method
        register_method("plugin-global", lambda ctx: GlobalDistribution())
    """))
    monkeypatch.setattr(plugins, "__path__", [*plugins.__path__, str(tmp_path)])
    monkeypatch.setattr(runner, "_PLUGINS_LOADED", False)
    monkeypatch.delitem(sys.modules, "crowdllm.evaluate.methods.extra_method", raising=False)
    out = run_experiment(small_crowd, methods=["plugin-global"], seeds=[0], aggregators=["mean"], noise=False,
                         progress=False)
    assert set(out["method"]) == {"plugin-global"}


def _top3_votes(seed: int) -> CrowdDataset:
    """40 voters each pick 3 of 8 items, earlier items more often."""
    rng = np.random.default_rng(seed)
    items = [f"p{j}" for j in range(8)]
    rows = []
    for v in range(40):
        chosen = set(rng.choice(items, size=3, replace=False, p=np.array([8, 7, 6, 5, 4, 3, 2, 1]) / 36))
        rows += [(item, f"v{v:02d}", int(item in chosen)) for item in items]
    return CrowdDataset(pd.DataFrame(rows, columns=["task", "worker", "label"]),
                        pd.DataFrame({"task": items, "text": items}),
                        pd.DataFrame({"worker": [f"v{v:02d}" for v in range(40)], "district": ["N", "S"] * 20}),
                        LabelSpec("topk", k=3), name="votes").validate()


def test_votes_end_to_end() -> None:
    ds = _top3_votes(seed=0)
    out = run_experiment(ds, methods=["random", "global", "per-task", "profile-group"], seeds=[0, 1],
                         progress=False)
    assert set(out["aggregator"]) == {"count"}
    assert set(out["metric"]) == {"mae", "rmse", "cs_raw", "cs_centered", "wd"}
    assert "per-task" not in set(out["method"]) and any("top" in n or "topk" in n for n in out.attrs["notes"])
    with pytest.raises(ConfigError, match="top-k"):
        run_experiment(ds, methods=["random"], split="task", seeds=[0], progress=False)


def test_summarize_mean_and_std_over_seeds() -> None:
    rows = [("d", "worker", s, "m", "mean", "mae", v) for s, v in ((0, 1.0), (1, 2.0), (2, 3.0))]
    rows += [("d", "worker", 0, "m", "-", "avg_wd", 0.5)]
    summary = summarize(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)))
    mae = summary[summary["metric"] == "mae"].iloc[0]
    assert (mae["mean"], mae["std"], mae["n_seeds"]) == (2.0, 1.0, 3)
    wd = summary[summary["metric"] == "avg_wd"].iloc[0]
    assert wd["n_seeds"] == 1 and np.isnan(wd["std"])


def test_method_seeds_are_stable_and_distinct() -> None:
    assert method_seed(0, "random") == method_seed(0, "random")
    assert len({method_seed(0, "random"), method_seed(1, "random"), method_seed(0, "global")}) == 3


def test_every_vote_method_gives_each_voter_exactly_k_votes() -> None:
    """Votes end to end: whatever a method does, each virtual voter picks exactly k items, so the
    per-item counts it is scored on sum to k x voters (a method that dropped or doubled ballots would
    still produce plausible-looking counts)."""
    from crowdllm.data.splits import split_dataset
    from crowdllm.evaluate.runner import ExperimentContext, method_seed, method_spec

    ds = _top3_votes(seed=1)
    parts = split_dataset(ds, by="worker", test_size=0.25, random_state=0)
    pairs = parts.test.responses[["task", "worker"]].reset_index(drop=True)
    tasks = parts.test.tasks
    workers = parts.test.workers[parts.test.workers["worker"].isin(set(pairs["worker"]))]
    n_voters = pairs["worker"].nunique()
    for name in ("random", "global", "profile-group"):
        ctx = ExperimentContext(dataset="votes", split="worker", seed=0, label=ds.label)
        method = method_spec(name).fit(ctx, parts.train)
        pred = method.sample(tasks, workers, pairs=pairs, random_state=method_seed(0, name))
        per_voter = pred.groupby("worker")["label"].sum()
        assert (per_voter == 3).all(), name
        assert int(pred["label"].sum()) == 3 * n_voters, name


@pytest.mark.parametrize("split", ["task", "worker", "both"])
def test_validation_never_fits_or_scores_on_the_test_part(small_crowd: CrowdDataset, restore_registry,
                                                          split: str) -> None:
    """``validation=True``: the method is fitted on part of the seed's training part and scored on the rest
    of it; no answer of the seed's test part reaches the method, the scores or the floors."""
    from crowdllm.data.splits import split_dataset

    seen: dict[str, set[tuple[str, str]]] = {"fit": set(), "asked": set()}

    class Recorder(Cheater):
        def fit(self, train):
            seen["fit"] |= set(zip(train.responses["task"], train.responses["worker"], strict=True))
            return self

        def sample(self, tasks, workers, *, pairs=None, random_state=None):
            seen["asked"] |= set(zip(pairs["task"], pairs["worker"], strict=True))
            return super().sample(tasks, workers, pairs=pairs, random_state=random_state)

    register_method("recorder", lambda ctx: Recorder(small_crowd))
    outer = split_dataset(small_crowd, by=split, random_state=3)
    train_pairs = set(zip(outer.train.responses["task"], outer.train.responses["worker"], strict=True))
    out = run_experiment(small_crowd, methods=["recorder"], split=split, seeds=[3], aggregators=["mean"],
                         validation=True, progress=False)
    assert seen["fit"] and seen["asked"] and not seen["fit"] & seen["asked"]
    assert seen["fit"] | seen["asked"] <= train_pairs
    assert any(note.startswith("validation:") for note in out.attrs["notes"])
    # the cheater knows every answer, so it is perfect on the inner held-out part too
    assert out.query("method == 'recorder' and metric == 'mae'")["value"].eq(0).all()
    # without validation it is asked about the test part
    seen["asked"].clear()
    run_experiment(small_crowd, methods=["recorder"], split=split, seeds=[3], aggregators=["mean"], noise=False,
                   progress=False)
    assert not seen["asked"] & train_pairs


def test_validation_floors_come_from_the_training_part(small_crowd: CrowdDataset, monkeypatch) -> None:
    from crowdllm.data.splits import split_dataset

    fulls: list[pd.DataFrame] = []
    real = runner.noise_ceiling

    def spy(gold, label, *, full=None, **kw):
        fulls.append(full)
        return real(gold, label, full=full, **kw)

    monkeypatch.setattr(runner, "noise_ceiling", spy)
    run_experiment(small_crowd, methods=["global"], split="worker", seeds=[0], aggregators=["mean"],
                   validation=True, progress=False)
    outer = split_dataset(small_crowd, by="worker", random_state=0)
    assert set(fulls[0]["worker"]) == set(outer.train.responses["worker"])
