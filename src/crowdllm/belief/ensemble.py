"""Several belief networks trained on the same data from different seeds, read as one.

A belief network fitted on a thousand texts varies with its seed (its start, its dropout, the order of
its batches): two seeds give a text's mean decision 0.05-0.1 points apart on a 1-5 scale. The ensemble
averages what its members predict -- the prior-mean deviation ``m`` and the reference skip path -- so
that seed-to-seed wobble no longer reaches the crowd's answers; a belief *sample* (the person-to-person
spread of the deviation) comes from one member drawn at random per pair, so the spread is a member's,
never narrowed by the averaging.

Measured on POPQUORN offensiveness's inner validation task splits (the training part of each of seeds
0-4 split again, 20 % of its texts held out; population MAE / Avg WD of the crowd, J = 10): one network
0.409 / 0.461, three 0.405 / 0.458, five 0.403 / 0.456 (``DigitalCrowd(ensemble=...)``, 5 by default;
see docs/crowd.md).

The ensemble answers the same calls as a :class:`~crowdllm.belief.cvae.BeliefModel` (``task_part``,
``profile_part``, ``belief``, ``task_shift``, ``sample_deviation``, ``deviation_sd``, ``save``), so
the crowd reads one or several networks alike.

>>> import numpy as np
>>> from crowdllm.belief.cvae import BeliefModel, TrainData
>>> rng = np.random.default_rng(0)
>>> data = TrainData(task_x=rng.normal(size=(12, 3)).astype(np.float32), recon=np.zeros((12, 2), np.float32),
...                  profile_x=rng.normal(size=(6, 2)).astype(np.float32), ti=np.repeat(np.arange(12), 6),
...                  wi=np.tile(np.arange(6), 12), base=np.zeros((72, 1), np.float32),
...                  target=rng.normal(size=(72, 1)).astype(np.float32), target_enc=np.zeros((72, 1), np.float32),
...                  valid=np.zeros(72, bool))
>>> members = [BeliefModel(epochs=2, random_state=s).fit(data, "mse") for s in (0, 1)]
>>> ens = BeliefEnsemble(members)
>>> m, lv = ens.belief(ens.task_part(data.task_x), ens.profile_part(data.profile_x), data.ti, data.wi)
>>> m.shape, lv.shape == (72, 2 * members[0].latent_dim)
((72, 1), True)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from crowdllm.belief.cvae import BeliefModel, TrainData
from crowdllm.errors import ConfigError


def member_prefix(k: int) -> str:
    """The file prefix of member ``k`` in a saved crowd: ``belief`` (the first, as for one network),
    then ``belief-1``, ``belief-2`` ..."""
    return "belief" if k == 0 else f"belief-{k}"


class BeliefEnsemble:
    """Fitted belief networks ``members`` (at least two), averaged."""

    def __init__(self, members: list[BeliefModel]) -> None:
        if len(members) < 2:
            raise ConfigError(f"a belief ensemble needs at least 2 networks, got {len(members)}")
        self.members = list(members)
        self._hidden = [m.config_.hidden for m in self.members]
        self._latent = [m.config_.latent_dim for m in self.members]

    # the first member's training record stands for the ensemble's (benchmarks report it)
    @property
    def best_epoch_(self) -> int:
        return self.members[0].best_epoch_

    @property
    def history_(self) -> list:
        return self.members[0].history_

    @staticmethod
    def _split(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
        return np.split(x, np.cumsum(sizes)[:-1], axis=1)

    def task_part(self, task_x: np.ndarray) -> np.ndarray:
        """The members' task parts side by side: (n_tasks, sum of hidden sizes)."""
        return np.concatenate([m.task_part(task_x) for m in self.members], axis=1)

    def profile_part(self, profile_x: np.ndarray) -> np.ndarray:
        return np.concatenate([m.profile_part(profile_x) for m in self.members], axis=1)

    def task_shift(self, task_x: np.ndarray) -> np.ndarray:
        return np.mean([m.task_shift(task_x) for m in self.members], axis=0)

    def belief(self, A: np.ndarray, B: np.ndarray, ti: np.ndarray, wi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The members' mean prior-mean deviation ``(n, out)`` and their prior log-variances side by side
        ``(n, sum of latent sizes)``."""
        outs = [m.belief(a, b, ti, wi) for m, a, b in
                zip(self.members, self._split(A, self._hidden), self._split(B, self._hidden), strict=True)]
        return np.mean([o[0] for o in outs], axis=0), np.concatenate([o[1] for o in outs], axis=1)

    def sample_deviation(self, m: np.ndarray, logvar: np.ndarray, J: int, rng: np.random.Generator) -> np.ndarray:
        """``m`` plus one member's belief noise per pair (the member drawn at random)."""
        if J <= 0:
            return m
        pick = rng.integers(len(self.members), size=len(m))
        out = np.array(m, dtype=np.float32, copy=True)
        for k, (member, lv) in enumerate(zip(self.members, self._split(logvar, self._latent), strict=True)):
            rows = pick == k
            if rows.any():
                out[rows] = member.sample_deviation(m[rows], lv[rows], J, rng)
        return out

    def deviation_sd(self, logvar: np.ndarray, J: int = 1) -> np.ndarray:
        """The spread of a belief sample: the root of the members' mean variance (a member drawn at random)."""
        parts = self._split(logvar, self._latent)
        var = np.mean([m.deviation_sd(lv, J) ** 2 for m, lv in zip(self.members, parts, strict=True)], axis=0)
        return np.sqrt(var)

    # ------------------------------------------------------------------ persistence
    def files(self) -> list[str]:
        return [f"{member_prefix(k)}.{ext}" for k in range(len(self.members)) for ext in ("safetensors", "json")]

    def save(self, directory: str | Path) -> None:
        for k, member in enumerate(self.members):
            member.save(directory, prefix=member_prefix(k))

    @classmethod
    def load(cls, directory: str | Path, n: int) -> BeliefEnsemble:
        return cls([BeliefModel.load(directory, prefix=member_prefix(k)) for k in range(n)])


def train_beliefs(template: BeliefModel, data: TrainData, loss: str, n: int, random_state: int, *,
                  refit: bool = False) -> BeliefModel | BeliefEnsemble:
    """``n`` clones of ``template`` trained on ``data`` from seeds ``random_state + k`` (early stopping on
    ``data.valid``; with ``refit`` each is trained again on all rows for its chosen epochs): the one
    network, or their :class:`BeliefEnsemble`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"ensemble={n!r}: give a number of belief networks >= 1")
    members = []
    for k in range(int(n)):
        model = template.clone(random_state=random_state + k).fit(data, loss)
        if refit and data.valid.any():
            again = model.clone(epochs=max(model.best_epoch_ + 1, 1), patience=10**9)
            again.fit(replace(data, valid=np.zeros(len(data.ti), dtype=bool)), loss)
            again.best_epoch_, again.valid_loss_ = model.best_epoch_, model.valid_loss_
            model = again
        members.append(model)
    return members[0] if n == 1 else BeliefEnsemble(members)
