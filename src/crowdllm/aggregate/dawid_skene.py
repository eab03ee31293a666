"""Dawid-Skene: EM over one confusion matrix per worker (Dawid & Skene, 1979)."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from crowdllm.aggregate._base import (
    Aggregator,
    Encoded,
    em_converged,
    normalize_log,
    per_task_counts,
    posterior_result,
    vote_shares,
)


class DawidSkene(Aggregator):
    """Each task ``t`` has a hidden true class ``z_t`` with prior ``rho``; worker ``w`` answers ``l``
    given ``z_t = c`` with probability ``pi_w[c, l]`` (a K x K confusion matrix per worker).

    EM, starting from the majority-vote shares as the posterior ``q_t(c)``:

    - M-step: ``rho_c = mean_t q_t(c)``;
      ``pi_w[c, l] = (smoothing + sum_{t: y_wt = l} q_t(c)) / (K * smoothing + sum_{t answered by w} q_t(c))``
    - E-step: ``q_t(c) ∝ rho_c * prod_{w answered t} pi_w[c, y_wt]``

    until the log-likelihood ``sum_t log sum_c rho_c prod_w pi_w[c, y_wt]`` improves by less than
    ``tol`` (relative), or ``n_iter`` rounds. ``smoothing`` is a small pseudo-count that keeps every
    probability positive. The answer is ``argmax_c q_t(c)`` (ties -> lowest label).

    Attributes after ``fit``: ``labels_``, ``probas_`` (tasks x classes), ``errors_`` (array
    workers x K x K, ``errors_[w, c, l] = pi_w[c, l]``), ``priors_`` (Series over classes),
    ``workers_`` (Index of worker ids for ``errors_``), ``loglik_`` and ``n_iter_``.
    """

    name = "ds"

    def __init__(self, n_iter: int = 100, tol: float = 1e-5, smoothing: float = 0.01) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing

    def fit(self, responses: pd.DataFrame) -> Self:
        enc = self._encoded(responses)
        if enc is None:
            return self
        post = vote_shares(per_task_counts(enc))
        loglik = -np.inf
        n_done = 0
        priors = post.mean(axis=0)
        errors = np.ones((enc.n_workers, enc.n_classes, enc.n_classes)) / enc.n_classes
        for n_done in range(1, self.n_iter + 1):  # noqa: B007 - n_done is reported after the loop
            priors, errors = self._m_step(enc, post)
            post, new_loglik = self._e_step(enc, priors, errors)
            converged = em_converged(loglik, new_loglik, self.tol)
            loglik = new_loglik
            if converged:
                break
        self.priors_ = pd.Series(priors, index=list(enc.classes), name="prior")
        self.errors_ = errors
        self.workers_ = enc.workers.copy()
        self.probas_, self.labels_ = posterior_result(enc, post)
        self.loglik_ = float(loglik)
        self.n_iter_ = n_done
        return self

    def _m_step(self, enc: Encoded, post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_classes = enc.n_classes
        priors = post.mean(axis=0)
        priors = np.clip(priors, 1e-12, None)
        priors /= priors.sum()
        flat = enc.w * n_classes + enc.k  # (worker, given label)
        counts = np.empty((enc.n_workers, n_classes, n_classes))
        weights = post[enc.t]  # (N, K): posterior of the true class for each response's task
        for c in range(n_classes):
            counts[:, c, :] = np.bincount(flat, weights=weights[:, c],
                                          minlength=enc.n_workers * n_classes).reshape(enc.n_workers, n_classes)
        counts += self.smoothing
        errors = counts / counts.sum(axis=2, keepdims=True)
        return priors, errors

    @staticmethod
    def _e_step(enc: Encoded, priors: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, float]:
        log_err = np.log(errors)
        contrib = log_err[enc.w, :, enc.k]  # (N, K): log pi_w[c, y] for every true class c
        logp = np.tile(np.log(priors), (enc.n_tasks, 1))
        for c in range(enc.n_classes):
            logp[:, c] += np.bincount(enc.t, weights=contrib[:, c], minlength=enc.n_tasks)
        return normalize_log(logp)
