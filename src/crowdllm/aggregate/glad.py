"""GLAD: labels from worker ability and task difficulty (Whitehill et al., NeurIPS 2009)."""

from __future__ import annotations

import contextlib
from typing import Self

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit

from crowdllm.aggregate._base import (
    Aggregator,
    Encoded,
    em_converged,
    normalize_log,
    per_task_counts,
    posterior_result,
    vote_shares,
)
from crowdllm.errors import ConfigError

try:  # L-BFGS-B calls BLAS on tiny vectors; extra BLAS threads only add contention there
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is a dependency; the fallback is just slower
    threadpool_limits = None


def _single_blas_thread() -> contextlib.AbstractContextManager[object]:
    if threadpool_limits is None:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class GLAD(Aggregator):
    """Worker ``w`` has ability ``alpha_w`` (any real; negative = adversarial); task ``t`` has
    ``beta_t = exp(b_t) > 0`` (large = easy). With ``K`` classes, a worker answers the true class with
    probability ``s = sigmoid(alpha_w * beta_t)`` and each of the ``K - 1`` wrong classes with
    probability ``(1 - s) / (K - 1)`` (``K = 2`` is the binary model of the paper; larger ``K`` is its
    multi-class extension, where labels are treated as unordered categories).

    The class prior ``rho`` is uniform and fixed (``class_prior="uniform"``, as in the paper) or
    re-estimated in each M-step as ``rho_c = mean_t q_t(c)`` (``class_prior="learned"``).

    EM, starting from the majority-vote shares as the posterior ``q_t(c)``, ``alpha = 1``, ``b = 0``:

    - E-step: ``q_t(c) ∝ rho_c * prod_{w answered t} P(y_wt | z_t = c, alpha_w, beta_t)``
    - M-step: ``(alpha, b)`` maximise the expected complete log-likelihood
      ``Q = sum_{(w,t)} [q_t(y_wt) log s + (1 - q_t(y_wt)) log((1 - s)/(K - 1))]`` plus Gaussian log-priors
      ``alpha_w ~ N(alpha_prior_mean, 1)`` and ``b_t ~ N(0, 1)``, by L-BFGS (``scipy.optimize.minimize``)
      with the analytic gradient ``dQ/d(alpha_w beta_t) = q_t(y_wt) - s``.

    until the objective improves by less than ``tol`` (relative) or ``n_iter`` rounds. The answer is
    ``argmax_c q_t(c)`` (ties -> lowest label).

    Attributes after ``fit``: ``labels_``, ``probas_``, ``alphas_`` (Series by worker), ``betas_``
    (Series by task, ``beta_t``), ``priors_``, ``n_iter_``.
    """

    name = "glad"

    def __init__(self, n_iter: int = 100, tol: float = 1e-5, alpha_prior_mean: float = 1.0,
                 m_step_iter: int = 25, class_prior: str = "uniform") -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.alpha_prior_mean = alpha_prior_mean
        self.m_step_iter = m_step_iter
        self.class_prior = class_prior

    def fit(self, responses: pd.DataFrame) -> Self:
        if self.class_prior not in ("uniform", "learned"):
            raise ConfigError(f"GLAD class_prior must be 'uniform' or 'learned', got '{self.class_prior}'")
        enc = self._encoded(responses)
        if enc is None:
            return self
        post = vote_shares(per_task_counts(enc))
        alpha = np.full(enc.n_workers, float(self.alpha_prior_mean))
        b = np.zeros(enc.n_tasks)
        priors = np.full(enc.n_classes, 1.0 / enc.n_classes)
        with _single_blas_thread():
            alpha, b, priors, post, n_done = self._em(enc, post, alpha, b, priors)
        self.priors_ = pd.Series(priors, index=list(enc.classes), name="prior")
        self.alphas_ = pd.Series(alpha, index=enc.workers.copy(), name="alpha")
        self.betas_ = pd.Series(np.exp(b), index=enc.tasks.copy(), name="beta")
        self.probas_, self.labels_ = posterior_result(enc, post)
        self.n_iter_ = n_done
        return self

    def _em(self, enc: Encoded, post: np.ndarray, alpha: np.ndarray, b: np.ndarray,
            priors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        objective = -np.inf
        n_done = 0
        if enc.n_classes < 2:
            return alpha, b, priors, post, n_done
        for n_done in range(1, self.n_iter + 1):  # noqa: B007 - n_done is reported after the loop
            if self.class_prior == "learned":
                priors = np.clip(post.mean(axis=0), 1e-12, None)
                priors /= priors.sum()
            alpha, b = self._m_step(enc, post, alpha, b)
            post, loglik = self._e_step(enc, priors, alpha, b)
            new_objective = loglik - 0.5 * np.sum((alpha - self.alpha_prior_mean) ** 2) - 0.5 * np.sum(b ** 2)
            converged = em_converged(objective, new_objective, self.tol)
            objective = new_objective
            if converged:
                break
        return alpha, b, priors, post, n_done

    @staticmethod
    def _log_probs(enc: Encoded, alpha: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per response: log P(answer is right), log P(one given wrong class)."""
        x = alpha[enc.w] * np.exp(b[enc.t])
        log_right = -np.logaddexp(0.0, -x)
        log_wrong = -np.logaddexp(0.0, x) - np.log(enc.n_classes - 1)
        return log_right, log_wrong

    def _e_step(self, enc: Encoded, priors: np.ndarray, alpha: np.ndarray,
                b: np.ndarray) -> tuple[np.ndarray, float]:
        log_right, log_wrong = self._log_probs(enc, alpha, b)
        logp = np.log(priors)[None, :] + np.bincount(enc.t, weights=log_wrong, minlength=enc.n_tasks)[:, None]
        logp = logp + per_task_counts(enc, weights=log_right - log_wrong)
        return normalize_log(logp)

    def _m_step(self, enc: Encoded, post: np.ndarray, alpha: np.ndarray,
                b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = post[enc.t, enc.k]  # posterior that each given answer is the true class
        n_w = enc.n_workers
        mu = float(self.alpha_prior_mean)
        log_k1 = np.log(enc.n_classes - 1)

        def negative_q(params: np.ndarray) -> tuple[float, np.ndarray]:
            a, bb = params[:n_w], params[n_w:]
            beta = np.exp(bb)
            x = a[enc.w] * beta[enc.t]
            value = np.sum(q * -np.logaddexp(0.0, -x) + (1.0 - q) * (-np.logaddexp(0.0, x) - log_k1))
            value -= 0.5 * np.sum((a - mu) ** 2) + 0.5 * np.sum(bb ** 2)
            g = q - expit(x)  # dQ/dx per response
            grad_a = np.bincount(enc.w, weights=g * beta[enc.t], minlength=n_w) - (a - mu)
            grad_b = np.bincount(enc.t, weights=g * x, minlength=enc.n_tasks) - bb
            return -value, -np.concatenate([grad_a, grad_b])

        res = minimize(negative_q, np.concatenate([alpha, b]), jac=True, method="L-BFGS-B",
                       options={"maxiter": self.m_step_iter})
        return res.x[:n_w].copy(), res.x[n_w:].copy()
