"""One object per label kind: everything about the crowd model that differs by kind lives here.

Each class extends the label kind of :mod:`crowdllm.data.kinds` (what a kind *is*: numeric, on
levels, votes, what the LLM is asked) with the crowd model's behaviour, so a crowd kind answers both.
A kind knows how its labels are encoded, how the LLM reference becomes the *base* the belief
deviation is added to (model units), the residuals and shrinkage of the task memory, the prediction
loss of the belief model, which blenders fit it and how answers are blended. The rest of the crowd
package asks the kind (``kind.base(...)``) instead of testing a string.

- :class:`NumericKind` (:class:`ContinuousKind`, :class:`OrdinalKind`): labels standardised by the training mean and
  standard deviation; the base is the standardised reference; squared-error loss.
- :class:`CategoricalKind`: labels are category codes; the base is the reference's log-probabilities;
  cross-entropy loss; a softmax blender.
- :class:`TopKKind` (top-k votes): the base is the logit of the item's selection probability;
  binary cross-entropy; each voter's k choices are drawn together (Gumbel-top-k).

>>> from crowdllm.data.dataset import LabelSpec
>>> kind = crowd_kind(LabelSpec("ordinal", scale=(1, 5)))
>>> kind.name, kind.loss, kind.blenders[0], kind.choice_names(LabelSpec("ordinal", scale=(1, 3)))
('ordinal', 'mse', 'ordinal', ['1', '2', '3'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from crowdllm.blend import Blender, make_blender
from crowdllm.crowd.memory import group_means
from crowdllm.crowd.twins import person_offsets
from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.data.kinds import CategoricalLabels, ContinuousLabels, Kind, OrdinalLabels, TopKVotes
from crowdllm.errors import ConfigError

if TYPE_CHECKING:
    from crowdllm.crowd.state import CrowdState


def _choice_name(level: float | str) -> str:
    if isinstance(level, (float, np.floating)) and float(level).is_integer():
        return str(int(level))
    return str(level)


def _softmax(z: np.ndarray) -> np.ndarray:
    q = np.exp(z - z.max(axis=1, keepdims=True))
    return q / q.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class CrowdKind(Kind):
    """What the crowd model does differently for one label kind (subclasses fill it in).

    The flags of :class:`~crowdllm.data.kinds.Kind` (``rating``, ``votes``, ``names_answers`` (the
    reference names an answer, ``y_ref`` keeps strings), ``reference_kind``, ...) come from the label
    kind each subclass extends."""

    loss: ClassVar[str] = "mse"  # the belief model's prediction loss
    blenders: ClassVar[tuple[str, ...]] = ()  # the blenders that fit this kind; the first is the default
    #: the reference can be calibrated to the crowd's scale (:mod:`crowdllm.belief.calibration`)
    calibratable: ClassVar[bool] = False

    def calibration_target(self, state: CrowdState, y: np.ndarray, ti: np.ndarray, wi: np.ndarray,
                           n_tasks: int) -> np.ndarray:
        """Per task what the reference calibration predicts: its mean answer in model units (numeric),
        each answer less its person's own offset, so that who happened to rate a task does not move it."""
        z = (y - state.center) / state.scale
        z = z - person_offsets(z, ti, wi, n_tasks)
        return group_means(ti, z, n_tasks)

    def calibrated(self, pred: np.ndarray) -> np.ndarray:
        """The base ``(n, out)`` from the calibration's predictions."""
        return np.asarray(pred, dtype=float).reshape(len(pred), -1)
    #: expected decisions report the spread of the belief deviation (``delta_sd``)
    has_spread: ClassVar[bool] = False
    #: known people's twins are their own answer shares, a logit offset (:mod:`.choice_twins`)
    choice_twins: ClassVar[bool] = False

    # ------------------------------------------------------------------ labels and the reference
    def choice_names(self, label: LabelSpec) -> list[str]:
        """Names of the reference distribution's choices (``p_<name>`` columns); none by default."""
        return []

    def encode(self, dataset: CrowdDataset, labels: pd.Series) -> np.ndarray:
        """Response labels as the numbers the model is trained on."""
        return labels.to_numpy(dtype=float)

    def fit_scale(self, state: CrowdState, y: np.ndarray, responses: pd.DataFrame) -> None:
        """Set ``center``, ``scale`` and ``ref_default`` (the VAE-only reference) on ``state``."""
        raise NotImplementedError

    def keep_p_columns(self, found: list[str], wanted: list[str]) -> list[str]:
        """The reference distribution columns to feed the network: all wanted ones, or none."""
        return found if len(found) == len(wanted) else []

    def reference_fill(self, y_ref: np.ndarray, ref_default: float) -> float:
        """What a task with a missing reference gets: the mean of the known ones."""
        return float(np.nanmean(y_ref)) if np.isfinite(y_ref).any() else ref_default

    def parse_reference(self, y_ref: pd.Series, state: CrowdState) -> pd.Series:
        return y_ref

    def base(self, state: CrowdState, ref: pd.DataFrame, y_ref: np.ndarray) -> np.ndarray:
        """The reference in model units, ``(n, out)``: what the belief deviation is added to."""
        raise NotImplementedError

    # ------------------------------------------------------------------ training targets, memory
    def targets(self, state: CrowdState, y: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(prediction target, encoder target) in model units for labels ``y`` on rows with ``base``."""
        raise NotImplementedError

    def residuals(self, state: CrowdState, pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(residuals ``(n, out)``, model probabilities) of labels ``y`` given predictions ``pred``."""
        raise NotImplementedError

    def offsets(self, sums: np.ndarray, n: np.ndarray, kappa: float, q: np.ndarray, ti: np.ndarray
                ) -> np.ndarray:
        """Per-task offsets from residual ``sums`` over ``n`` answers (model probabilities ``q`` of rows
        on tasks ``ti``) shrunk with ``kappa``."""
        return self.shrink(sums, n, kappa, None)

    def shrink(self, sums: np.ndarray, n: np.ndarray, kappa: float, qbar: np.ndarray | None) -> np.ndarray:
        """The task memory's shrinkage: offsets from residual ``sums`` over ``n`` answers, given the
        model's mean answer ``qbar`` per task (unused for numbers). Mixing real answers into new tasks
        (:func:`crowdllm.study.sample.mix_real`) uses the same step."""
        return sums / (n + kappa)[:, None]

    def to_label_units(self, state: CrowdState, z: np.ndarray) -> np.ndarray:
        return z

    def reference_out(self, y_ref: np.ndarray, fill: float) -> np.ndarray:
        """``y_ref`` as reported by ``expected_decisions`` (missing ones filled)."""
        num = pd.to_numeric(pd.Series(y_ref), errors="coerce").to_numpy(dtype=float)
        return np.where(np.isfinite(num), num, fill)

    # ------------------------------------------------------------------ blending
    def make_blender(self, label: LabelSpec, name: str | None, noise: float | None, factor: float) -> Blender:
        name = name or self.blenders[0]
        if name not in self.blenders:
            raise ConfigError(f"blender '{name}' does not fit a {self.name} label (use one of: "
                              f"{', '.join(self.blenders)})")
        return make_blender(name, label, noise, factor)

    def blender_data(self, mu: np.ndarray, y: np.ndarray, ti: np.ndarray, wi: np.ndarray, n_tasks: int,
                     n_workers: int) -> tuple[np.ndarray, np.ndarray]:
        """(mu, y) in the shapes the blender's ``fit`` takes."""
        return mu[:, 0], y

    def blend(self, blender: Blender, mu: np.ndarray, ti: np.ndarray, wi: np.ndarray, n_tasks: int,
              n_workers: int, rng: np.random.Generator, row_noise: np.ndarray | None) -> np.ndarray:
        """One answer per (task ``ti``, worker ``wi``) row from expected decisions ``mu``."""
        return blender.sample(mu[:, 0], rng)

    def check_pairs(self, pairs: pd.DataFrame | None, n_tasks: int, n_workers: int) -> pd.DataFrame | None:
        return pairs


class NumericKind(CrowdKind):
    """Continuous and ordinal labels: the model works on the standardised label."""

    calibratable = True
    has_spread = True

    def choice_names(self, label: LabelSpec) -> list[str]:
        return [_choice_name(v) for v in label.levels] if self.on_levels else []

    def fit_scale(self, state: CrowdState, y: np.ndarray, responses: pd.DataFrame) -> None:
        state.center = float(np.mean(y))
        state.scale = float(np.std(y)) or 1.0
        state.ref_default = state.center

    def base(self, state: CrowdState, ref: pd.DataFrame, y_ref: np.ndarray) -> np.ndarray:
        return ((y_ref - state.center) / state.scale)[:, None]

    def targets(self, state: CrowdState, y: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = (y - state.center) / state.scale
        return t.astype(np.float32), (t - base[:, 0])[:, None].astype(np.float32)

    def residuals(self, state: CrowdState, pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((y - state.center) / state.scale - pred[:, 0])[:, None], pred

    def to_label_units(self, state: CrowdState, z: np.ndarray) -> np.ndarray:
        return z * state.scale + state.center

    def blend(self, blender: Blender, mu: np.ndarray, ti: np.ndarray, wi: np.ndarray, n_tasks: int,
              n_workers: int, rng: np.random.Generator, row_noise: np.ndarray | None) -> np.ndarray:
        if row_noise is not None:  # per-task ordinal noise
            return blender.sample(mu[:, 0], rng, sigma=row_noise)  # type: ignore[call-arg]
        return blender.sample(mu[:, 0], rng)


class ContinuousKind(NumericKind, ContinuousLabels):
    """Any real number: answers drawn around the expected decision."""

    blenders = ("normal",)


class OrdinalKind(NumericKind, OrdinalLabels):
    """A rating on the levels low..high: the reference distribution has one column per level."""

    blenders = ("ordinal", "round", "normal")


class CategoricalKind(CrowdKind, CategoricalLabels):
    """One of C categories: the model works on logits (the reference's log-probabilities + delta)."""

    loss = "ce"
    blenders = ("softmax",)
    choice_twins = True

    def choice_names(self, label: LabelSpec) -> list[str]:
        assert label.categories is not None
        return list(label.categories)

    def encode(self, dataset: CrowdDataset, labels: pd.Series) -> np.ndarray:
        return dataset.label_codes(labels).astype(np.int64)

    def fit_scale(self, state: CrowdState, y: np.ndarray, responses: pd.DataFrame) -> None:
        state.center, state.scale = 0.0, 1.0
        dist = np.bincount(y, minlength=len(self.choice_names(state.label))).astype(float) + 0.5
        state.global_dist = dist / dist.sum()
        state.ref_default = float(np.argmax(state.global_dist))

    def reference_fill(self, y_ref: np.ndarray, ref_default: float) -> float:
        return ref_default  # the most common training answer, never a mean of category codes

    def parse_reference(self, y_ref: pd.Series, state: CrowdState) -> pd.Series:
        """The answer each reference names, as its position; a number is a name too (a CSV reads "3" back
        as 3.0), and a name that is not an answer reads as missing. Without a reference (VAE only) the
        default already is the most common answer's position."""
        if not state.has_reference:
            return y_ref
        lookup = {c: float(i) for i, c in enumerate(self.choice_names(state.label))}
        return y_ref.map(lambda v: lookup.get(_choice_name(v), np.nan) if pd.notna(v) else np.nan)

    calibratable = True

    def calibration_target(self, state: CrowdState, y: np.ndarray, ti: np.ndarray, wi: np.ndarray,
                           n_tasks: int) -> np.ndarray:
        """Per task its answer shares (one column per category)."""
        counts = np.zeros((n_tasks, len(self.choice_names(state.label))))
        np.add.at(counts, (ti, y), 1.0)
        return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)

    def calibrated(self, pred: np.ndarray) -> np.ndarray:
        """Predicted shares -> log-probabilities (floored at 1e-3 and renormalised: a ridge can go below 0)."""
        p = np.clip(np.asarray(pred, dtype=float), 1e-3, None)
        return np.log(p / p.sum(axis=1, keepdims=True))

    def base(self, state: CrowdState, ref: pd.DataFrame, y_ref: np.ndarray) -> np.ndarray:
        return np.log(np.clip(self._probs(state, ref, y_ref), 1e-4, 1.0))

    def _probs(self, state: CrowdState, ref: pd.DataFrame, y_ref: np.ndarray) -> np.ndarray:
        """The reference distribution: ``p_*`` columns, else 0.9 on the reference answer."""
        C = len(self.choice_names(state.label))
        assert state.global_dist is not None
        if state.p_columns and len(state.p_columns) == C:
            p = ref.reindex(columns=state.p_columns).to_numpy(dtype=float)
            ok = np.isfinite(p).all(axis=1) & (p.sum(axis=1) > 0)
            p = np.where(ok[:, None], p, state.global_dist[None, :])
            return p / p.sum(axis=1, keepdims=True)
        if not state.has_reference:
            return np.tile(state.global_dist, (len(y_ref), 1))
        idx = np.clip(np.round(y_ref), 0, C - 1).astype(int)
        p = np.full((len(y_ref), C), 0.1 / max(C - 1, 1))
        p[np.arange(len(y_ref)), idx] = 0.9
        return p

    def targets(self, state: CrowdState, y: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        onehot = np.eye(base.shape[1], dtype=np.float32)[y]
        p = np.exp(base)
        p = p / p.sum(axis=1, keepdims=True)
        return y.astype(np.int64), (onehot - p).astype(np.float32)

    def residuals(self, state: CrowdState, pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = _softmax(pred)
        return np.eye(pred.shape[1])[y] - q, q

    def offsets(self, sums: np.ndarray, n: np.ndarray, kappa: float, q: np.ndarray, ti: np.ndarray
                ) -> np.ndarray:
        seen = n > 0
        qsum = np.zeros_like(sums)
        np.add.at(qsum, ti, q)
        qbar = np.where(seen[:, None], qsum / np.maximum(n, 1)[:, None], 1.0 / sums.shape[1])
        return self.shrink(sums, n, kappa, qbar)

    def shrink(self, sums: np.ndarray, n: np.ndarray, kappa: float, qbar: np.ndarray | None) -> np.ndarray:
        """Shrink each task's answer distribution towards the model's ``qbar``, as a logit offset."""
        assert qbar is not None
        phat = np.clip(qbar + sums / (n + kappa)[:, None], 1e-4, None)
        return np.log(phat / phat.sum(axis=1, keepdims=True)) - np.log(np.clip(qbar, 1e-4, None))

    def reference_out(self, y_ref: np.ndarray, fill: float) -> np.ndarray:
        return y_ref  # the answer the reference names, as given

    def blender_data(self, mu: np.ndarray, y: np.ndarray, ti: np.ndarray, wi: np.ndarray, n_tasks: int,
                     n_workers: int) -> tuple[np.ndarray, np.ndarray]:
        return mu, y

    def blend(self, blender: Blender, mu: np.ndarray, ti: np.ndarray, wi: np.ndarray, n_tasks: int,
              n_workers: int, rng: np.random.Generator, row_noise: np.ndarray | None) -> np.ndarray:
        return blender.sample(mu, rng)


class TopKKind(CrowdKind, TopKVotes):
    """Top-k votes: per (voter, item) a 0/1 choice; the model works on the item's selection logit."""

    loss = "bce"
    blenders = ("topk",)

    def fit_scale(self, state: CrowdState, y: np.ndarray, responses: pd.DataFrame) -> None:
        assert state.label.k is not None
        state.center, state.scale = 0.0, 1.0
        per_worker = responses.groupby("worker")["task"].nunique()
        state.ref_default = float(state.label.k / per_worker.median())

    def base(self, state: CrowdState, ref: pd.DataFrame, y_ref: np.ndarray) -> np.ndarray:
        p = np.clip(y_ref, 0.005, 0.995)
        return np.log(p / (1 - p))[:, None]

    def targets(self, state: CrowdState, y: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = _sigmoid(base[:, 0])
        return y.astype(np.float32), (y - p)[:, None].astype(np.float32)

    def residuals(self, state: CrowdState, pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = _sigmoid(pred[:, 0])
        return (y - q)[:, None], q

    def offsets(self, sums: np.ndarray, n: np.ndarray, kappa: float, q: np.ndarray, ti: np.ndarray
                ) -> np.ndarray:
        """Shrink each item's selection share towards the model's, as a logit offset."""
        seen = n > 0
        qsum = np.zeros(len(n))
        np.add.at(qsum, ti, q)
        qbar = np.where(seen, qsum / np.maximum(n, 1), 0.5)
        phat = np.clip(qbar + sums[:, 0] / (n + kappa), 1e-4, 1 - 1e-4)
        qbar = np.clip(qbar, 1e-4, 1 - 1e-4)
        out = np.zeros_like(sums)
        out[:, 0] = np.log(phat / (1 - phat)) - np.log(qbar / (1 - qbar))
        return out

    def blender_data(self, mu: np.ndarray, y: np.ndarray, ti: np.ndarray, wi: np.ndarray, n_tasks: int,
                     n_workers: int) -> tuple[np.ndarray, np.ndarray]:
        U = np.full((n_workers, n_tasks), -1e9)
        U[wi, ti] = mu[:, 0]
        chosen = np.zeros((n_workers, n_tasks), dtype=np.int64)
        chosen[wi, ti] = y > 0.5
        return U, chosen

    def blend(self, blender: Blender, mu: np.ndarray, ti: np.ndarray, wi: np.ndarray, n_tasks: int,
              n_workers: int, rng: np.random.Generator, row_noise: np.ndarray | None) -> np.ndarray:
        U = np.full((n_workers, n_tasks), -np.inf)
        U[wi, ti] = mu[:, 0]
        return blender.sample(U, rng)[wi, ti]

    def check_pairs(self, pairs: pd.DataFrame | None, n_tasks: int, n_workers: int) -> pd.DataFrame | None:
        if pairs is not None and len(pairs) != n_tasks * n_workers:
            raise ConfigError("top-k voters choose among every item: pass pairs=None")
        return None


#: the crowd's kind objects, one per label kind a crowd can sample (free text has none); they are
#: found by the label kind they extend, never by name (names live in ``crowdllm.data.kinds``)
KINDS: tuple[CrowdKind, ...] = (ContinuousKind(), OrdinalKind(), CategoricalKind(), TopKKind())


def kind_of(label: LabelSpec) -> CrowdKind | None:
    """The crowd kind extending ``label.kind_``, None for free text."""
    return next((kind for kind in KINDS if isinstance(kind, type(label.kind_))), None)


def crowd_kind(label: LabelSpec) -> CrowdKind:
    """The kind object for ``label``; free-text labels have none (a crowd cannot sample them)."""
    kind = kind_of(label)
    if kind is None:
        raise ConfigError("a digital crowd samples numeric, categorical or top-k labels; "
                          "free-text labels are not supported")
    return kind
