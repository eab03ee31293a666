"""The simulation generator's truth is the generator's exact expected answer; the study's table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses.simulation import (
    REAL_CROWD,
    expected_label,
    make_simulated_crowd,
    simulation_study,
    summarize,
)


def test_expected_label_by_hand():
    # no noise: round and clip; centre 2.4 -> 2, centre 7 -> 5 (clipped), centre -3 -> 1
    np.testing.assert_allclose(expected_label(np.array([[2.4], [7.0], [-3.0]]), np.ones(1), 0.0, 1, 5),
                               [2.0, 5.0, 1.0])
    # centre exactly between 2 and 3 with symmetric noise small enough to stay in 2..3: mean 2.5
    assert expected_label(np.array([[2.5]]), np.ones(1), 0.2, 1, 5)[0] == pytest.approx(2.5, abs=1e-6)
    # two profiles of equal weight, no noise: (2 + 4) / 2
    assert expected_label(np.array([[2.0, 4.0]]), np.ones(2), 0.0, 1, 5)[0] == pytest.approx(3.0)


@pytest.mark.parametrize(("noise", "diversity"), [(0.0, 0.0), (1.0, 2.0), (2.0, 1.0)])
def test_truth_is_what_a_huge_crowd_answers_on_average(noise, diversity):
    sim = make_simulated_crowd(noise=noise, diversity=diversity, n_workers=3000, tasks_per_worker=6, n_tasks=6,
                               random_state=1)
    answers = sim.dataset.responses.groupby("task")["label"]
    empirical = answers.mean()
    standard_error = np.maximum(answers.std() / np.sqrt(answers.count()), 1e-12)
    # ~3000 answers per task: the sample mean is within a few standard errors of the exact expectation
    # (measured: at most 2.1 standard errors over random_state 0-4, 6 tasks and these 3 settings)
    assert (np.abs(empirical - sim.truth.loc[empirical.index]) / standard_error).max() < 4


def test_truth_on_a_base_data_set_uses_its_tasks_and_profiles():
    tasks = pd.DataFrame({"task": [f"q{i}" for i in range(8)], "text": [f"question {i}" for i in range(8)]})
    workers = pd.DataFrame({"worker": [f"p{i}" for i in range(6)], "gender": ["Woman", "Man"] * 3})
    # women answer exactly one point above men on every task
    rows = [(t, w, float(1 + i % 3 + (g == "Woman"))) for i, t in enumerate(tasks["task"])
            for w, g in zip(workers["worker"], workers["gender"], strict=True)]
    base = CrowdDataset(pd.DataFrame(rows, columns=["task", "worker", "label"]), tasks, workers,
                        LabelSpec("ordinal", scale=(1, 5)), name="base").validate()
    sim = make_simulated_crowd(noise=0.0, diversity=0.0, n_workers=20, tasks_per_worker=8, n_tasks=8, base=base,
                               random_state=0)
    assert set(sim.dataset.tasks["text"]) <= set(tasks["text"])
    assert set(sim.dataset.workers["gender"]) <= {"Woman", "Man"}
    # with no noise each simulated answer is the base task mean +-0.5 rounded; truth = base task mean,
    # exactly up to float rounding (measured error 4.4e-16 for random_state 0-4)
    base_mean = base.responses.groupby("task")["label"].mean()
    np.testing.assert_allclose(sim.truth.sort_index(), base_mean.loc[sim.truth.sort_index().index], atol=1e-9)


def test_study_table_text_model_beats_guessing_and_noise_hurts_the_real_crowd(methods):
    res = simulation_study({"words": lambda train, seed: methods.WordMean().fit(train),
                            "always-3": lambda train, seed: methods.Constant(3.0)},
                           noise_levels=[0.0, 2.0], diversity_levels=[0.0, 1.0], n_workers=[10, 40],
                           tasks_per_worker=[20], n_tasks=60, n_virtual=20, seeds=[0])
    assert len(res) == 2 * 2 * 2 * 1 * 3 * 2  # noise x diversity x workers x tasks/person x methods x metrics
    table = summarize(res).set_index(["noise", "diversity"])
    assert list(table.columns) == sorted(["words", "always-3", REAL_CROWD])
    assert (table["words"] < table["always-3"]).all()
    for d in (0.0, 1.0):
        assert table.loc[(2.0, d), REAL_CROWD] > table.loc[(0.0, d), REAL_CROWD]


def test_bad_design_is_refused():
    with pytest.raises(ConfigError, match="tasks_per_worker"):
        make_simulated_crowd(noise=0, diversity=0, n_tasks=10, tasks_per_worker=20)
    with pytest.raises(ConfigError, match=">= 0"):
        make_simulated_crowd(noise=-1, diversity=0)
