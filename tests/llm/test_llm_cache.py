"""The disk cache: one entry per (prompt, parameters, sample index); reruns make no calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdllm.llm import CachedLLM, DiskCache, FakeLLM, MeteredLLM, Usage
from crowdllm.llm.base import Completion, GenerationParams

PROMPTS = [[{"role": "user", "content": f"text {i}"}] for i in range(5)]


def _script(messages, index, params):  # noqa: ANN001, ANN202 - FakeLLM script signature
    return f"{messages[-1]['content']} / sample {index} / t={params.temperature}"


def test_second_run_is_served_from_disk_without_calls(tmp_path: Path) -> None:
    fake = FakeLLM(_script)
    first = CachedLLM(fake, tmp_path / "c.sqlite").generate(PROMPTS, n=3, temperature=0.5, seed=1)
    assert len(fake.calls) == 15
    # a new process would open the same file: a new cache object over a new fake
    fake2 = FakeLLM(_script)
    again = CachedLLM(fake2, tmp_path / "c.sqlite").generate(PROMPTS, n=3, temperature=0.5, seed=1)
    assert fake2.calls == []
    assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in first]
    assert all(c.cached for row in again for c in row)


def test_each_sample_index_is_its_own_entry(tmp_path: Path) -> None:
    fake = FakeLLM(_script)
    llm = CachedLLM(fake, tmp_path / "c.sqlite")
    out = llm.generate(PROMPTS[:1], n=8, temperature=0.0)
    assert len(fake.calls) == 8 and len(llm.cache) == 8
    assert [c.text.split(" / ")[1] for c in out[0]] == [f"sample {i}" for i in range(8)]


def test_asking_for_more_samples_calls_only_for_the_new_ones(tmp_path: Path) -> None:
    fake = FakeLLM(_script)
    llm = CachedLLM(fake, tmp_path / "c.sqlite")
    llm.generate(PROMPTS, n=5, temperature=0.5)
    fake.calls.clear()
    out = llm.generate(PROMPTS, n=8, temperature=0.5)
    assert len(fake.calls) == 5 * 3
    assert sorted({c["sample"] for c in fake.calls}) == [5, 6, 7]
    assert [c.text.split(" / ")[1] for c in out[2]] == [f"sample {i}" for i in range(8)]


def test_a_partly_answered_batch_asks_only_for_the_gaps(tmp_path: Path) -> None:
    fake = FakeLLM(_script)
    llm = CachedLLM(fake, tmp_path / "c.sqlite")
    llm.generate(PROMPTS[:2], n=4)
    fake.calls.clear()
    llm.generate(PROMPTS, n=4)
    assert {c["messages"][-1]["content"] for c in fake.calls} == {"text 2", "text 3", "text 4"}
    assert len(fake.calls) == 12


def test_parameters_and_model_are_part_of_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    fake = FakeLLM(_script)
    llm = CachedLLM(fake, path)
    llm.generate(PROMPTS[:1], n=1, temperature=0.0)
    llm.generate(PROMPTS[:1], n=1, temperature=0.5)
    llm.generate(PROMPTS[:1], n=1, temperature=0.5, max_tokens=10)
    llm.generate(PROMPTS[:1], n=1, temperature=0.5, seed=3)
    assert len(fake.calls) == 4
    other = FakeLLM(_script, model="fake-2")
    CachedLLM(other, path).generate(PROMPTS[:1], n=1, temperature=0.0)
    assert len(other.calls) == 1


def test_distributions_are_cached(tmp_path: Path) -> None:
    fake = FakeLLM(choice_script=lambda m, c: [1, 2, 3, 2, 1])
    llm = CachedLLM(fake, tmp_path / "c.sqlite")
    first = llm.choice_probs(PROMPTS, list("12345"))
    again = llm.choice_probs(PROMPTS, list("12345"))
    assert len(fake.calls) == 5
    assert [d.probs for d in again] == [d.probs for d in first]
    assert all(d.cached for d in again) and not any(d.cached for d in first)
    # another choice set is another question
    llm.choice_probs(PROMPTS[:1], ["1", "2", "3"])
    assert len(fake.calls) == 6


def test_error_answers_are_not_cached_so_a_rerun_asks_again(tmp_path: Path) -> None:
    class Flaky(FakeLLM):
        def _generate(self, prompts, params):  # noqa: ANN001, ANN202
            out = super()._generate(prompts, params)
            return [[Completion(text="", error="empty reply") for _ in row] for row in out]

    flaky = Flaky("x")
    llm = CachedLLM(flaky, tmp_path / "c.sqlite")
    llm.generate(PROMPTS[:2], n=1)
    llm.generate(PROMPTS[:2], n=1)
    assert len(flaky.calls) == 4
    assert len(llm.cache) == 0


def test_backend_without_logprobs_caches_each_fallback_sample(tmp_path: Path) -> None:
    answers = iter(["Rating: 4", "Rating: 5", "four", "no idea"] * 10)
    fake = FakeLLM(lambda m, i, p: next(answers), logprobs=False)
    usage = Usage()
    llm = MeteredLLM(CachedLLM(fake, tmp_path / "c.sqlite"), usage)
    dist = llm.choice_probs(PROMPTS[:1], list("12345"), fallback_samples=4)[0]
    assert dist.method == "sampling"
    assert dist.as_dict() == pytest.approx({"1": 0, "2": 0, "3": 0, "4": 2 / 3, "5": 1 / 3})
    assert dist.parse_failures == 1
    assert len(fake.calls) == 4
    llm.choice_probs(PROMPTS[:1], list("12345"), fallback_samples=4)
    assert len(fake.calls) == 4
    d = usage.as_dict()
    assert d["calls"] == 4 and d["cache_hits"] == 4
    assert d["fallbacks_to_sampling"] == 2 and d["parse_failures"] == 2


def test_cache_info_and_clear(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c.sqlite")
    CachedLLM(FakeLLM("a"), cache).generate(PROMPTS, n=2)
    CachedLLM(FakeLLM("a", model="other"), cache).generate(PROMPTS[:1], n=1)
    info = cache.info()
    assert info["entries"] == 11
    assert {(g["model"], g["entries"]) for g in info["groups"]} == {("fake-1", 10), ("other", 1)}
    assert cache.clear(model="other") == 1
    assert cache.clear() == 10
    assert len(cache) == 0


def test_first_sample_offset_reaches_the_backend() -> None:
    fake = FakeLLM(_script)
    params = GenerationParams(n=2, first_sample=5)
    out = fake._generate(PROMPTS[:1], params)
    assert [c.text.split(" / ")[1] for c in out[0]] == ["sample 5", "sample 6"]


def test_a_broken_cache_file_is_a_one_line_config_error(tmp_path: Path) -> None:
    from crowdllm.errors import ConfigError

    bad = tmp_path / "c.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="c.sqlite"):
        DiskCache(bad)
