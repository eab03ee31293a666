"""The split-conformal interval beside Theorem 5's in the theory checks."""

from __future__ import annotations

import pytest

from crowdllm.evaluate.analyses.theory_checks import HELD_OUT, theory_checks


@pytest.mark.slow
def test_conformal_rows_sit_beside_the_theorem_and_are_narrower():
    from crowdllm.crowd import DigitalCrowd
    from crowdllm.evaluate.analyses.simulation import make_simulated_crowd

    sim = make_simulated_crowd(noise=1.0, diversity=0.5, n_workers=60, tasks_per_worker=20, n_tasks=60,
                               random_state=0)

    def factory(train, seed):
        return DigitalCrowd(epochs=5, embedder="hashing", hidden=16, random_state=seed).fit(train)

    cov, _ = theory_checks(sim.dataset, {"crowd": factory}, alphas=[0.5, 0.1], n_virtual=30, seeds=[0],
                           split="task", terms=False, conformal=True)
    conf = cov[cov["variant"] == "conformal"].set_index("nominal")
    assert set(conf["target"]) == {HELD_OUT} and sorted(conf.index) == [0.5, 0.9]
    assert conf.loc[0.9, "mean_half_width"] > conf.loc[0.5, "mean_half_width"]
    # 12 held-out tasks, 10 calibration tasks: coverage is coarse, but the 90 % interval covers most
    assert conf.loc[0.9, "coverage"] >= 0.6
    theorem = cov[(cov["variant"] == "theorem") & (cov["target"] == HELD_OUT)].set_index("nominal")
    # the theorem's eps0 bound makes its interval wider than one calibrated on validation tasks
    assert theorem.loc[0.9, "mean_half_width"] > conf.loc[0.9, "mean_half_width"]
