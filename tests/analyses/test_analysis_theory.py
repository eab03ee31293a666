"""Theory checks: coverage arithmetic by hand, and a small digital crowd run end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from crowdllm.errors import ConfigError
from crowdllm.evaluate.analyses.theory_checks import (
    HELD_OUT,
    TERMS,
    TRUTH,
    coverage_table,
    summarize_coverage,
    summarize_terms,
    theory_checks,
)


def _per_task():
    # four tasks, virtual mean 0; errors 0.1, 0.5, 1.0, 3.0 against the held-out mean.
    # eta + delta + resid = 0.75 and s^2/m = 0.25: sqrt(total) = 1; eps0 = 0.2; |mean residual| = 0.05
    z0 = norm.ppf(0.975)
    return pd.DataFrame({
        "task": ["a", "b", "c", "d"], "virtual_mean": 0.0, "gold_mean": [0.1, -0.5, 1.0, 3.0], "eps0": 0.2,
        "eta_term": 0.0, "delta_term": 0.5, "resid_term": 0.25, "gold_term": 0.25,
        "half_width_sharp": 0.05 + z0 * 1.0,
    })


def test_coverage_by_hand():
    table = coverage_table(_per_task(), [0.5, 0.05]).set_index(["target", "variant", "nominal"])
    z50, z95 = norm.ppf(0.75), norm.ppf(0.975)  # 0.674, 1.960
    # theorem: half = 0.2 + z -> 0.874 covers 0.1, 0.5 ; 2.16 covers 0.1, 0.5, 1.0
    assert table.loc[(HELD_OUT, "theorem", 0.5), "coverage"] == 0.5
    assert table.loc[(HELD_OUT, "theorem", 0.95), "coverage"] == 0.75
    assert table.loc[(HELD_OUT, "theorem", 0.95), "mean_half_width"] == pytest.approx(0.2 + z95)
    # sharp: half = 0.05 + z -> 0.724 covers 0.1, 0.5
    assert table.loc[(HELD_OUT, "sharp", 0.5), "mean_half_width"] == pytest.approx(0.05 + z50)
    assert table.loc[(HELD_OUT, "sharp", 0.5), "coverage"] == 0.5


def test_truth_target_leaves_out_the_sampling_noise_of_the_held_out_crowd():
    truth = pd.Series([0.0, 0.9, 0.0, 0.0], index=["a", "b", "c", "d"])
    table = coverage_table(_per_task(), [0.5], truth=truth).set_index(["target", "variant"])
    # without s^2/m: sqrt(0.75) = 0.866; half = 0.2 + 0.674 * 0.866 = 0.784 -> misses only b (0.9)
    assert table.loc[(TRUTH, "theorem"), "mean_half_width"] == pytest.approx(0.2 + norm.ppf(0.75) * np.sqrt(0.75))
    assert table.loc[(TRUTH, "theorem"), "coverage"] == 0.75
    with pytest.raises(ConfigError, match="truth is missing"):
        coverage_table(_per_task(), [0.5], truth=truth.drop("d"))


def test_methods_without_a_digital_crowd_are_refused(crowd, methods):
    with pytest.raises(ConfigError, match="need a digital crowd"):
        theory_checks(crowd.dataset, {"m": methods.factory()}, seeds=[0])


@pytest.mark.slow
def test_a_small_digital_crowd_end_to_end():
    from crowdllm.crowd import DigitalCrowd
    from crowdllm.evaluate.analyses.simulation import make_simulated_crowd

    sim = make_simulated_crowd(noise=1.0, diversity=0.5, n_workers=60, tasks_per_worker=20, n_tasks=40,
                               random_state=0)

    def factory(train, seed):
        return DigitalCrowd(epochs=5, embedder="hashing", hidden=16, random_state=seed).fit(train)

    cov, terms = theory_checks(sim.dataset, {"crowd": factory}, alphas=[0.5, 0.05], n_virtual=30, seeds=[0],
                               truth=sim.truth, draws=4)
    assert set(cov["target"]) == {HELD_OUT, TRUTH} and set(cov["variant"]) == {"theorem", "sharp"}
    wide = cov.pivot_table(index=["target", "nominal"], columns="variant", values="coverage")
    # eps0 (root mean square residual) >= |mean residual|: the theorem's interval covers at least as often
    assert (wide["theorem"] >= wide["sharp"]).all()
    width = cov.pivot_table(index=["target", "variant"], columns="nominal", values="mean_half_width")
    assert (width[0.95] > width[0.5]).all()
    head = summarize_coverage(cov)
    assert list(head.columns) == ["method", "target", "variant", "cov@50%", "cov@95%", "half_width@95%"]
    assert len(head) == 4

    got = terms.set_index("term")["value"]
    assert list(got.index) == list(TERMS)
    assert got["L_terms"] == pytest.approx(got["L1"] + got["L2"] + got["L3"] + got["L4"] - got["L5"])
    assert got["L4"] >= 0 and got["L5"] >= 0
    assert "L5 digital diversity" in set(summarize_terms(terms)["term"])
