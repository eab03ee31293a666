"""The belief generator: a conditional VAE in PyTorch (CPU, seeded, deterministic).

Notation follows the paper (Sec. 3.1-3.2). For a response of person ``v`` to task ``x``:

- ``g_x(x)``: an MLP of the task features -- text embedding, structured attributes and the LLM
  reference (``y_ref`` and its answer distribution, so the network can calibrate the LLM's scale; the
  paper leaves g_x free, we give it the reference as an input);
- ``g_v(v)``: an MLP of the encoded profile;
- pair layer ``h = relu(U g_x + V g_v + b)``: the only place task and person meet. Its first layer is
  additive, so at sampling time ``U g_x`` is computed once per task and ``V g_v`` once per person;
- prior ``p(z | g_x, g_v) = N(mu(h), diag sigma^2(h))`` (a linear head on ``h``);
- encoder ``q(z | g_x, g_v, y - y_ref)`` (training only);
- decoder ``p(x | z, g_v)`` reconstructing the (standardised) task text embedding from ``z`` and
  ``g_v`` -- a Gaussian whose log-likelihood is averaged over embedding dimensions (otherwise 384
  dimensions would drown the one-dimensional rating; ``recon_weight`` scales it);
- belief deviation ``delta = W_z z + W_h h + b``: a readout *affine in z*.

Loss per response = KL(q || p) + recon + lambda * prediction loss, where the prediction is
``base + delta`` (``base`` = the reference in model units: standardised ``y_ref`` for numeric labels,
the reference log-probabilities for categorical labels, the reference logit for top-k items) and the
prediction loss is MSE (continuous / ordinal), cross-entropy (categorical) or binary cross-entropy
(top-k item selection). The prediction loss is applied to ``z ~ q`` (the CVAE path) and, with weight
``prior_pred_weight``, to the prior mean (the path used at sampling time; a "hybrid" CVAE objective).

Because the readout is affine in ``z``, the average of ``J`` belief samples
``(1/J) sum_j delta(z_j), z_j ~ p(z | .)`` is exactly ``N(m, W_z diag(sigma^2) W_z^T / J)`` with
``m = W_h h + b + W_z mu``: sampling it costs one draw, not ``J``.

Adam (lr 1e-3), minibatches, early stopping on the validation rows' prediction loss at the prior mean
(the decision actually used), best weights restored. Saved as safetensors + JSON; never pickle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from crowdllm._io import atomic_path, atomic_write_json, read_json_object
from crowdllm._params import Params
from crowdllm.errors import ConfigError

FORMAT_VERSION = 1
LOSSES = ("mse", "ce", "bce")


@dataclass
class CVAEConfig:
    task_in: int  # task-side input features
    profile_in: int  # encoded profile features
    recon_dim: int  # reconstructed task embedding dimension
    target_dim: int  # encoder's extra input (1 numeric / top-k, C categorical)
    out_dim: int  # readout dimension (1, or C for categorical)
    loss: str = "mse"
    latent_dim: int = 8
    hidden: int = 64
    dropout: float = 0.1
    n_ref: int = 0  # trailing task features that are the LLM reference (no input dropout; skip path)
    skip: str = "none"  # a linear path straight to delta from: none | ref (the reference) | all (task features)
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CVAEConfig:
        version = int(d.get("version", 0))
        if version > FORMAT_VERSION:
            raise ConfigError(f"saved belief model has format version {version}, newer than this crowdllm "
                              f"understands ({FORMAT_VERSION}); upgrade crowdllm to load it")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainData:
    """Arrays for one fit. Rows are responses; task/profile features are gathered by index."""

    task_x: np.ndarray  # (n_tasks, static task features)
    recon: np.ndarray  # (n_tasks, recon_dim) standardised embeddings to reconstruct
    profile_x: np.ndarray  # (n_workers, profile_in)
    ti: np.ndarray  # (n_rows,) task index
    wi: np.ndarray  # (n_rows,) worker index
    base: np.ndarray  # (n_rows, out_dim) reference in model units
    target: np.ndarray  # (n_rows,) float (mse/bce) or int class (ce)
    target_enc: np.ndarray  # (n_rows, target_dim) what the encoder sees (y - y_ref in model units)
    valid: np.ndarray  # (n_rows,) bool: validation rows (early stopping)
    n_ref: int = 0  # the last n_ref columns of task_x are the reference features


@contextlib.contextmanager
def _deterministic(seed: int, threads: int = 1) -> Iterator[None]:
    """Seeded, deterministic torch on ``threads`` CPU threads (restored afterwards). One thread is the
    default: these networks are small, and on a busy machine extra threads mostly wait for each other
    (measured here: 3 ms vs 60 ms per training step)."""
    import torch

    old = torch.are_deterministic_algorithms_enabled()
    old_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(max(1, threads))
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(old)
            torch.set_num_threads(old_threads)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _build(cfg: CVAEConfig) -> Any:
    import torch
    from torch import nn

    H, L = cfg.hidden, cfg.latent_dim

    class BeliefCVAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.in_drop = nn.Dropout(cfg.dropout)
            self.gx = nn.Sequential(nn.Linear(cfg.task_in, H), nn.GELU(),
                                    nn.Dropout(cfg.dropout), nn.Linear(H, H), nn.GELU())
            self.skip_from = {"ref": cfg.task_in - cfg.n_ref, "all": 0}.get(cfg.skip, cfg.task_in)
            if self.skip_from < cfg.task_in:
                self.read_ref = nn.Linear(cfg.task_in - self.skip_from, cfg.out_dim, bias=False)
                nn.init.zeros_(self.read_ref.weight)
            self.gv = nn.Sequential(nn.Linear(max(cfg.profile_in, 1), H), nn.GELU(), nn.Linear(H, H), nn.GELU())
            self.pair_x = nn.Linear(H, H)
            self.pair_v = nn.Linear(H, H, bias=False)
            self.prior = nn.Linear(H, 2 * L)
            self.enc = nn.Sequential(nn.Linear(2 * H + cfg.target_dim, H), nn.GELU(), nn.Linear(H, 2 * L))
            self.dec = nn.Sequential(nn.Linear(L + H, H), nn.GELU(), nn.Linear(H, cfg.recon_dim))
            self.read_z = nn.Linear(L, cfg.out_dim, bias=False)
            self.read_h = nn.Linear(H, cfg.out_dim)

        def task_input(self, tx: torch.Tensor) -> torch.Tensor:
            """Input dropout on the text/attribute features only, never on the LLM reference."""
            if cfg.n_ref <= 0:
                return self.in_drop(tx)
            cut = cfg.task_in - cfg.n_ref
            return torch.cat([self.in_drop(tx[:, :cut]), tx[:, cut:]], dim=1)

        def shift(self, tx: torch.Tensor) -> torch.Tensor:
            """The linear skip path (zeros without it): a per-task addition to the base."""
            if not hasattr(self, "read_ref"):
                return torch.zeros(tx.shape[0], cfg.out_dim)
            return self.read_ref(tx[:, self.skip_from:])

        def conditions(self, tx: torch.Tensor, px: torch.Tensor) -> tuple[torch.Tensor, ...]:
            gx, gv = self.gx(self.task_input(tx)), self.gv(px)
            h = torch.relu(self.pair_x(gx) + self.pair_v(gv))
            mu_p, lv_p = self.prior(h).chunk(2, dim=-1)
            return gx, gv, h, mu_p, lv_p.clamp(-8.0, 6.0)

    return BeliefCVAE()


def _pred_loss(kind: str, pred: Any, target: Any) -> Any:
    import torch.nn.functional as F

    if kind == "mse":
        return ((pred.squeeze(-1) - target) ** 2).mean()
    if kind == "ce":
        return F.cross_entropy(pred, target)
    return F.binary_cross_entropy_with_logits(pred.squeeze(-1), target)


class BeliefModel(Params):
    """The CVAE plus its training loop and a fast numpy sampling path.

    Hyper-parameters: ``latent_dim``, ``hidden``, ``dropout``, ``lam`` (weight of the prediction loss),
    ``lr``, ``epochs`` (maximum), ``batch_size``, ``patience`` (early stopping, in epochs),
    ``weight_decay``, ``recon_weight``, ``kl_weight``, ``prior_pred_weight``, ``skip`` (a linear path
    to delta next to the network, from ``"ref"`` the reference features, ``"all"`` every task feature,
    or ``"none"``), ``random_state``, ``threads``
    (torch CPU threads while training / encoding)."""

    def __init__(self, *, latent_dim: int = 8, hidden: int = 64, dropout: float = 0.1, lam: float = 1.0,
                 lr: float = 1e-3, epochs: int = 200, batch_size: int = 256, patience: int = 10,
                 weight_decay: float = 1e-4, recon_weight: float = 1.0, kl_weight: float = 1.0,
                 prior_pred_weight: float = 1.0, skip: str = "ref", random_state: int = 0,
                 threads: int = 1, verbose: bool = False) -> None:
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.dropout = dropout
        self.lam = lam
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.weight_decay = weight_decay
        self.recon_weight = recon_weight
        self.kl_weight = kl_weight
        self.prior_pred_weight = prior_pred_weight
        self.skip = skip
        self.random_state = random_state
        self.threads = threads
        self.verbose = verbose

    # ------------------------------------------------------------------ training
    def fit(self, data: TrainData, loss: str) -> BeliefModel:
        import torch

        if self.skip not in ("none", "ref", "all"):
            raise ConfigError(f"skip '{self.skip}' is not one of none, ref, all")
        if loss not in LOSSES:
            raise ConfigError(f"prediction loss '{loss}' is not one of {LOSSES}")
        n_tasks = data.task_x.shape[0]
        self.config_ = CVAEConfig(
            task_in=data.task_x.shape[1], profile_in=data.profile_x.shape[1],
            recon_dim=data.recon.shape[1], target_dim=data.target_enc.shape[1], out_dim=data.base.shape[1],
            loss=loss, latent_dim=self.latent_dim, hidden=self.hidden, dropout=self.dropout,
            n_ref=int(data.n_ref), skip=self.skip if (self.skip != "ref" or data.n_ref > 0) else "none",
        )
        cfg = self.config_
        with _deterministic(self.random_state, self.threads):
            net = _build(cfg)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            tx_all = torch.as_tensor(data.task_x, dtype=torch.float32)
            rec_all = torch.as_tensor(data.recon, dtype=torch.float32)
            px_all = torch.as_tensor(self._profiles(data.profile_x), dtype=torch.float32)
            ti = torch.as_tensor(data.ti, dtype=torch.long)
            wi = torch.as_tensor(data.wi, dtype=torch.long)
            base = torch.as_tensor(data.base, dtype=torch.float32)
            tgt = torch.as_tensor(data.target, dtype=torch.long if loss == "ce" else torch.float32)
            tenc = torch.as_tensor(data.target_enc, dtype=torch.float32)
            train_idx = np.flatnonzero(~data.valid)
            valid_idx = np.flatnonzero(data.valid)
            if len(train_idx) == 0:
                raise ConfigError("no training rows left after holding out the validation rows")
            gen = np.random.default_rng(self.random_state)
            best = (np.inf, -1)
            best_state: dict[str, Any] = {}
            self.history_: list[dict[str, float]] = []
            assert n_tasks == rec_all.shape[0]
            # small data sets: shrink the batch so an epoch is at least ~20 optimiser steps, else
            # early stopping (counted in epochs) would stop a barely trained network
            bs = int(min(self.batch_size, max(16, -(-len(train_idx) // 20))))
            self.batch_size_ = bs
            for epoch in range(self.epochs):
                net.train()
                order = gen.permutation(train_idx)
                totals = np.zeros(4)
                for start in range(0, len(order), bs):
                    b = torch.as_tensor(order[start:start + bs], dtype=torch.long)
                    gx, gv, h, mu_p, lv_p = net.conditions(tx_all[ti[b]], px_all[wi[b]])
                    mu_q, lv_q = net.enc(torch.cat([gx, gv, tenc[b]], dim=1)).chunk(2, dim=-1)
                    lv_q = lv_q.clamp(-8.0, 6.0)
                    z = mu_q + torch.exp(0.5 * lv_q) * torch.randn_like(mu_q)
                    kl = 0.5 * (lv_p - lv_q + (torch.exp(lv_q) + (mu_q - mu_p) ** 2) / torch.exp(lv_p) - 1.0)
                    kl = kl.sum(-1).mean()
                    recon = 0.5 * ((net.dec(torch.cat([z, gv], dim=1)) - rec_all[ti[b]]) ** 2).mean()
                    read_h = net.read_h(h) + net.shift(tx_all[ti[b]])
                    pred_q = _pred_loss(loss, base[b] + read_h + net.read_z(z), tgt[b])
                    pred_p = _pred_loss(loss, base[b] + read_h + net.read_z(mu_p), tgt[b])
                    total = (self.kl_weight * kl + self.recon_weight * recon
                             + self.lam * (pred_q + self.prior_pred_weight * pred_p))
                    opt.zero_grad()
                    total.backward()
                    opt.step()
                    totals += np.array([kl.item(), recon.item(), pred_q.item(), pred_p.item()]) * len(b)
                totals /= len(order)
                val = self._valid_loss(net, loss, valid_idx, tx_all, px_all, ti, wi, base, tgt)
                self.history_.append({"epoch": epoch, "kl": totals[0], "recon": totals[1],
                                      "pred_q": totals[2], "pred_prior": totals[3], "valid": val})
                if self.verbose:
                    print(self.history_[-1])
                score = val if np.isfinite(val) else totals[3]
                if score < best[0] - 1e-5:
                    best = (score, epoch)
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                elif epoch - best[1] >= self.patience:
                    break
            net.load_state_dict(best_state)
            net.eval()
        self.best_epoch_ = int(best[1])
        self.valid_loss_ = float(best[0])
        self.net_ = net
        self._export()
        return self

    @staticmethod
    def _profiles(px: np.ndarray) -> np.ndarray:
        return px if px.shape[1] > 0 else np.zeros((px.shape[0], 1), dtype=np.float32)

    def _valid_loss(self, net: Any, loss: str, idx: np.ndarray, tx_all: Any, px_all: Any,
                    ti: Any, wi: Any, base: Any, tgt: Any) -> float:
        import torch

        if len(idx) == 0:
            return float("nan")
        net.eval()
        with torch.no_grad():
            b = torch.as_tensor(idx, dtype=torch.long)
            _, _, h, mu_p, _ = net.conditions(tx_all[ti[b]], px_all[wi[b]])
            pred = base[b] + net.read_h(h) + net.read_z(mu_p) + net.shift(tx_all[ti[b]])
            return float(_pred_loss(loss, pred, tgt[b]).item())

    # ------------------------------------------------------------------ fast sampling path
    def _export(self) -> None:
        """Fold the prior and readout heads into numpy matrices for vectorised sampling."""
        L = self.config_.latent_dim
        sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.net_.state_dict().items()}
        Wp, bp = sd["prior.weight"].T, sd["prior.bias"]  # (H, 2L)
        Wz = sd["read_z.weight"].T  # (L, out)
        Wh, bh = sd["read_h.weight"].T, sd["read_h.bias"]  # (H, out)
        W_mean = Wh + Wp[:, :L] @ Wz
        b_mean = bh + bp[:L] @ Wz
        self._W = np.concatenate([W_mean, Wp[:, L:]], axis=1).astype(np.float32)
        self._b = np.concatenate([b_mean, bp[L:]]).astype(np.float32)
        self._Wz = Wz
        self._out = Wz.shape[1]

    def task_part(self, task_x: np.ndarray) -> np.ndarray:
        """``U g_x(x) + b`` per task: (n_tasks, hidden)."""
        import torch

        with torch.no_grad(), _threads(self.threads):
            t = torch.as_tensor(np.asarray(task_x, dtype=np.float32))
            return self.net_.pair_x(self.net_.gx(self.net_.task_input(t))).numpy()

    def task_shift(self, task_x: np.ndarray) -> np.ndarray:
        """The reference skip path per task, (n_tasks, out): added to the base (zeros without it)."""
        import torch

        with torch.no_grad(), _threads(self.threads):
            t = torch.as_tensor(np.asarray(task_x, dtype=np.float32))
            return self.net_.shift(t).numpy()

    def profile_part(self, profile_x: np.ndarray) -> np.ndarray:
        """``V g_v(v)`` per person: (n_people, hidden)."""
        import torch

        with torch.no_grad(), _threads(self.threads):
            p = torch.as_tensor(self._profiles(np.asarray(profile_x, dtype=np.float32)))
            return self.net_.pair_v(self.net_.gv(p)).numpy()

    def belief(self, A: np.ndarray, B: np.ndarray, ti: np.ndarray, wi: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Prior-mean deviation ``m`` (n, out) and prior log-variance of z (n, L) for pairs (ti, wi).

        ``relu(A[ti] + B[wi]) @ W + b`` on one torch CPU thread (its skinny matmul is ~2x numpy's)."""
        import torch

        with torch.no_grad(), _threads(self.threads):
            At, Bt = torch.from_numpy(np.ascontiguousarray(A)), torch.from_numpy(np.ascontiguousarray(B))
            h = At.index_select(0, torch.from_numpy(np.asarray(ti, dtype=np.int64)))
            h += Bt.index_select(0, torch.from_numpy(np.asarray(wi, dtype=np.int64)))
            h.clamp_(min=0.0)
            out = torch.addmm(torch.from_numpy(self._b), h, torch.from_numpy(self._W)).numpy()
        return out[:, :self._out], out[:, self._out:]

    def sample_deviation(self, m: np.ndarray, logvar: np.ndarray, J: int, rng: np.random.Generator
                         ) -> np.ndarray:
        """One draw of the J-sample average deviation for each pair: ``m + W_z (sigma * eps / sqrt(J))``.

        For a scalar readout this is ``m + sd * eps`` with ``sd^2 = sum_l sigma_l^2 w_l^2 / J`` (the
        same distribution, one random number per pair instead of ``latent_dim``)."""
        if J <= 0:
            return m
        if self._out == 1:
            sd = np.sqrt(np.exp(logvar) @ (self._Wz ** 2) / J)
            return m + sd * rng.standard_normal(m.shape, dtype=np.float32)
        eps = rng.standard_normal(logvar.shape, dtype=np.float32)
        eps *= np.exp(0.5 * logvar) / np.sqrt(J)
        return m + eps @ self._Wz

    def deviation_sd(self, logvar: np.ndarray, J: int = 1) -> np.ndarray:
        """Standard deviation of the J-average deviation per pair (scalar readouts)."""
        var = np.exp(logvar) @ (self._Wz ** 2)
        return np.sqrt(var / max(J, 1))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, prefix: str = "belief") -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        with atomic_path(directory / f"{prefix}.safetensors") as tmp:
            save_file(state, str(tmp))
        hyper = {k: getattr(self, k) for k in ("latent_dim", "hidden", "dropout", "lam", "lr", "epochs",
                                                "batch_size", "patience", "weight_decay", "recon_weight",
                                                "kl_weight", "prior_pred_weight", "skip", "random_state")}
        atomic_write_json(directory / f"{prefix}.json", {
            "format_version": FORMAT_VERSION, "config": self.config_.to_dict(), "hyper": hyper,
            "best_epoch": self.best_epoch_, "valid_loss": self.valid_loss_, "history": self.history_,
        })

    @classmethod
    def load(cls, directory: str | Path, prefix: str = "belief") -> BeliefModel:
        from safetensors.torch import load_file

        directory = Path(directory)
        meta_path = directory / f"{prefix}.json"
        meta = read_json_object(meta_path, "saved belief model")
        try:
            version = int(meta.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise ConfigError(f"{meta_path}: format version {version} is newer than this crowdllm "
                                  f"understands ({FORMAT_VERSION}); upgrade crowdllm to load it")
            model = cls(**meta.get("hyper", {}))
            model.config_ = CVAEConfig.from_dict(meta["config"])
            model.best_epoch_ = int(meta.get("best_epoch", -1))
            model.valid_loss_ = float(meta.get("valid_loss", float("nan")))
            model.history_ = list(meta.get("history", []))
            net = _build(model.config_)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            detail = " ".join(f"{type(err).__name__}: {err}".split())[:200]
            raise ConfigError(f"{meta_path}: damaged or incompatible saved belief model ({detail})") from None
        try:
            state = load_file(str(directory / f"{prefix}.safetensors"))
            net.load_state_dict(state, strict=True)
        except Exception as err:  # safetensors/torch raise several types for a bad file
            raise ConfigError(f"{directory / (prefix + '.safetensors')}: cannot load weights "
                              f"({str(err).splitlines()[0]})") from None
        net.eval()
        model.net_ = net
        model._export()
        return model
