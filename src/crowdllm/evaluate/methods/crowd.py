"""CrowdLLM, its LLM-free ablation ("VAE only") and the supervised text model, for the runner.

- ``crowdllm``: :class:`~crowdllm.crowd.DigitalCrowd` fitted with the LLM reference of every task
  (``options['reference']`` or asked of ``options['llm']``, see :mod:`._common`).
- ``vae-only``: the same crowd with no reference (``y_ref`` := the training mean).
- ``supervised-text``: the per-task label distribution predicted from the task's text embedding (+
  structured attributes) by an L2-regularised softmax regression, the regularisation chosen on held-out
  *training* tasks. It ignores who answers. The strongest cheap non-LLM baseline on unseen problems:
  CrowdLLM must beat it to justify its LLM calls.

Early stopping of the crowd uses a validation part of the training data that matches the split:
training people for the worker split, training tasks for the task split, both for the both split.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_softmax

from crowdllm.data.dataset import CrowdDataset
from crowdllm.evaluate.baselines import DistributionBaseline
from crowdllm.evaluate.methods._common import mapping_option, references
from crowdllm.evaluate.runner import ExperimentContext, register_method

VALIDATION_FOR_SPLIT = {"worker": "workers", "task": "tasks", "both": "both"}


class CrowdMethod:
    """A DigitalCrowd behind the runner's ``fit`` / ``sample`` interface."""

    def __init__(self, *, name: str = "crowdllm", use_reference: bool = True, dataset: str = "custom",
                 split: str = "worker", seed: int = 0, options: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.name = name
        self.use_reference = use_reference
        self.dataset = dataset
        self.split = split
        self.seed = seed
        self.options = options if options is not None else {}
        self.params = params or {}

    def _refs(self, tasks: pd.DataFrame, train: CrowdDataset | None = None) -> pd.DataFrame | None:
        if not self.use_reference:
            return None
        label = train.label if train is not None else self.crowd_.label_
        return references(tasks, label, self.options, dataset=self.dataset, seed=0)

    def fit(self, train: CrowdDataset) -> Self:
        from crowdllm.crowd import DigitalCrowd

        params = {"validation": VALIDATION_FOR_SPLIT.get(self.split, "both"), "random_state": self.seed,
                  "embedder": self.options.get("embedder", "auto"), **mapping_option(self.options, "crowd"),
                  **self.params}
        self.crowd_ = DigitalCrowd(**params).fit(train, reference=self._refs(train.tasks, train))
        return self

    def sample(self, tasks: pd.DataFrame, workers: pd.DataFrame, *, pairs: pd.DataFrame | None = None,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        out = self.crowd_.sample(tasks, profiles=workers, pairs=pairs, reference=self._refs(tasks),
                                 random_state=random_state, include_profile=False)
        return out.assign(task=out["task"].astype(str), worker=out["worker"].astype(str))


class SupervisedText(DistributionBaseline):
    """Per-task label distribution from the task embedding by L2-regularised softmax regression.

    Fitted on the training tasks' label histograms (soft targets, weighted by their number of
    responses); the L2 strength is chosen from ``alphas`` by the held-out log-likelihood on
    ``valid_fraction`` of the training tasks, then refitted on all of them. Top-k: the regression
    predicts each item's selection probability, and voters draw k items in proportion to it."""

    name = "supervised-text"

    def __init__(self, embedder: str = "auto", alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0),
                 valid_fraction: float = 0.2, random_state: int = 0) -> None:
        self.embedder = embedder
        self.alphas = alphas
        self.valid_fraction = valid_fraction
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _features(self, tasks: pd.DataFrame) -> np.ndarray:
        emb, meta = self.featurizer_.transform(tasks)
        return np.concatenate([emb, meta, np.ones((len(tasks), 1), dtype=np.float32)], axis=1).astype(np.float64)

    @staticmethod
    def _solve(X: np.ndarray, C: np.ndarray, alpha: float) -> np.ndarray:
        """Weights (d, L) minimising mean cross-entropy of count targets C + alpha * ||W||^2 (no bias penalty)."""
        n_total = C.sum()
        d, L = X.shape[1], C.shape[1]
        penal = np.ones((d, 1))
        penal[-1] = 0.0

        def f(w: np.ndarray) -> tuple[float, np.ndarray]:
            W = w.reshape(d, L)
            logp = log_softmax(X @ W, axis=1)
            loss = -(C * logp).sum() / n_total + alpha * float((penal * W ** 2).sum())
            P = np.exp(logp)
            grad = X.T @ (P * C.sum(axis=1, keepdims=True) - C) / n_total + 2 * alpha * penal * W
            return loss, grad.ravel()

        res = minimize(f, np.zeros(d * L), jac=True, method="L-BFGS-B", options={"maxiter": 500})
        return res.x.reshape(d, L)

    def _fit(self, train: CrowdDataset) -> None:
        from crowdllm.belief.embeddings import TaskFeaturizer, TextEmbedder

        tasks = train.tasks.reset_index(drop=True).assign(task=lambda f: f["task"].astype(str))
        self.featurizer_ = TaskFeaturizer(TextEmbedder(self.embedder)).fit(tasks)
        index = pd.Index(tasks["task"])
        ti = index.get_indexer(self.train_tasks_)
        codes = self.train_codes_.astype(int)
        C = np.zeros((len(tasks), len(self.levels_)))
        np.add.at(C, (ti, codes), 1.0)
        keep = C.sum(axis=1) > 0
        X = self._features(tasks)[keep]
        C = C[keep]
        rng = np.random.default_rng(self.random_state)
        held = rng.random(len(C)) < self.valid_fraction
        if held.sum() >= 5 and (~held).sum() >= 5 and len(self.alphas) > 1:
            scores = []
            for a in self.alphas:
                W = self._solve(X[~held], C[~held], a)
                ll = (C[held] * log_softmax(X[held] @ W, axis=1)).sum() / C[held].sum()
                scores.append(ll)
            self.alpha_ = float(self.alphas[int(np.argmax(scores))])
        else:
            self.alpha_ = float(self.alphas[len(self.alphas) // 2])
        self.W_ = self._solve(X, C, self.alpha_)

    def _task_probs(self, tasks: pd.DataFrame) -> pd.DataFrame:
        frame = tasks.drop_duplicates("task").reset_index(drop=True)
        P = np.exp(log_softmax(self._features(frame) @ self.W_, axis=1))
        return pd.DataFrame(P, index=frame["task"].astype(str))

    def _probabilities(self, pairs: pd.DataFrame, tasks: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        probs = self._task_probs(tasks).reindex(pairs["task"].astype(str))
        return probs.to_numpy(dtype=float)

    def sample(self, tasks: pd.DataFrame, workers: pd.DataFrame, *, pairs: pd.DataFrame | None = None,
               random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        self._tasks_for_weights = tasks
        return super().sample(tasks, workers, pairs=pairs, random_state=random_state)

    def _item_weights(self, pairs: pd.DataFrame, workers: pd.DataFrame) -> np.ndarray:
        probs = self._task_probs(self._tasks_for_weights)
        return probs.reindex(pairs["task"].astype(str))[1].to_numpy(dtype=float)


def _crowd(ctx: ExperimentContext, *, use_reference: bool, name: str) -> CrowdMethod:
    return CrowdMethod(name=name, use_reference=use_reference, dataset=ctx.dataset, split=ctx.split, seed=ctx.seed,
                       options=dict(ctx.options))


def _options_embedder(ctx: ExperimentContext) -> str:
    return str(ctx.options.get("embedder", "auto"))


register_method("crowdllm", lambda ctx: _crowd(ctx, use_reference=True, name="crowdllm"), needs_llm=True,
                label_kinds=("continuous", "ordinal", "categorical", "topk"),
                description="CrowdLLM: LLM reference + CVAE belief deviations + blender")
register_method("vae-only", lambda ctx: _crowd(ctx, use_reference=False, name="vae-only"),
                label_kinds=("continuous", "ordinal", "categorical", "topk"),
                description="CrowdLLM without the LLM: y_ref = training mean")
register_method("supervised-text",
                lambda ctx: SupervisedText(embedder=_options_embedder(ctx), random_state=ctx.seed),
                label_kinds=("continuous", "ordinal", "categorical", "topk"),
                description="per-task label distribution from the text embedding (regularised softmax regression)")
