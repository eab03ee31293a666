"""An ensemble of belief networks: the seed of one network no longer moves the crowd."""

from __future__ import annotations

import numpy as np
import pytest

from crowdllm.crowd import DigitalCrowd
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.errors import ConfigError


def test_averaged_networks_wobble_less_from_seed_to_seed() -> None:
    syn = make_synthetic_crowd(n_tasks=60, n_workers=40, random_state=0)
    new = make_synthetic_crowd(n_tasks=60, n_workers=40, random_state=5).dataset.tasks  # texts it never saw

    def task_means(ensemble: int, seed: int) -> np.ndarray:
        # no calibration and no early-stopping rows: the seed reaches only the networks
        crowd = DigitalCrowd(embedder="hashing", epochs=15, ensemble=ensemble, random_state=seed, task_memory=False,
                             calibrate="none", validation="none").fit(syn.dataset)
        decided = crowd.expected_decisions(new, syn.dataset.workers, random_state=0)
        return decided.groupby("task")["mu_mean"].mean().to_numpy()

    def wobble(ensemble: int) -> float:
        return sum(float(np.abs(task_means(ensemble, s) - task_means(ensemble, s + 10)).mean()) for s in (0, 1, 2))

    # measured: a text's mean decision moves 0.051 between two single networks' seeds, 0.033 between
    # two ensembles of three (1 / sqrt(3) of it would be 0.029)
    assert wobble(3) < 0.8 * wobble(1)


def test_the_number_of_networks_is_checked() -> None:
    syn = make_synthetic_crowd(n_tasks=20, n_workers=10, random_state=0)
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="ensemble="):
            DigitalCrowd(embedder="hashing", epochs=2, ensemble=bad).fit(syn.dataset)
