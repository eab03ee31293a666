"""Seen tasks: real answers mixed into new people's, with a weight learned on validation people."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crowdllm.crowd import DigitalCrowd
from crowdllm.crowd.mixture import AnswerMixture
from crowdllm.data.synthetic import make_synthetic_crowd
from crowdllm.errors import ConfigError


def answers(n_tasks: int, per_task: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each task has its own answer distribution over 5 levels (a random Dirichlet draw)."""
    dist = rng.dirichlet(np.full(5, 0.5), size=n_tasks)
    ti = np.repeat(np.arange(n_tasks), per_task)
    codes = np.array([rng.choice(5, p=dist[t]) for t in ti])
    return dist, ti, codes


def test_the_weight_follows_whichever_source_predicts_the_validation_people() -> None:
    rng = np.random.default_rng(0)
    dist, ti, codes = answers(300, 12, rng)
    valid = rng.random(len(ti)) < 0.3
    tasks = [f"t{i}" for i in range(300)]
    blind = np.full((int(valid.sum()), 5), 0.2)  # a model that knows nothing: the real answers should win
    mix = AnswerMixture().fit(codes, ti, tasks, n_levels=5, valid=valid, model_probs=blind)
    # ~8 real answers a task beat a flat model: they keep most of the weight (w >= 8 / (8 + 2))
    assert mix.k_ <= 2.0
    oracle = dist[ti[valid]]  # a model that knows each task's distribution: it should win
    mix = AnswerMixture().fit(codes, ti, tasks, n_levels=5, valid=valid, model_probs=oracle)
    assert mix.k_ == max(mix.grid)
    # no validation answer on a task other people answered: nothing to learn from, the model decides
    only_valid = AnswerMixture().fit(codes[:12], ti[:12], tasks[:1], n_levels=5, valid=np.ones(12, bool),
                                     model_probs=blind[:12])
    assert only_valid.k_ == max(only_valid.grid)


def test_where_the_model_knows_each_person_no_real_answer_is_mixed_in() -> None:
    """Half the people answer level 0, half level 4, on every task; a model that knows who is who beats
    any share of the task's real answers (a 50/50 mix), so the mixture leaves the model alone (k = inf).
    The grid used to stop at k = 64: a task with 20 answers still got 24 % real answers, unmoved by the
    profile, which shrank a real 1-point gender gap to 0.72 in a synthetic crowd."""
    rng = np.random.default_rng(0)
    ti = np.repeat(np.arange(100), 20)
    kind = rng.random(len(ti)) < 0.5
    codes = np.where(kind, 4, 0)
    valid = rng.random(len(ti)) < 0.3
    knows = np.where(kind[valid, None], [0.02, 0.02, 0.02, 0.04, 0.9], [0.9, 0.04, 0.02, 0.02, 0.02])
    tasks = [f"t{i}" for i in range(100)]
    mix = AnswerMixture().fit(codes, ti, tasks, n_levels=5, valid=valid, model_probs=knows)
    assert mix.k_ == float("inf") and not mix.weights(np.array(tasks)).any()
    back = AnswerMixture.from_dict(json.loads(json.dumps(mix.to_dict(), allow_nan=False)))  # plain JSON
    assert back.k_ == float("inf") and back.grid == mix.grid


def test_mixed_answers_keep_known_people_and_unseen_tasks() -> None:
    mix = AnswerMixture(k=0.0).fit(np.array([0, 0]), np.array([0, 0]), ["a"], n_levels=5)  # w = 1 on task a
    rng = np.random.default_rng(0)
    codes = mix.mix(np.array([4, 4, 4, 4]), np.array(["a", "a", "a", "new"]), rng,
                    keep=np.array([True, False, False, False]))
    # kept (a known person), replaced by the real answer (level 1) twice, unseen task kept
    assert codes.tolist() == [4, 0, 0, 4]
    with pytest.raises(ConfigError, match="k=-1"):
        AnswerMixture(k=-1).fit(np.array([0]), np.array([0]), ["a"], n_levels=5)


def test_a_fitted_crowd_keeps_its_mixture_through_save_and_load(tmp_path) -> None:
    ds = make_synthetic_crowd(n_tasks=40, n_workers=30, random_state=0).dataset
    crowd = DigitalCrowd(embedder="hashing", epochs=5, validation="workers", random_state=0).fit(ds)
    assert crowd.mixture_ is not None and crowd.mixture_.k_ in crowd.mixture_.grid
    strangers = ds.workers.assign(worker=ds.workers["worker"] + "-new")
    first = crowd.sample(ds.tasks, profiles=strangers, random_state=3)["label"].tolist()
    back = DigitalCrowd.load(crowd.save(tmp_path / "c"))
    assert back.sample(ds.tasks, profiles=strangers, random_state=3)["label"].tolist() == first
    off = DigitalCrowd(embedder="hashing", epochs=5, validation="workers", random_state=0, answer_mixture=False)
    assert off.fit(ds).mixture_ is None


def test_moving_real_answers_is_chosen_only_where_the_gap_is_real() -> None:
    """Two kinds of people answer every task one level apart; real answers are drawn from both, so only
    moving them by each person's gap gives a person their own level. Moving is chosen when the gaps are
    the true ones, and not when they are noise."""
    rng = np.random.default_rng(1)
    n_tasks, per_task = 200, 10
    ti = np.repeat(np.arange(n_tasks), per_task)
    high = rng.random(len(ti)) < 0.5
    codes = np.clip(rng.integers(1, 3, n_tasks)[ti] + high.astype(int), 0, 4)
    valid = rng.random(len(ti)) < 0.3
    levels = np.arange(1.0, 6.0)
    centre = np.bincount(ti[~valid], weights=high[~valid], minlength=n_tasks) / np.bincount(ti[~valid], minlength=n_tasks)
    flat = np.full((int(valid.sum()), 5), 0.2)  # the model's own answer is useless: only the real answers can win
    tasks = [f"t{i}" for i in range(n_tasks)]
    true_gaps = high[valid] - centre[ti[valid]]
    mix = AnswerMixture().fit(codes, ti, tasks, n_levels=5, valid=valid, model_probs=flat, gaps=true_gaps, levels=levels)
    assert mix.shift_ and mix.k_ <= 1.0  # ~7 real answers a task beat a flat model (w >= 7 / 8)
    noise = rng.permutation(true_gaps)
    mix = AnswerMixture().fit(codes, ti, tasks, n_levels=5, valid=valid, model_probs=flat, gaps=noise, levels=levels)
    assert not mix.shift_ and mix.k_ <= 1.0
    # too few validation answers to learn from: the model decides, whatever they say
    few = AnswerMixture(min_answers=10_000).fit(codes, ti, tasks, n_levels=5, valid=valid, model_probs=flat,
                                                gaps=true_gaps, levels=levels)
    assert few.k_ == max(few.grid) and not few.shift_


def test_a_moved_answer_keeps_the_gap_on_average() -> None:
    mix = AnswerMixture(k=0.0, shift=True).fit(np.array([1]), np.array([0]), ["a"], n_levels=5)  # one answer: 2
    rng = np.random.default_rng(0)
    codes = mix.mix(np.zeros(20_000, dtype=int), np.array(["a"] * 20_000), rng, gaps=np.full(20_000, 0.3),
                    levels=np.arange(1.0, 6.0))
    # level 2 moved by 0.3: level 3 three times in ten, else 2 (binomial sd of the share 0.003)
    assert set(codes.tolist()) == {1, 2} and abs((codes == 2).mean() - 0.3) < 0.015
