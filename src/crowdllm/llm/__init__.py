"""The LLM layer: one small interface, backends, prompts, parsing, references, a crash-safe cache, usage.

>>> from crowdllm.llm import FakeLLM, build_prompt
>>> llm = FakeLLM(choice_script=lambda messages, choices: [0, 0, 1, 3, 0])
>>> dist = llm.choice_probs([build_prompt("You are all idiots.", kind="rating")], ["1", "2", "3", "4", "5"])[0]
>>> round(dist.expected_value(), 2)
3.75

Open a real backend with :func:`open_backend`: the embedded llama.cpp model when no ``base_url`` is
given, any OpenAI-compatible server otherwise. It comes wrapped in the disk cache and usage accounting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from crowdllm.llm.base import ChoiceDistribution, Completion, GenerationParams, LanguageModel, as_prompt
from crowdllm.llm.cache import CachedLLM, DiskCache
from crowdllm.llm.fake import FakeLLM
from crowdllm.llm.parsing import parse_choice, parse_rating, parse_topk
from crowdllm.llm.prompts import build_prompt, persona_sentence
from crowdllm.llm.usage import MeteredLLM, Usage


def open_backend(
    *,
    base_url: str | Sequence[str] | None = None,
    model: str | None = None,
    model_path: str | os.PathLike[str] | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 4,
    rpm: float | None = None,
    timeout: float = 60.0,
    cache: bool | str | os.PathLike[str] = True,
    price_in: float | None = None,
    price_out: float | None = None,
    n_ctx: int = 2048,
    seed: int = 0,
    endpoint: str = "chat",
    max_retries: int | None = None,
    hidden_states: bool = False,
) -> MeteredLLM:
    """A ready backend, wrapped in the disk cache (unless ``cache=False``) and usage accounting.

    - no ``base_url``: the embedded llama.cpp model (``model_path``: a GGUF file, ``"test"`` for the small
      SmolLM2 model, ``hf:owner/repo/file.gguf``; default: Qwen2.5-Coder-1.5B-Instruct),
    - ``base_url`` (one or several, used round-robin): an OpenAI-compatible server; ``model`` names the
      served model (default: the first one the server lists); the API key is read from the environment
      variable ``api_key_env``.

    ``cache``: True for ``$CROWDLLM_CACHE/llm-cache.sqlite``, a path for another file, False for none.
    ``price_in`` / ``price_out``: price per million prompt / completion tokens for the cost line.
    ``max_retries``: retries of a server fault that may pass (None: ``openai_compat.MAX_RETRIES``, 6).
    ``hidden_states``: log-prob answers also carry the model's hidden state (embedded model only).
    The result's ``.usage`` (:class:`Usage`) has ``.as_dict()`` and ``.render()``."""
    inner: LanguageModel
    if base_url:
        if model_path is not None:
            from crowdllm.errors import ConfigError

            raise ConfigError("model_path is for the embedded model; with base_url name the served model instead")
        if hidden_states:
            from crowdllm.errors import ConfigError

            raise ConfigError("hidden_states are read from the embedded model; a server does not return them")
        from crowdllm.llm.openai_compat import OpenAICompatLLM

        inner = OpenAICompatLLM(base_url, model, api_key_env=api_key_env, endpoint=endpoint,
                                concurrency=concurrency, rpm=rpm, timeout=timeout,
                                **({} if max_retries is None else {"max_retries": max_retries}))
    else:
        from crowdllm.llm.llama import LlamaCppLLM

        if model_path is None and model is not None:
            if not (str(model).endswith(".gguf") or str(model) in ("test", "default") or str(model).startswith("hf:")):
                from crowdllm.errors import ConfigError

                raise ConfigError(f"model {model!r} names a served model: give base_url too, or use "
                                  f"model_path FILE.gguf for the embedded model")
            model_path = model
        inner = LlamaCppLLM(model_path, n_ctx=n_ctx, seed=seed, hidden_states=hidden_states)
    if cache:
        inner = CachedLLM(inner, None if cache is True else cache)
    return MeteredLLM(inner, Usage(price_in=price_in, price_out=price_out))


def __getattr__(name: str):  # noqa: ANN202 - lazy imports of heavier modules
    if name in ("compute_references", "save_references", "load_references", "persona_choice_probs"):
        from crowdllm.llm import reference

        return getattr(reference, name)
    raise AttributeError(name)


__all__ = [
    "CachedLLM", "ChoiceDistribution", "Completion", "DiskCache", "FakeLLM", "GenerationParams", "LanguageModel",
    "MeteredLLM", "Usage", "as_prompt", "build_prompt", "compute_references", "load_references", "open_backend",
    "parse_choice", "parse_rating", "parse_topk", "persona_choice_probs", "persona_sentence", "save_references",
]
