"""Calibrating the LLM reference to people's scale, on the training tasks only.

An LLM's ratings are rarely on its crowd's scale: our 1.5B model's expected offensiveness averages 3.6 on
texts people rate 1.9 on average, with a slope of about 0.4. The belief network can learn that mapping,
but it then spends its capacity (and its few epochs before early stopping) on it. A calibrator learns it
first, as a weighted ridge regression of each training task's mean answer on

- ``"linear"``: the reference features (``y_ref``, the answer distribution ``p_*``);
- ``"ridge"``: the reference features and the task's text embedding / attributes;

- ``"auto"``: both (only ``"ridge"`` without a reference), keeping the one with the lower out-of-fold
  error on the training tasks (``features_`` says which);

and the crowd uses the calibrated value as its ``y_ref`` (the raw reference stays an input of g_x).
Training tasks get *out-of-fold* predictions (``folds`` folds over tasks), so the belief network learns
to correct an honest base, not one that has already seen the answers. The ridge strength is chosen by
out-of-fold error from ``alphas``. Only for numeric labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crowdllm.errors import ConfigError

CALIBRATIONS = ("none", "linear", "ridge", "auto")


def weighted_ridge(X: np.ndarray, y: np.ndarray, w: np.ndarray, alphas: tuple[float, ...]
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Weighted ridge regressions of ``y`` (rows, or rows x outputs) on ``X`` with an unpenalised
    intercept, one ``(coef, intercept)`` per alpha: the weighted-centred problem's SVD is shared by every
    alpha (text embeddings and hidden states give more features than tasks)."""
    w = np.asarray(w, dtype=np.float64)
    xbar = w @ X / w.sum()
    ybar = w @ y / w.sum()
    sw = np.sqrt(w)
    u, sv, vt = np.linalg.svd((X - xbar) * sw[:, None], full_matrices=False)
    uty = u.T @ ((y - ybar) * (sw if y.ndim == 1 else sw[:, None]))
    out = []
    for alpha in alphas:
        d = sv / (sv ** 2 + alpha + 1e-9)
        beta = vt.T @ ((d if y.ndim == 1 else d[:, None]) * uty)
        out.append((beta, ybar - xbar @ beta))
    return out


class ReferenceCalibrator:
    def __init__(self, alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4), folds: int = 5,
                 random_state: int = 0) -> None:
        self.alphas = alphas
        self.folds = folds
        self.random_state = random_state

    def _standardised(self, X: np.ndarray) -> np.ndarray:
        """Features standardised by the training tasks' mean and spread (so one penalty suits a text
        embedding and a probability alike)."""
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_

    def fit(self, X: np.ndarray, y: np.ndarray, weights: np.ndarray) -> ReferenceCalibrator:
        """``X``: (tasks, features); ``y``: each task's mean answer (or its answer shares, one column per
        category); ``weights``: its number of answers."""
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        Z = self._standardised(X)
        y = np.asarray(y, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        if len(Z) < 2 * self.folds:
            raise ConfigError(f"reference calibration needs at least {2 * self.folds} training tasks")
        fold = np.random.default_rng(self.random_state).permutation(len(Z)) % self.folds
        best: tuple[float, float, np.ndarray] | None = None
        oofs = [np.empty(y.shape) for _ in self.alphas]
        for f in range(self.folds):
            test = fold == f
            for oof, (beta, b) in zip(oofs, weighted_ridge(Z[~test], y[~test], w[~test], tuple(self.alphas)),
                                      strict=True):
                oof[test] = Z[test] @ beta + b
        for alpha, oof in zip(self.alphas, oofs, strict=True):
            err = float(np.sum(w.reshape(-1, *[1] * (y.ndim - 1)) * (oof - y) ** 2) / w.sum())
            if best is None or err < best[0]:
                best = (err, alpha, oof)
        assert best is not None
        self.alpha_ = best[1]
        self.oof_ = best[2]
        self.oof_mse_ = best[0]
        beta, b = weighted_ridge(Z, y, w, (self.alpha_,))[0]
        self.coef_ = np.concatenate([beta, np.asarray(b)[None]], axis=0)  # the intercept last (the saved layout)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._standardised(X) @ self.coef_[:-1] + self.coef_[-1]

    def get_state(self) -> dict[str, Any]:
        return {"alpha": self.alpha_, "coef": self.coef_.tolist(), "oof_mse": self.oof_mse_,
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "features": getattr(self, "features_", None)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ReferenceCalibrator:
        cal = cls()
        cal.alpha_ = float(state["alpha"])
        cal.coef_ = np.asarray(state["coef"], dtype=np.float64)
        n = len(cal.coef_) - 1  # saved before standardising: mean 0, scale 1 is the same model
        cal.mean_ = np.asarray(state.get("mean", np.zeros(n)), dtype=np.float64)
        cal.scale_ = np.asarray(state.get("scale", np.ones(n)), dtype=np.float64)
        cal.oof_mse_ = float(state.get("oof_mse", float("nan")))
        if state.get("features") is not None:  # saved before "auto": the crowd's calibrate says which
            cal.features_ = str(state["features"])
        return cal
