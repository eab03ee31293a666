"""LLM-only methods of the CrowdLLM paper (Sec. 5.1.3), behind the runner's ``fit`` / ``sample``.

Every virtual person is the same LLM; the methods differ in how it is asked.

- ``llm-zero-shot``: one answer per task, the same for everyone who answers it. On a backend with
  log-probabilities the answer is the argmax of the answer distribution after the forced
  ``"Rating: "`` prefix -- exactly what greedy decoding with that prefix gives -- read from the one
  log-prob call the CrowdLLM reference already makes. Without log-probs: one generation at
  temperature 0, parsed. Top-k votes: one ballot at temperature 0, cast by every voter.
- ``llm-self-consistency``: the majority of ``k`` = 8 answers at temperature 0.5, one decision per task.
  On a log-prob backend the ``k`` answers are drawn from the temperature-0.5 answer distribution
  (``p^(1/0.5)``, renormalised) -- exact for the answer token; without log-probs they are ``k`` real
  generations. Top-k votes: ``k`` ballots at temperature 0.5, items ranked by how many ballots name them.
- ``llm-multi-persona``: one LLM call per (task, virtual person) with that person's profile in the
  prompt (the paper's persona sentence); the person's answer is the most likely one (greedy). Its cost
  grows with the crowd, so it has a call budget (``options["persona_budget"]``, default 300 calls per
  fit): pairs beyond the budget take the answer of another asked person on the same task, or the
  zero-shot answer when nobody was asked about it. Top-k votes: one persona ballot per voter.

All calls go through the backend's disk cache, so a rerun makes none.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Self

import numpy as np
import pandas as pd

from crowdllm._io import rng as make_rng
from crowdllm.crowd.kinds import CrowdKind, crowd_kind, kind_of
from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.errors import ConfigError
from crowdllm.evaluate.baselines import all_pairs
from crowdllm.evaluate.methods._common import (
    DEFAULT_PERSONA_BUDGET,
    default_template,
    int_option,
    references,
)
from crowdllm.evaluate.runner import ExperimentContext, register_method

SC_TEMPERATURE = 0.5


def _choices(label: LabelSpec) -> list[str]:
    return crowd_kind(label).prompt_choices(label)


def _label_value(label: LabelSpec, choice: str | None) -> Any:
    return crowd_kind(label).answer_value(choice)


class _LLMMethod:
    name = "llm"

    def __init__(self, *, dataset: str = "custom", seed: int = 0, options: dict[str, Any] | None = None,
                 k: int = 8) -> None:
        self.dataset = dataset
        self.seed = seed
        self.options = options if options is not None else {}
        self.k = k

    @property
    def llm(self) -> Any:
        llm = self.options.get("llm")
        if llm is None:
            raise ConfigError(f"method '{self.name}' needs an LLM backend (options['llm'])")
        return llm

    def fit(self, train: CrowdDataset) -> Self:
        if kind_of(train.label) is None:
            raise ConfigError(f"method '{self.name}' cannot score free-text labels")
        self.label_ = train.label
        return self

    @property
    def kind_(self) -> CrowdKind:
        return crowd_kind(self.label_)

    def _pairs(self, tasks: pd.DataFrame, workers: pd.DataFrame, pairs: pd.DataFrame | None) -> pd.DataFrame:
        pairs = all_pairs(tasks, workers) if pairs is None else pairs
        return pd.DataFrame({"task": pairs["task"].astype(str).to_numpy(),
                             "worker": pairs["worker"].astype(str).to_numpy()})

    def _uses_logprobs(self) -> bool:
        return bool(getattr(self.llm, "supports_logprobs", False))

    def _distribution(self, tasks: pd.DataFrame) -> pd.DataFrame:
        """Per task, the answer distribution over the choices from the one log-prob call."""
        refs = references(tasks, self.label_, self.options, dataset=self.dataset, strategy="logprob")
        cols = [f"p_{c}" for c in _choices(self.label_)]
        missing = [c for c in cols if c not in refs.columns]
        if missing:
            raise ConfigError(f"log-prob references have no column {missing[0]}")
        return refs[cols].set_axis(_choices(self.label_), axis=1)

    def _ballot_counts(self, tasks: pd.DataFrame, strategy: str, k: int) -> pd.Series:
        refs = references(tasks, self.label_, self.options, dataset=self.dataset, strategy=strategy, k=k)
        return refs["y_ref"].astype(float).fillna(0.0)

    def _topk_same_ballot(self, out: pd.DataFrame, score: pd.Series, rng: np.random.Generator) -> np.ndarray:
        """Every voter picks the k items with the highest score (ties broken at random, per voter)."""
        k = int(self.label_.k or 1)
        labels = np.zeros(len(out), dtype=int)
        for _, rows in out.groupby("worker", sort=False).indices.items():
            s = score.reindex(out["task"].to_numpy()[rows]).to_numpy(dtype=float)
            keys = np.nan_to_num(s, nan=-1.0) + 1e-9 * rng.random(len(rows))
            labels[rows[np.argsort(-keys, kind="stable")[:k]]] = 1
        return labels


class ZeroShotLLM(_LLMMethod):
    name = "llm-zero-shot"

    def task_answers(self, tasks: pd.DataFrame) -> pd.Series:
        """The zero-shot answer per task (index: task id)."""
        if self._uses_logprobs():
            dist = self._distribution(tasks)
            ok = dist.notna().all(axis=1)
            answers = dist.fillna(-1.0).idxmax(axis=1).where(ok)
        else:
            refs = references(tasks, self.label_, self.options, dataset=self.dataset, strategy="zero-shot", k=1)
            col = "y_majority" if "y_majority" in refs.columns else "y_ref"
            answers = refs[col]
            if not self.kind_.names_answers:
                answers = answers.map(lambda v: str(int(v)) if pd.notna(v) else None)
        return answers.map(lambda c: _label_value(self.label_, c))

    def sample(self, tasks: pd.DataFrame, workers: pd.DataFrame, *, pairs: pd.DataFrame | None = None,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        out = self._pairs(tasks, workers, pairs)
        if self.kind_.votes:
            out["label"] = self._topk_same_ballot(out, self._ballot_counts(tasks, "zero-shot", 1),
                                                  make_rng(random_state))
            return out
        out["label"] = self.task_answers(tasks).reindex(out["task"]).to_numpy()
        return out


class SelfConsistencyLLM(_LLMMethod):
    name = "llm-self-consistency"

    def sample(self, tasks: pd.DataFrame, workers: pd.DataFrame, *, pairs: pd.DataFrame | None = None,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        out = self._pairs(tasks, workers, pairs)
        rng = make_rng(random_state)
        if self.kind_.votes:
            out["label"] = self._topk_same_ballot(out, self._ballot_counts(tasks, "self-consistency", self.k), rng)
            return out
        choices = _choices(self.label_)
        if self._uses_logprobs():
            dist = self._distribution(tasks)
            answers = {}
            for task, p in dist.iterrows():
                p = p.to_numpy(dtype=float)
                if not np.isfinite(p).all() or p.sum() <= 0:
                    answers[task] = np.nan
                    continue
                pt = p ** (1.0 / SC_TEMPERATURE)
                draws = rng.choice(len(choices), size=self.k, p=pt / pt.sum())
                answers[task] = _label_value(self.label_, choices[_majority_index(draws, self.label_)])
            series = pd.Series(answers)
        else:
            refs = references(tasks, self.label_, self.options, dataset=self.dataset, strategy="self-consistency",
                              k=self.k)
            series = refs["y_ref"].map(lambda v: _label_value(self.label_, v if self.kind_.names_answers
                                                               else (str(int(v)) if pd.notna(v) else None)))
        out["label"] = series.reindex(out["task"]).to_numpy()
        return out


def _majority_index(draws: np.ndarray, label: LabelSpec) -> int:
    """Most frequent draw; ties go to the one nearest the mean (ratings), then the smaller."""
    counts = Counter(int(d) for d in draws)
    top = max(counts.values())
    tied = [d for d, c in counts.items() if c == top]
    mean = float(np.mean(draws)) if not crowd_kind(label).names_answers else 0.0
    return min(tied, key=lambda d: (abs(d - mean), d))


class MultiPersonaLLM(_LLMMethod):
    name = "llm-multi-persona"

    def __init__(self, *, budget: int = DEFAULT_PERSONA_BUDGET, **kw: Any) -> None:
        super().__init__(**kw)
        self.budget = budget

    def sample(self, tasks: pd.DataFrame, workers: pd.DataFrame, *, pairs: pd.DataFrame | None = None,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        out = self._pairs(tasks, workers, pairs)
        rng = make_rng(random_state)
        profiles = workers.drop_duplicates("worker").assign(worker=lambda f: f["worker"].astype(str))
        if self.kind_.votes:
            out["label"] = self._topk_persona_ballots(out, tasks, profiles, rng)
            return out
        from crowdllm.llm.reference import persona_choice_probs

        unique = out.drop_duplicates()
        asked = unique if len(unique) <= self.budget else unique.iloc[
            np.sort(rng.choice(len(unique), size=self.budget, replace=False))]
        self.calls_ = len(asked)
        probs = persona_choice_probs(self.llm, tasks, profiles, pairs=asked, kind=self.kind_.reference_kind,
                                     template=default_template(self.dataset, self.options), progress=False,
                                     seed=0, **self.kind_.reference_args(self.label_))
        cols = [f"p_{c}" for c in _choices(self.label_)]
        p = probs[cols].to_numpy(dtype=float)
        ok = np.isfinite(p).all(axis=1)
        best = np.asarray(_choices(self.label_), dtype=object)[np.argmax(np.nan_to_num(p, nan=-1.0), axis=1)]
        probs["answer"] = [(_label_value(self.label_, b) if good else np.nan) for b, good in zip(best, ok, strict=True)]
        answer = probs.set_index(["task", "worker"])["answer"]
        key = pd.MultiIndex.from_frame(out[["task", "worker"]])
        labels = answer.reindex(key).to_numpy(dtype=object)
        todo = pd.isna(pd.Series(labels)).to_numpy()
        if todo.any():
            by_task = probs.dropna(subset=["answer"]).groupby("task")["answer"].apply(list)
            fallback: pd.Series | None = None
            for i in np.flatnonzero(todo):
                pool = by_task.get(out["task"].iat[i])
                if pool:
                    labels[i] = pool[int(rng.integers(len(pool)))]
                else:
                    if fallback is None:
                        zero = ZeroShotLLM(dataset=self.dataset, options=self.options)
                        zero.label_ = self.label_
                        fallback = zero.task_answers(tasks)
                    labels[i] = fallback.get(out["task"].iat[i], np.nan)
        out["label"] = labels if self.kind_.names_answers else labels.astype(float)
        return out

    def _topk_persona_ballots(self, out: pd.DataFrame, tasks: pd.DataFrame, profiles: pd.DataFrame,
                              rng: np.random.Generator) -> np.ndarray:
        from crowdllm.llm.parsing import parse_topk
        from crowdllm.llm.prompts import build_prompt, get_template
        from crowdllm.llm.reference import item_lines

        k = int(self.label_.k or 1)
        frame = tasks.drop_duplicates("task").assign(task=lambda f: f["task"].astype(str))
        lines = item_lines(frame)
        ids = frame["task"].tolist()
        tpl = get_template("topk", default_template(self.dataset, self.options))
        voters = list(dict.fromkeys(out["worker"]))
        asked = voters if len(voters) <= self.budget else list(rng.choice(voters, size=self.budget, replace=False))
        self.calls_ = len(asked)
        by_worker = {w: {c: v for c, v in row.items() if c != "worker"} for w, row in
                     zip(profiles["worker"], profiles.to_dict("records"), strict=True)}
        prompts = [build_prompt(None, kind="topk", template=tpl, items=lines, k=k, persona=by_worker.get(w))
                   for w in asked]
        ballots: dict[str, list[str]] = {}
        comps = self.llm.generate(prompts, n=1, temperature=0.0, max_tokens=48, seed=0)
        for w, c in zip(asked, comps, strict=True):
            picked = parse_topk(tpl.answer_prefix + c[0].text, ids, k) if c[0].error is None else None
            if picked is not None:
                ballots[w] = picked
        zero = None
        labels = np.zeros(len(out), dtype=int)
        for w, rows in out.groupby("worker", sort=False).indices.items():
            ballot = ballots.get(w)
            if ballot is None and ballots:
                ballot = list(ballots.values())[int(rng.integers(len(ballots)))]
            if ballot is None:
                if zero is None:
                    zero = self._ballot_counts(tasks, "zero-shot", 1)
                score = zero.reindex(out["task"].to_numpy()[rows]).to_numpy(dtype=float)
                keys = np.nan_to_num(score, nan=-1.0) + 1e-9 * rng.random(len(rows))
                labels[rows[np.argsort(-keys, kind="stable")[:k]]] = 1
                continue
            chosen = set(ballot)
            labels[rows] = [int(t in chosen) for t in out["task"].to_numpy()[rows]]
        return labels


def _factory(cls: type[_LLMMethod], **kw: Any) -> Any:
    def make(ctx: ExperimentContext) -> _LLMMethod:
        extra = dict(kw)
        if cls is MultiPersonaLLM:
            extra["budget"] = int_option(ctx.options, "persona_budget", DEFAULT_PERSONA_BUDGET)
        return cls(dataset=ctx.dataset, seed=ctx.seed, options=dict(ctx.options), **extra)

    return make


_KINDS = ("continuous", "ordinal", "categorical", "topk")
register_method("llm-zero-shot", _factory(ZeroShotLLM), needs_llm=True, label_kinds=_KINDS,
                description="one LLM answer per task (greedy / argmax after the answer prefix)")
register_method("llm-self-consistency", _factory(SelfConsistencyLLM), needs_llm=True, label_kinds=_KINDS,
                description="majority of 8 answers at temperature 0.5")
register_method("llm-multi-persona", _factory(MultiPersonaLLM), needs_llm=True, label_kinds=_KINDS,
                description="one LLM call per (task, person) with the persona in the prompt (call budget)")
