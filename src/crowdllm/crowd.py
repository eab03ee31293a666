"""DigitalCrowd: fit the CrowdLLM model on real people's answers, then sample a virtual crowd.

>>> from crowdllm.data.synthetic import make_synthetic_crowd
>>> from crowdllm.crowd import DigitalCrowd
>>> syn = make_synthetic_crowd(n_tasks=40, n_workers=30, random_state=0)
>>> crowd = DigitalCrowd(epochs=5, embedder="hashing").fit(syn.dataset)
>>> answers = crowd.sample(syn.dataset.tasks, n_people=50, random_state=1)
>>> sorted(answers.columns)[:3]
['age', 'gender', 'group']

The pipeline (paper Sec. 3): profiles -> LLM reference ``y_ref`` per task -> belief deviation
``delta`` from the conditional VAE (:mod:`crowdllm.belief.cvae`) averaged over ``J`` belief samples ->
blender ``F(y_ref + delta, sigma^2)`` (:mod:`crowdllm.blend`).

**Reference.** ``fit(dataset, reference=...)`` takes a frame indexed by task (or with a ``task``
column) holding ``y_ref`` and optionally the reference distribution ``p_<level>`` (``p_1..p_5`` for a
1-5 scale, ``p_<category>`` for categories, ``y_ref`` = the LLM's selection probability of an item for
top-k votes). With ``reference=None`` the crowd is "VAE only": ``y_ref`` is the training mean (the
global label distribution for categories, ``k / n_items`` for votes). A task whose reference is NaN
gets the training mean of ``y_ref`` and a "missing" flag (counted in ``reference_missing_``).

**Task memory.** For tasks that real training people answered, the crowd also keeps what they said:
after the network is trained, each seen task gets an offset on the model scale -- the mean training
residual on that task, shrunk towards 0 like a random effect (``sum(r) / (n_t + kappa)`` with
``kappa = within-task variance / between-task variance`` of the residuals, both estimated from the
training rows; Dirichlet-style shrinkage of the label distribution for categories and votes). A new
person on a seen task gets ``y_ref + offset + delta``; an unseen task gets no offset.
``task_memory=False`` switches it off (the paper's model has no such term). We tried the obvious
alternative -- feeding leave-one-out task means to g_x -- and dropped it: a network that can recognise
a training text can decode the held-out answer from a leave-one-out mean (target leakage).

**Validation.** Early stopping (and nothing else) uses a validation part of the *training* data:
``validation="workers"`` holds out training people, ``"tasks"`` training tasks, ``"both"`` (default)
a share of each (a row is held out when its person or its task is). ``refit=True`` then retrains on
all training rows for the chosen number of epochs.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import atomic_write_json
from crowdllm._io import rng as make_rng
from crowdllm.belief.cvae import BeliefModel, TrainData
from crowdllm.belief.embeddings import TaskFeaturizer, TextEmbedder
from crowdllm.blend import Blender, OrdinalBlender, TopKBlender, blender_from_dict, make_blender
from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.errors import ConfigError
from crowdllm.profiles.encoding import ProfileEncoder
from crowdllm.profiles.generator import ProfileGenerator
from crowdllm.profiles.pool import PoolProfiles

FORMAT_VERSION = 1
_BELIEF_FILES = ("belief.safetensors", "belief.json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


ReferenceLike = pd.DataFrame | pd.Series | Callable[[pd.DataFrame], pd.DataFrame] | None
_CHUNK = 32_768  # pairs per block: keeps the (pairs x hidden) activations in cache


def _choice_name(level: float | str) -> str:
    if isinstance(level, (float, np.floating)) and float(level).is_integer():
        return str(int(level))
    return str(level)


def reference_frame(reference: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """Normalise a reference to a frame indexed by task id (str) with ``y_ref`` (+ ``p_*``) columns."""
    if isinstance(reference, pd.Series):
        frame = reference.rename("y_ref").to_frame()
    elif isinstance(reference, pd.DataFrame):
        frame = reference.set_index("task") if "task" in reference.columns else reference.copy()
    else:
        raise ConfigError("reference must be a DataFrame (y_ref, p_* columns) or a Series of y_ref by task")
    if "y_ref" not in frame.columns:
        raise ConfigError(f"reference needs a 'y_ref' column (found: {', '.join(map(str, frame.columns))})")
    frame.index = frame.index.astype(str)
    if frame.index.duplicated().any():
        raise ConfigError(f"reference lists task '{frame.index[frame.index.duplicated()][0]}' twice")
    p_cols = [c for c in frame.columns if str(c).startswith("p_")]
    out = frame[p_cols].apply(pd.to_numeric, errors="coerce").astype(float)
    y = frame["y_ref"]
    numeric = pd.to_numeric(y, errors="coerce")
    # categorical references name the most likely choice; keep those names, numbers otherwise
    keep_names = numeric.isna() & y.notna()
    out.insert(0, "y_ref", y.astype(object).where(keep_names, numeric) if keep_names.any() else numeric.astype(float))
    return out


class DigitalCrowd:
    """The CrowdLLM digital crowd (scikit-learn style; hyper-parameters stored unchanged).

    Belief model: ``latent_dim``, ``hidden``, ``dropout``, ``lam`` (prediction-loss weight, paper's
    lambda), ``lr``, ``epochs`` (max), ``batch_size``, ``patience``, ``weight_decay``, ``recon_weight``,
    ``kl_weight``, ``prior_pred_weight``, ``skip`` (linear path to delta: "ref", "all", "none"), ``calibrate`` ("linear": map the LLM reference
    to the training crowd's scale first, out-of-fold, see :mod:`crowdllm.belief.calibration`; "ridge":
    with the text embedding too; "none"). Decisions: ``J`` (belief samples averaged per person),
    ``blender`` (None = default for the label kind), ``sigma`` (None = maximum likelihood on the
    training residuals, or a number in label units), ``sigma_scale`` (multiplies the fitted sigma), ``task_sigma`` (> 0, default 5: each task seen in
    training gets its own ordinal noise, its maximum-likelihood sigma shrunk towards the global one with
    this many pseudo-answers; 0: one sigma for all).
    Inputs: ``embedder`` ("auto" | "minilm" | "hashing" | a :class:`TextEmbedder`), ``text_column``,
    ``meta_columns``, ``profile_text_columns`` (persona text embedded with the same embedder),
    ``use_reference_distribution`` (feed ``p_*`` columns to g_x), ``task_memory`` (shrunken offsets
    for tasks seen in training), ``memory_kappa`` (their shrinkage in pseudo-answers, default 1; None:
    estimated from the residuals' within / between task variance -- the default was chosen on a
    validation part of POPQUORN's training people, where the estimate shrank too much).
    Validation: ``validation``, ``valid_fraction``, ``refit``. ``random_state`` seeds everything.
    """

    def __init__(
        self,
        latent_dim: int = 8,
        hidden: int = 64,
        lam: float = 1.0,
        lr: float = 1e-3,
        epochs: int = 200,
        batch_size: int = 256,
        patience: int = 10,
        dropout: float = 0.1,
        weight_decay: float = 1e-4,
        recon_weight: float = 1.0,
        kl_weight: float = 1.0,
        prior_pred_weight: float = 1.0,
        skip: str = "ref",
        calibrate: str = "linear",
        J: int = 10,
        blender: str | None = None,
        sigma: float | None = None,
        sigma_scale: float = 1.0,
        task_sigma: float = 5.0,
        embedder: str | TextEmbedder = "auto",
        text_column: str = "text",
        meta_columns: Sequence[str] | None = None,
        profile_text_columns: Sequence[str] = (),
        use_reference_distribution: bool = True,
        task_memory: bool = True,
        memory_kappa: float | None = 1.0,
        validation: str = "both",
        valid_fraction: float = 0.15,
        refit: bool = False,
        random_state: int = 0,
        verbose: bool = False,
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.lam = lam
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.recon_weight = recon_weight
        self.kl_weight = kl_weight
        self.prior_pred_weight = prior_pred_weight
        self.skip = skip
        self.calibrate = calibrate
        self.J = J
        self.blender = blender
        self.sigma = sigma
        self.sigma_scale = sigma_scale
        self.task_sigma = task_sigma
        self.embedder = embedder
        self.text_column = text_column
        self.meta_columns = meta_columns
        self.profile_text_columns = profile_text_columns
        self.use_reference_distribution = use_reference_distribution
        self.task_memory = task_memory
        self.memory_kappa = memory_kappa
        self.validation = validation
        self.valid_fraction = valid_fraction
        self.refit = refit
        self.random_state = random_state
        self.verbose = verbose

    # ================================================================== helpers
    def _hyper(self) -> dict[str, Any]:
        names = ("latent_dim", "hidden", "lam", "lr", "epochs", "batch_size", "patience", "dropout",
                 "weight_decay", "recon_weight", "kl_weight", "prior_pred_weight", "skip", "calibrate", "J", "blender", "sigma", "task_sigma",
                 "sigma_scale", "text_column", "meta_columns", "profile_text_columns",
                 "use_reference_distribution", "task_memory", "memory_kappa", "validation",
                 "valid_fraction", "refit", "random_state")
        out = {n: getattr(self, n) for n in names}
        out["meta_columns"] = list(self.meta_columns) if self.meta_columns is not None else None
        out["profile_text_columns"] = list(self.profile_text_columns)
        out["embedder"] = self.embedder if isinstance(self.embedder, str) else self.embedder.model
        return out

    def _make_embedder(self) -> TextEmbedder:
        if isinstance(self.embedder, TextEmbedder):
            return self.embedder
        return TextEmbedder(self.embedder)

    @property
    def _kind(self) -> str:
        return self.label_.kind

    def _levels(self) -> list[str]:
        """Reference distribution choice names (``p_<name>``)."""
        if self._kind == "ordinal":
            return [_choice_name(v) for v in self.label_.levels]
        if self._kind == "categorical":
            assert self.label_.categories is not None
            return list(self.label_.categories)
        return []

    # ---------------------------------------------------------------- reference handling
    def _default_reference(self, tasks: Sequence[str]) -> pd.DataFrame:
        frame = pd.DataFrame(index=pd.Index(list(tasks), dtype=str))
        frame["y_ref"] = self.ref_default_
        return frame

    def _resolve_reference(self, reference: ReferenceLike, tasks: pd.DataFrame, *, fitting: bool
                           ) -> pd.DataFrame:
        ids = tasks["task"].astype(str).tolist()
        if not fitting and not self.has_reference_:
            if reference is not None:
                raise ConfigError("this crowd was fitted without an LLM reference (VAE only); "
                                  "do not pass reference= to sample()")
            return self._default_reference(ids)
        is_fn = callable(reference) and not isinstance(reference, (pd.DataFrame, pd.Series))
        frames = []
        if fitting:
            assert reference is not None
            frames.append(reference_frame(reference(tasks) if is_fn else reference))  # type: ignore[operator]
        else:
            if is_fn:
                need = [t for t in ids if t not in self.reference_.index]
                if need:
                    sub = tasks[tasks["task"].astype(str).isin(need)]
                    frames.append(reference_frame(reference(sub)))  # type: ignore[operator]
            elif reference is not None:
                frames.append(reference_frame(reference))  # type: ignore[arg-type]
            frames.append(self.reference_)
        merged = pd.concat(frames) if len(frames) > 1 else frames[0]
        merged = merged[~merged.index.duplicated(keep="first")]
        missing = [t for t in ids if t not in merged.index]
        if missing:
            raise ConfigError(f"no LLM reference for {len(missing)} task(s) (first: '{missing[0]}'); "
                              "pass reference= with a y_ref for every task")
        return merged.reindex(ids)

    def _reference_features(self, ref: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
        """(features for g_x, base in model units (n, out), count of missing references)."""
        raw = ref["y_ref"]
        if self._kind == "categorical":
            lookup = {c: float(i) for i, c in enumerate(self._levels())}
            raw = raw.map(lambda v: lookup.get(str(v), v) if isinstance(v, str) else v)
        y_ref = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        missing = ~np.isfinite(y_ref)
        y_ref = np.where(missing, self.ref_fill_, y_ref)
        feats = []
        if self._kind in ("continuous", "ordinal"):
            feats.append(((y_ref - self.center_) / self.scale_)[:, None])
            base = ((y_ref - self.center_) / self.scale_)[:, None]
        elif self._kind == "topk":
            p = np.clip(y_ref, 0.005, 0.995)
            base = np.log(p / (1 - p))[:, None]
            feats.append(base)
        else:  # categorical: y_ref is the index of the reference answer; p_* carry the distribution
            base = np.log(np.clip(self._ref_probs(ref, y_ref), 1e-4, 1.0))
            feats.append(base)
        if self.has_reference_ and self.use_reference_distribution and self.p_columns_:
            p = ref.reindex(columns=self.p_columns_).to_numpy(dtype=float)
            bad = ~np.isfinite(p).all(axis=1)
            missing = missing | bad
            p = np.where(np.isfinite(p), p, 0.0)
            feats.append(p)
        if self.has_reference_:
            feats.append(missing[:, None].astype(float))
        return np.concatenate(feats, axis=1).astype(np.float32), base.astype(np.float32), int(missing.sum())

    def _ref_probs(self, ref: pd.DataFrame, y_ref: np.ndarray) -> np.ndarray:
        C = len(self._levels())
        if self.p_columns_ and len(self.p_columns_) == C:
            p = ref.reindex(columns=self.p_columns_).to_numpy(dtype=float)
            ok = np.isfinite(p).all(axis=1) & (p.sum(axis=1) > 0)
            p = np.where(ok[:, None], p, self.global_dist_[None, :])
            return p / p.sum(axis=1, keepdims=True)
        if not self.has_reference_:
            return np.tile(self.global_dist_, (len(y_ref), 1))
        idx = np.clip(np.round(y_ref), 0, C - 1).astype(int)
        p = np.full((len(y_ref), C), 0.1 / max(C - 1, 1))
        p[np.arange(len(y_ref)), idx] = 0.9
        return p

    # ---------------------------------------------------------------- label coding
    def _encode_labels(self, dataset: CrowdDataset, responses: pd.DataFrame) -> np.ndarray:
        if self._kind == "categorical":
            return dataset.label_codes(responses["label"]).astype(np.int64)
        return responses["label"].to_numpy(dtype=float)

    def _target_arrays(self, y: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(target, encoder target) in model units for response labels ``y`` and row bases."""
        if self._kind in ("continuous", "ordinal"):
            t = (y - self.center_) / self.scale_
            return t.astype(np.float32), (t - base[:, 0])[:, None].astype(np.float32)
        if self._kind == "topk":
            p = 1.0 / (1.0 + np.exp(-base[:, 0]))
            return y.astype(np.float32), (y - p)[:, None].astype(np.float32)
        C = base.shape[1]
        onehot = np.eye(C, dtype=np.float32)[y]
        p = np.exp(base)
        p = p / p.sum(axis=1, keepdims=True)
        return y.astype(np.int64), (onehot - p).astype(np.float32)

    def _task_offsets(self, pred: np.ndarray, y: np.ndarray, ti: np.ndarray, n_tasks: int
                      ) -> tuple[np.ndarray, float]:
        """Shrunken per-task offsets (model units, (n_tasks, out)) from training predictions ``pred``
        (base + prior-mean deviation) and labels; returns (offsets, kappa)."""
        n = np.bincount(ti, minlength=n_tasks).astype(float)
        if self._kind in ("continuous", "ordinal"):
            r = ((y - self.center_) / self.scale_ - pred[:, 0])[:, None]
        elif self._kind == "topk":
            q = 1.0 / (1.0 + np.exp(-pred[:, 0]))
            r = (y - q)[:, None]
        else:
            q = np.exp(pred - pred.max(axis=1, keepdims=True))
            q /= q.sum(axis=1, keepdims=True)
            r = np.eye(pred.shape[1])[y] - q
        sums = np.zeros((n_tasks, r.shape[1]))
        np.add.at(sums, ti, r)
        seen = n > 0
        means = sums[seen] / n[seen, None]
        sq = np.zeros(n_tasks)
        np.add.at(sq, ti, (r ** 2).sum(axis=1))
        within_ss = sq[seen] - n[seen] * (means ** 2).sum(axis=1)
        dof = (n[seen] - 1).sum()
        sigma2 = float(within_ss.sum() / dof) if dof > 0 else 0.0
        tau2 = float(np.mean((means ** 2).sum(axis=1) - sigma2 / n[seen]))
        offsets = np.zeros((n_tasks, pred.shape[1]))
        if self.memory_kappa is not None:
            kappa = float(self.memory_kappa)
        elif tau2 <= 1e-12 or not np.isfinite(tau2):
            return offsets, float("inf")
        else:
            kappa = sigma2 / tau2
        if self._kind in ("continuous", "ordinal"):
            offsets[:, 0] = sums[:, 0] / (n + kappa)
            return offsets, kappa
        # distributions: shrink the empirical distribution towards the model's, offset the logits
        if self._kind == "topk":
            qsum = np.zeros(n_tasks)
            np.add.at(qsum, ti, q)
            qbar = np.where(seen, qsum / np.maximum(n, 1), 0.5)
            phat = qbar + sums[:, 0] / (n + kappa)
            phat = np.clip(phat, 1e-4, 1 - 1e-4)
            qbar = np.clip(qbar, 1e-4, 1 - 1e-4)
            offsets[:, 0] = np.log(phat / (1 - phat)) - np.log(qbar / (1 - qbar))
            return offsets, kappa
        qsum = np.zeros((n_tasks, pred.shape[1]))
        np.add.at(qsum, ti, q)
        qbar = np.where(seen[:, None], qsum / np.maximum(n, 1)[:, None], 1.0 / pred.shape[1])
        phat = np.clip(qbar + sums / (n + kappa)[:, None], 1e-4, None)
        offsets = np.log(phat / phat.sum(axis=1, keepdims=True)) - np.log(np.clip(qbar, 1e-4, None))
        return offsets, kappa

    # ================================================================== fit
    def fit(self, dataset: CrowdDataset, reference: ReferenceLike = None) -> DigitalCrowd:
        """Learn the belief generator and the blender's noise from ``dataset``'s responses."""
        label = dataset.label
        if label.kind == "text":
            raise ConfigError("a digital crowd samples numeric, categorical or top-k labels; "
                              "free-text labels are not supported")
        if self.validation not in ("both", "workers", "tasks", "none"):
            raise ConfigError(f"validation '{self.validation}' is not one of both, workers, tasks, none")
        if self.J < 0:
            raise ConfigError(f"J (belief samples per decision) must be >= 0, got {self.J}")
        self.label_ = label
        resp = dataset.responses.reset_index(drop=True)
        tasks = dataset.tasks.reset_index(drop=True)
        workers = dataset.workers.reset_index(drop=True)
        tasks["task"] = tasks["task"].astype(str)
        workers["worker"] = workers["worker"].astype(str)
        y = self._encode_labels(dataset, resp)
        # ---------------- label scale and the VAE-only reference
        if self._kind in ("continuous", "ordinal"):
            self.center_ = float(np.mean(y))
            self.scale_ = float(np.std(y)) or 1.0
            self.ref_default_ = self.center_
        else:
            self.center_, self.scale_ = 0.0, 1.0
        if self._kind == "categorical":
            C = len(self._levels())
            self.global_dist_ = np.bincount(y, minlength=C).astype(float) + 0.5
            self.global_dist_ /= self.global_dist_.sum()
            self.ref_default_ = float(np.argmax(self.global_dist_))
        if self._kind == "topk":
            assert label.k is not None
            per_worker = resp.groupby("worker")["task"].nunique()
            self.ref_default_ = float(label.k / per_worker.median())
        # ---------------- reference
        self.has_reference_ = reference is not None
        self.p_columns_: list[str] = []
        if self.has_reference_:
            ref = self._resolve_reference(reference, tasks, fitting=True)
            wanted = [f"p_{c}" for c in self._levels()]
            self.p_columns_ = [c for c in wanted if c in ref.columns] if wanted else []
            if self._kind == "categorical" and self.p_columns_ and len(self.p_columns_) != len(wanted):
                self.p_columns_ = []
            if self._kind not in ("categorical",) and len(self.p_columns_) != len(wanted):
                self.p_columns_ = []
            finite = pd.to_numeric(ref["y_ref"], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(finite).any() and self._kind != "categorical"
            self.ref_fill_ = float(np.nanmean(finite)) if ok else self.ref_default_
            # keep every task the caller gave a reference for (test tasks too), not only training tasks
            given = (reference_frame(reference) if isinstance(reference, (pd.DataFrame, pd.Series)) else ref)
            self.reference_ = given.reindex(columns=["y_ref", *self.p_columns_]).copy()
        else:
            self.ref_fill_ = self.ref_default_
            ref = self._default_reference(tasks["task"].tolist())
            self.reference_ = ref
        ref_x, base_t, self.reference_missing_ = self._reference_features(ref)
        # ---------------- task and profile features
        embedder = self._make_embedder()
        self.embedder_name_ = embedder.name
        self.featurizer_ = TaskFeaturizer(embedder, text_column=self.text_column,
                                          meta_columns=self.meta_columns).fit(tasks)
        emb, meta = self.featurizer_.transform(tasks)
        self.emb_mean_ = emb.mean(axis=0)
        self.emb_std_ = emb.std(axis=0) + 1e-6
        recon = ((emb - self.emb_mean_) / self.emb_std_).astype(np.float32)
        task_static = np.concatenate([emb, meta, ref_x], axis=1).astype(np.float32)
        base_t = self._fit_calibration(tasks, resp, y, emb, meta, ref_x, base_t)
        self.profile_encoder_ = ProfileEncoder(
            text_columns=self.profile_text_columns,
            text_encoder=embedder.embed if self.profile_text_columns else None,
        ).fit(workers, dataset.ordered_attributes)
        profile_x = self.profile_encoder_.transform(workers)
        self.profile_columns_ = [c for c in workers.columns if c != "worker"]
        self.pool_ = workers  # the empirical pool of real profiles (default for n_people=)
        # ---------------- rows
        t_index = pd.Index(tasks["task"])
        w_index = pd.Index(workers["worker"])
        ti = t_index.get_indexer(resp["task"].astype(str))
        wi = w_index.get_indexer(resp["worker"].astype(str))
        base = base_t[ti]
        target, target_enc = self._target_arrays(y, base)
        valid = self._validation_rows(ti, wi, len(tasks), len(workers))
        data = TrainData(task_x=task_static, recon=recon, profile_x=profile_x, ti=ti, wi=wi,
                         base=base, target=target, target_enc=target_enc, valid=valid, n_ref=ref_x.shape[1])
        loss = {"continuous": "mse", "ordinal": "mse", "categorical": "ce", "topk": "bce"}[self._kind]
        model = self._belief_model(self.epochs)
        model.fit(data, loss)
        if self.refit and valid.any():
            full = replace(data, valid=np.zeros(len(resp), dtype=bool))
            refit_model = self._belief_model(max(model.best_epoch_ + 1, 1), patience=10**9)
            refit_model.fit(full, loss)
            refit_model.best_epoch_ = model.best_epoch_
            refit_model.valid_loss_ = model.valid_loss_
            model = refit_model
        self.belief_ = model
        self.n_train_responses_ = len(resp)
        self.tasks_ = tasks  # kept in memory only (never saved): lets sample() take task ids
        # ---------------- task memory: shrunken per-task offsets
        A = model.task_part(task_static)
        B = model.profile_part(profile_x)
        m, lv = model.belief(A, B, ti, wi)
        base = base + model.task_shift(task_static)[ti]
        offsets = np.zeros((len(tasks), base.shape[1]))
        self.kappa_ = float("inf")
        if self.task_memory:
            offsets, self.kappa_ = self._task_offsets(base + m, y, ti, len(tasks))
        self.task_offsets_ = pd.DataFrame(offsets, index=t_index,
                                          columns=[f"o{i}" for i in range(offsets.shape[1])])
        # ---------------- blender noise from the training residuals of the J-averaged decisions
        self.blender_ = make_blender(label, self.blender)
        rng = np.random.default_rng(self.random_state + 104729)
        mu = self._to_label_units(base + offsets[ti] + model.sample_deviation(m, lv, self.J, rng))
        self._fit_blender(mu, y, wi, ti, len(tasks), len(workers))
        self.task_sigma_ = pd.Series(dtype=float)
        if self.task_sigma > 0 and isinstance(self.blender_, OrdinalBlender) and self.sigma is None:
            sig = self.blender_.group_sigmas(mu[:, 0], y, ti, len(tasks), self.task_sigma)
            seen = np.bincount(ti, minlength=len(tasks)) > 0
            self.task_sigma_ = pd.Series(sig[seen], index=t_index[seen])
        return self

    # ---------------------------------------------------------------- reference calibration
    def _calibration_features(self, emb: np.ndarray, meta: np.ndarray, ref_x: np.ndarray) -> np.ndarray:
        if self.calibrate == "ridge":
            return np.concatenate([emb, meta, ref_x], axis=1)
        return ref_x

    def _fit_calibration(self, tasks: pd.DataFrame, resp: pd.DataFrame, y: np.ndarray, emb: np.ndarray,
                         meta: np.ndarray, ref_x: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Replace the base (model units) by the calibrated reference: out-of-fold on training tasks."""
        from crowdllm.belief.calibration import CALIBRATIONS, ReferenceCalibrator

        if self.calibrate not in CALIBRATIONS:
            raise ConfigError(f"calibrate '{self.calibrate}' is not one of {', '.join(CALIBRATIONS)}")
        self.calibrator_ = None
        self.calibrated_base_ = pd.Series(dtype=float)
        if self.calibrate == "none" or self._kind not in ("continuous", "ordinal"):
            return base
        if self.calibrate == "linear" and not self.has_reference_:
            return base  # nothing to calibrate: "VAE only" has no reference
        t_index = pd.Index(tasks["task"])
        ti = t_index.get_indexer(resp["task"].astype(str))
        z = (y - self.center_) / self.scale_
        n = np.bincount(ti, minlength=len(tasks)).astype(float)
        sums = np.bincount(ti, weights=z, minlength=len(tasks))
        seen = n > 0
        X = self._calibration_features(emb, meta, ref_x)
        cal = ReferenceCalibrator(random_state=self.random_state).fit(X[seen], sums[seen] / n[seen], n[seen])
        out = cal.predict(X)
        out[seen] = cal.oof_
        self.calibrator_ = cal
        self.calibrated_base_ = pd.Series(out, index=t_index)
        return out[:, None].astype(np.float32)

    def _calibrated_base(self, tasks: pd.DataFrame, emb: np.ndarray, meta: np.ndarray, ref_x: np.ndarray,
                         base: np.ndarray) -> np.ndarray:
        if getattr(self, "calibrator_", None) is None:
            return base
        pred = self.calibrator_.predict(self._calibration_features(emb, meta, ref_x))
        known = self.calibrated_base_.reindex(tasks["task"].astype(str)).to_numpy(dtype=float)
        return np.where(np.isfinite(known), known, pred)[:, None].astype(np.float32)

    def _belief_model(self, epochs: int, patience: int | None = None) -> BeliefModel:
        return BeliefModel(
            latent_dim=self.latent_dim, hidden=self.hidden, dropout=self.dropout, lam=self.lam, lr=self.lr,
            epochs=epochs, batch_size=self.batch_size, patience=self.patience if patience is None else patience,
            weight_decay=self.weight_decay, recon_weight=self.recon_weight, kl_weight=self.kl_weight,
            prior_pred_weight=self.prior_pred_weight, skip=self.skip, random_state=self.random_state, verbose=self.verbose,
        )

    def _validation_rows(self, ti: np.ndarray, wi: np.ndarray, n_tasks: int, n_workers: int) -> np.ndarray:
        rng = np.random.default_rng(self.random_state + 7919)
        valid = np.zeros(len(ti), dtype=bool)
        if self.validation == "none" or self.valid_fraction <= 0:
            return valid
        if self.validation in ("both", "workers") and n_workers >= 5:
            held = rng.random(n_workers) < self.valid_fraction
            valid |= held[wi]
        if self.validation in ("both", "tasks") and n_tasks >= 5:
            held = rng.random(n_tasks) < self.valid_fraction
            valid |= held[ti]
        if valid.all():
            valid[:] = False
        return valid

    def _fit_blender(self, mu: np.ndarray, y: np.ndarray, wi: np.ndarray, ti: np.ndarray, n_tasks: int,
                     n_workers: int) -> None:
        """Estimate the blender's noise from training decisions ``mu`` and labels ``y``."""
        b = self.blender_
        if self.sigma is not None:
            if isinstance(b, TopKBlender):
                b.beta = float(self.sigma)
            elif hasattr(b, "temperature"):
                b.temperature = float(self.sigma)  # type: ignore[attr-defined]
            else:
                b.sigma = float(self.sigma)  # type: ignore[attr-defined]
        elif isinstance(b, TopKBlender):
            V, N = n_workers, n_tasks
            U = np.full((V, N), -1e9)
            U[wi, ti] = mu[:, 0]
            chosen_mask = np.zeros((V, N), dtype=bool)
            chosen_mask[wi, ti] = y > 0.5
            k = b.k
            ok = chosen_mask.sum(axis=1) == k
            chosen = np.argsort(~chosen_mask[ok], axis=1, kind="stable")[:, :k]
            b.fit(U[ok], chosen)
        elif isinstance(b, OrdinalBlender) or b.name == "normal":
            b.fit(mu[:, 0], y)
        else:
            b.fit(mu, y)
        # sigma_scale tunes the fitted noise (chosen on validation data by the caller, if at all)
        if self.sigma_scale != 1.0:
            for attr in ("sigma", "temperature", "beta"):
                if getattr(b, attr, None) is not None:
                    setattr(b, attr, float(getattr(b, attr)) * self.sigma_scale)

    # ================================================================== decisions
    def _task_inputs(self, tasks: pd.DataFrame, ref: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Task features for g_x and the base per task (reference + task offset, model units)."""
        emb, meta = self.featurizer_.transform(tasks)
        ref_x, base, _ = self._reference_features(ref)
        task_x = np.concatenate([emb, meta, ref_x], axis=1).astype(np.float32)
        base = self._calibrated_base(tasks, emb, meta, ref_x, base)
        offsets = self.task_offsets_.reindex(tasks["task"].astype(str)).fillna(0.0).to_numpy()
        return task_x, (base + offsets + self.belief_.task_shift(task_x)).astype(np.float32)

    def _decisions(self, tasks: pd.DataFrame, profiles: pd.DataFrame, ti: np.ndarray, wi: np.ndarray,
                   ref: pd.DataFrame, rng: np.random.Generator, *, J: int | None = None,
                   with_mean: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Expected decisions ``mu`` (label units / logits) and, if asked, the prior-mean ones, per pair."""
        J = self.J if J is None else J
        task_x, base = self._task_inputs(tasks, ref)
        A = self.belief_.task_part(task_x)
        B = self.belief_.profile_part(self._encode_profiles(profiles))
        out_dim = base.shape[1]
        mu = np.empty((len(ti), out_dim), dtype=np.float64)
        mean = np.empty((len(ti), out_dim), dtype=np.float64) if with_mean else None
        for s in range(0, len(ti), _CHUNK):
            sl = slice(s, s + _CHUNK)
            m, lv = self.belief_.belief(A, B, ti[sl], wi[sl])
            b = base[ti[sl]]
            mu[sl] = self._to_label_units(b + self.belief_.sample_deviation(m, lv, J, rng))
            if mean is not None:
                mean[sl] = self._to_label_units(b + m)
        return mu, mean

    def _encode_profiles(self, profiles: pd.DataFrame) -> np.ndarray:
        """Encode profiles; values unseen in training go to 'other' and are reported (warning +
        ``unseen_profiles_``), never silently."""
        before = {c: dict(v) for c, v in self.profile_encoder_.unseen_.items()}
        x = self.profile_encoder_.transform(profiles)
        new = {}
        for col, counts in self.profile_encoder_.unseen_.items():
            diff = {v: n - before.get(col, {}).get(v, 0) for v, n in counts.items()}
            diff = {v: n for v, n in diff.items() if n > 0}
            if diff:
                new[col] = diff
        if new:
            shown = "; ".join(f"{c}: " + ", ".join(f"'{v}' x{n}" for v, n in d.items()) for c, d in new.items())
            warnings.warn(f"profile values not seen in training were encoded as 'other': {shown}", stacklevel=3)
        return x

    @property
    def unseen_profiles_(self) -> dict[str, dict[str, int]]:
        """Counts of profile values unseen in training met so far (``{column: {value: count}}``)."""
        return self.profile_encoder_.unseen_

    def _to_label_units(self, z: np.ndarray) -> np.ndarray:
        if self._kind in ("continuous", "ordinal"):
            return z * self.scale_ + self.center_
        return z

    # ================================================================== sampling
    def _tasks_frame(self, tasks: pd.DataFrame | Sequence[str]) -> pd.DataFrame:
        if isinstance(tasks, pd.DataFrame):
            if "task" not in tasks.columns:
                raise ConfigError("tasks need a 'task' column")
            out = tasks.reset_index(drop=True).copy()
            out["task"] = out["task"].astype(str)
            return out
        ids = [str(t) for t in tasks]
        known = getattr(self, "tasks_", None)
        if known is None:
            raise ConfigError("pass tasks as a DataFrame (task, text, ...): this crowd was loaded from "
                              "disk and keeps no task texts")
        frame = known.set_index("task").reindex(ids)
        if frame[self.text_column].isna().any():
            first = frame.index[frame[self.text_column].isna()][0]
            raise ConfigError(f"task '{first}' is not among the fitted tasks; pass a tasks DataFrame")
        return frame.reset_index()

    def _profiles_frame(self, profiles: pd.DataFrame | ProfileGenerator | None, n_people: int | None,
                        rng: np.random.Generator) -> pd.DataFrame:
        if isinstance(profiles, pd.DataFrame):
            if "worker" not in profiles.columns:
                raise ConfigError("profiles need a 'worker' column")
            out = profiles.reset_index(drop=True).copy()
            out["worker"] = out["worker"].astype(str)
            if out["worker"].duplicated().any():
                raise ConfigError(f"profile id '{out['worker'][out['worker'].duplicated()].iloc[0]}' appears twice")
            return out
        if n_people is None:
            raise ConfigError("give profiles= (a frame or a ProfileGenerator) or n_people=")
        gen = profiles if isinstance(profiles, ProfileGenerator) else PoolProfiles(self.pool_)
        return gen.sample(n_people, rng)

    def expected_decisions(self, tasks: pd.DataFrame | Sequence[str], profiles: pd.DataFrame,
                           pairs: pd.DataFrame | None = None, reference: ReferenceLike = None,
                           random_state: int | np.random.Generator | None = None, J: int | None = None
                           ) -> pd.DataFrame:
        """Per (task, worker): ``mu`` (the J-averaged expected decision that is blended) and
        ``mu_mean`` (at the prior mean, J -> infinity), ``y_ref``; plus ``delta_sd`` for numeric labels."""
        rng = make_rng(random_state)
        task_frame = self._tasks_frame(tasks)
        prof = self._profiles_frame(profiles, None, rng)
        ref = self._resolve_reference(reference, task_frame, fitting=False)
        ti, wi = self._pairs(task_frame, prof, pairs)
        mu, mean = self._decisions(task_frame, prof, ti, wi, ref, rng, J=J)
        assert mean is not None
        out = pd.DataFrame({"task": task_frame["task"].to_numpy()[ti], "worker": prof["worker"].to_numpy()[wi]})
        if mu.shape[1] == 1:
            out["mu"], out["mu_mean"] = mu[:, 0], mean[:, 0]
        else:
            for c in range(mu.shape[1]):
                out[f"mu_{self._levels()[c]}"] = mu[:, c]
        y_ref = ref["y_ref"].to_numpy()[ti]
        if self._kind != "categorical":
            num = pd.to_numeric(pd.Series(y_ref), errors="coerce").to_numpy(dtype=float)
            y_ref = np.where(np.isfinite(num), num, self.ref_fill_)
        out["y_ref"] = y_ref
        if self._kind in ("continuous", "ordinal"):
            task_x, _ = self._task_inputs(task_frame, ref)
            A = self.belief_.task_part(task_x)
            B = self.belief_.profile_part(self._encode_profiles(prof))
            _, lv = self.belief_.belief(A, B, ti, wi)
            out["delta_sd"] = self.belief_.deviation_sd(lv, 1)[:, 0] * self.scale_
        return out

    @staticmethod
    def _pairs(tasks: pd.DataFrame, prof: pd.DataFrame, pairs: pd.DataFrame | None
               ) -> tuple[np.ndarray, np.ndarray]:
        T, P = len(tasks), len(prof)
        if pairs is None:
            return np.repeat(np.arange(T), P), np.tile(np.arange(P), T)
        for col in ("task", "worker"):
            if col not in pairs.columns:
                raise ConfigError(f"pairs need a '{col}' column")
        ti = pd.Index(tasks["task"]).get_indexer(pairs["task"].astype(str))
        wi = pd.Index(prof["worker"]).get_indexer(pairs["worker"].astype(str))
        if (ti < 0).any():
            raise ConfigError(f"pairs name task '{pairs['task'].iloc[int(np.flatnonzero(ti < 0)[0])]}' "
                              "that is not among the tasks given")
        if (wi < 0).any():
            raise ConfigError(f"pairs name worker '{pairs['worker'].iloc[int(np.flatnonzero(wi < 0)[0])]}' "
                              "that is not among the profiles given")
        return ti.astype(np.int64), wi.astype(np.int64)

    def sample(
        self,
        tasks: pd.DataFrame | Sequence[str],
        profiles: pd.DataFrame | ProfileGenerator | None = None,
        n_people: int | None = None,
        pairs: pd.DataFrame | None = None,
        reference: ReferenceLike = None,
        random_state: int | np.random.Generator | None = None,
        include_profile: bool = True,
    ) -> pd.DataFrame:
        """Virtual responses: ``task, worker, label`` (+ the virtual person's profile columns).

        ``profiles``: a frame of people (``worker`` + attributes), a :class:`ProfileGenerator` (with
        ``n_people``), or None (``n_people`` drawn from the training pool). ``pairs``: which person
        answers which task (default: everyone answers every task; top-k voters always see every item).
        ``reference``: the LLM reference for tasks the crowd has not seen (frame, Series or a function
        ``tasks -> frame``)."""
        self._check_fitted()
        rng = make_rng(random_state)
        task_frame = self._tasks_frame(tasks)
        prof = self._profiles_frame(profiles, n_people, rng)
        ref = self._resolve_reference(reference, task_frame, fitting=False)
        if self._kind == "topk" and pairs is not None:
            full = len(pairs) == len(task_frame) * len(prof)
            if not full:
                raise ConfigError("top-k voters choose among every item: pass pairs=None")
            pairs = None
        ti, wi = self._pairs(task_frame, prof, pairs)
        mu, _ = self._decisions(task_frame, prof, ti, wi, ref, rng, with_mean=False)
        self._sample_task_ids = task_frame["task"].astype(str).to_numpy()
        labels = self._blend(mu, ti, wi, len(task_frame), len(prof), rng)
        t_cat = pd.Categorical.from_codes(ti, categories=pd.Index(task_frame["task"]).astype(str))
        w_cat = pd.Categorical.from_codes(wi, categories=pd.Index(prof["worker"]).astype(str))
        out = pd.DataFrame({"task": t_cat, "worker": w_cat, "label": labels})
        if include_profile:
            for col in prof.columns:
                if col == "worker":
                    continue
                values = prof[col]
                if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                    cat = pd.Categorical(values)
                    out[col] = pd.Categorical.from_codes(cat.codes[wi], categories=cat.categories)
                else:
                    out[col] = values.to_numpy()[wi]
        return out

    def _blend(self, mu: np.ndarray, ti: np.ndarray, wi: np.ndarray, T: int, P: int,
               rng: np.random.Generator) -> np.ndarray:
        b: Blender = self.blender_
        if self._kind == "topk":
            U = np.full((P, T), -np.inf)
            U[wi, ti] = mu[:, 0]
            chosen = b.sample(U, rng)
            return chosen[wi, ti]
        if self._kind == "categorical":
            return b.sample(mu, rng)
        task_sigma = getattr(self, "task_sigma_", None)
        if isinstance(b, OrdinalBlender) and task_sigma is not None and len(task_sigma):
            ids = np.asarray(self._sample_task_ids, dtype=object)
            per_task = task_sigma.reindex(ids).fillna(float(b.sigma)).to_numpy(dtype=float)  # type: ignore[arg-type]
            return b.sample(mu[:, 0], rng, sigma=per_task[ti])
        return b.sample(mu[:, 0], rng)

    def _check_fitted(self) -> None:
        if not hasattr(self, "belief_"):
            raise ConfigError("this DigitalCrowd is not fitted yet: call fit(dataset, reference=...) first")

    # ================================================================== persistence
    def save(self, directory: str | Path) -> Path:
        """Write the fitted crowd to ``directory`` (safetensors weights + JSON; no pickle, no data texts)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.belief_.save(directory)
        memory = {"tasks": self.task_offsets_.index.tolist(), "columns": list(self.task_offsets_.columns),
                  "values": self.task_offsets_.to_numpy().tolist(), "kappa": self.kappa_}
        state = {
            "format_version": FORMAT_VERSION,
            "kind": "crowdllm.DigitalCrowd",
            "hyper": self._hyper(),
            "label": self.label_.to_dict(),
            "center": self.center_, "scale": self.scale_,
            "ref_default": self.ref_default_, "ref_fill": self.ref_fill_,
            "global_dist": self.global_dist_.tolist() if hasattr(self, "global_dist_") else None,
            "has_reference": self.has_reference_, "p_columns": self.p_columns_,
            "reference": {"tasks": self.reference_.index.tolist(), "columns": list(self.reference_.columns),
                          "values": self.reference_.to_numpy().tolist()},
            "reference_missing": self.reference_missing_,
            "embedder": self.embedder_name_,
            "featurizer": self.featurizer_.get_state(),
            "emb_mean": self.emb_mean_.tolist(), "emb_std": self.emb_std_.tolist(),
            "profile_encoder": self.profile_encoder_.get_state(),
            "profile_columns": self.profile_columns_,
            "pool": self.pool_.to_dict(orient="list"),
            "memory": memory,
            "calibration": (None if getattr(self, "calibrator_", None) is None else {
                "state": self.calibrator_.get_state(), "tasks": self.calibrated_base_.index.tolist(),
                "values": self.calibrated_base_.to_numpy().tolist()}),
            "blender": self.blender_.to_dict(),
            "task_sigma": {"tasks": getattr(self, "task_sigma_", pd.Series(dtype=float)).index.tolist(),
                           "values": getattr(self, "task_sigma_", pd.Series(dtype=float)).tolist()},
            "n_train_responses": self.n_train_responses_,
            # crowd.json is written last: digests of the files it belongs with, so an interrupted save (or
            # files copied from another model) is refused at load instead of mixing two models
            "files": {name: _sha256(directory / name) for name in _BELIEF_FILES},
        }
        atomic_write_json(directory / "crowd.json", state)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DigitalCrowd:
        """Read a crowd written by :meth:`save`. Refuses a newer format version with a clear error."""
        directory = Path(directory)
        path = directory / "crowd.json"
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no saved digital crowd here") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text (UTF-8 JSON) file") from None
        if not isinstance(state, dict) or state.get("kind") != "crowdllm.DigitalCrowd":
            raise ConfigError(f"{path}: not a saved DigitalCrowd")
        try:
            version = int(state.get("format_version", 0))
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: format_version {state.get('format_version')!r} is not a number") from None
        if version > FORMAT_VERSION:
            raise ConfigError(f"{path}: format version {version} is newer than this crowdllm understands "
                              f"({FORMAT_VERSION}); upgrade crowdllm to load it")
        for name, digest in dict(state.get("files") or {}).items():
            if not (directory / name).is_file() or _sha256(directory / name) != digest:
                raise ConfigError(f"{directory / name} does not belong with {path} (an interrupted save, or a "
                                  f"file of another model?); save the crowd again")
        try:
            return cls._from_state(directory, state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            detail = " ".join(f"{type(err).__name__}: {err}".split())[:200]
            raise ConfigError(f"{path}: damaged or incompatible saved crowd ({detail})") from None

    @classmethod
    def _from_state(cls, directory: Path, state: dict[str, Any]) -> DigitalCrowd:
        hyper = dict(state["hyper"])
        crowd = cls(**hyper)
        crowd.label_ = LabelSpec.from_dict(state["label"])
        crowd.center_, crowd.scale_ = float(state["center"]), float(state["scale"])
        crowd.ref_default_, crowd.ref_fill_ = float(state["ref_default"]), float(state["ref_fill"])
        if state.get("global_dist") is not None:
            crowd.global_dist_ = np.asarray(state["global_dist"], dtype=float)
        crowd.has_reference_ = bool(state["has_reference"])
        crowd.p_columns_ = list(state["p_columns"])
        r = state["reference"]
        crowd.reference_ = reference_frame(pd.DataFrame(r["values"], index=pd.Index(r["tasks"], dtype=str),
                                                        columns=r["columns"]))
        crowd.reference_missing_ = int(state.get("reference_missing", 0))
        crowd.embedder_name_ = state["embedder"]
        crowd.featurizer_ = TaskFeaturizer.from_state(state["featurizer"])
        crowd.embedder = crowd.featurizer_.embedder
        crowd.emb_mean_ = np.asarray(state["emb_mean"], dtype=np.float32)
        crowd.emb_std_ = np.asarray(state["emb_std"], dtype=np.float32)
        text_cols = [c for c, k in state["profile_encoder"]["kinds"].items() if k == "text"]
        crowd.profile_encoder_ = ProfileEncoder.from_state(
            state["profile_encoder"], text_encoder=crowd.featurizer_.embedder.embed if text_cols else None)
        crowd.profile_columns_ = list(state["profile_columns"])
        crowd.pool_ = pd.DataFrame(state["pool"])
        mem = state["memory"]
        crowd.task_offsets_ = pd.DataFrame(mem["values"], index=pd.Index(mem["tasks"], dtype=str),
                                           columns=mem["columns"], dtype=float)
        crowd.kappa_ = float(mem["kappa"])
        cal = state.get("calibration")
        crowd.calibrator_ = None
        crowd.calibrated_base_ = pd.Series(dtype=float)
        if cal is not None:
            from crowdllm.belief.calibration import ReferenceCalibrator

            crowd.calibrator_ = ReferenceCalibrator.from_state(cal["state"])
            crowd.calibrated_base_ = pd.Series(cal["values"], index=pd.Index(cal["tasks"], dtype=str), dtype=float)
        crowd.blender_ = blender_from_dict(state["blender"])
        ts = state.get("task_sigma") or {"tasks": [], "values": []}
        crowd.task_sigma_ = pd.Series(ts["values"], index=pd.Index(ts["tasks"], dtype=str), dtype=float)
        crowd.n_train_responses_ = int(state.get("n_train_responses", 0))
        crowd.belief_ = BeliefModel.load(directory)
        return crowd
