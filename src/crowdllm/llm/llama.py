"""The embedded offline backend: a GGUF model run in-process by llama.cpp (llama-cpp-python).

No server and no network: ``LlamaCppLLM()`` loads the default model (see :mod:`crowdllm.llm.models`),
``LlamaCppLLM("test")`` the small SmolLM2 test model, ``LlamaCppLLM("file.gguf")`` any GGUF.

- Prompts are rendered with the model's own chat template (from the GGUF metadata) and tokenized here.
  Message text is tokenized as plain text: a message that contains a special-token string such as
  ``<|im_end|>`` cannot close its turn early (such messages are tokenized piece by piece).
- A trailing assistant message is an answer prefix the model continues.
- ``choice_probs`` makes ONE forward pass per prompt and reads the next-token distribution over the
  choices (e.g. "1".."5") from the logits. It reuses llama.cpp's KV cache for the part of the prompt
  shared with the previous call (system message, instructions, examples), so only the task text is
  evaluated: put the shared part first (``crowdllm.llm.prompts`` does). Choices that do not differ in
  their first token (e.g. "1" and "10") are scored as whole token sequences followed by end-of-turn.
- ``generate`` samples with llama.cpp; sample ``i`` uses seed ``seed + i`` (greedy at temperature 0).

The model is not thread-safe: calls are serialised with a lock.
"""

from __future__ import annotations

import math
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from crowdllm.errors import BackendError, ConfigError
from crowdllm.llm.base import ChoiceDistribution, Completion, GenerationParams, LanguageModel
from crowdllm.llm.models import model_fingerprint, resolve_model_path

_SENTINEL = re.compile("\ue000(\\d+)\ue001")


def _import_llama() -> Any:
    # llama.cpp's CPU threads come from OpenMP; by default idle threads spin, which on a machine shared
    # with other work (or several crowdllm processes) makes every pass several times slower. Passive
    # waiting costs little on an idle machine. Set OMP_WAIT_POLICY=ACTIVE yourself to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError:
        raise BackendError("the embedded backend needs llama-cpp-python: run `make setup` (or pip install "
                           "llama-cpp-python), or use a server with --base-url") from None
    return llama_cpp


class LlamaCppLLM(LanguageModel):
    """A GGUF model in-process (see module docstring)."""

    backend = "llama-cpp"
    supports_logprobs = True

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
    ) -> None:
        if n_ctx < 64:
            raise ConfigError(f"n_ctx {n_ctx} is too small (at least 64 tokens)")
        llama_cpp = _import_llama()
        self._lib = llama_cpp
        path = resolve_model_path(model_path)
        threads = n_threads or int(os.environ.get("CROWDLLM_THREADS", "0")) or os.cpu_count() or 1
        try:
            self._llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_batch, n_threads=threads,
                                        seed=seed, verbose=False, logits_all=False)
        except (ValueError, RuntimeError) as err:
            raise BackendError(f"llama.cpp could not load {path}: {' '.join(str(err).split())[:200]}") from None
        self.path = Path(path)
        self.model = f"{self.path.stem}@{model_fingerprint(self.path)}"
        self.n_ctx = n_ctx
        self.seed = int(seed)
        self._lock = threading.Lock()
        self._vocab = self._llm.n_vocab()
        self._choice_cache: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._formatter = self._make_formatter()

    # ---------------------------------------------------------------- prompt -> tokens
    def _make_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(f"{self.path.name} has no chat template in its metadata; use a chat (instruct) model")
        model = self._llm._model
        eos, bos = self._llm.token_eos(), self._llm.token_bos()
        self._eos_text = model.token_get_text(eos) if eos != -1 else ""
        bos_text = model.token_get_text(bos) if bos != -1 else ""
        eot = model.token_eot() if hasattr(model, "token_eot") else -1
        self._end_token = eot if eot != -1 else eos
        return Jinja2ChatFormatter(template=template, eos_token=self._eos_text, bos_token=bos_text,
                                   add_generation_prompt=True)

    def _tok(self, text: str, *, special: bool, add_bos: bool = False) -> list[int]:
        if not text:
            return []
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def _head_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """Tokens of the chat-formatted ``messages`` up to and including the assistant turn's header."""
        marked = [{"role": m["role"], "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)]
        result = self._formatter(messages=marked)
        add_bos = not getattr(result, "added_special", False)
        rendered = result.prompt
        # the normal case: no message contains special-token text, so tokenize the whole prompt at once
        # (exactly as the model was trained); otherwise go piece by piece so data cannot inject tokens
        safe = all(self._tok(m["content"], special=True) == self._tok(m["content"], special=False)
                   for m in messages)
        if safe:
            full = _SENTINEL.sub(lambda mt: messages[int(mt.group(1))]["content"], rendered)
            return self._tok(full, special=True, add_bos=add_bos)
        tokens: list[int] = []
        pos = 0
        first = True
        for mt in _SENTINEL.finditer(rendered):
            tokens += self._tok(rendered[pos:mt.start()], special=True, add_bos=add_bos and first)
            first = False
            tokens += self._tok(messages[int(mt.group(1))]["content"], special=False)
            pos = mt.end()
        tokens += self._tok(rendered[pos:], special=True)
        return tokens

    @staticmethod
    def _split(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
        if messages and messages[-1]["role"] == "assistant":
            return messages[:-1], messages[-1]["content"]
        return messages, ""

    def _check_length(self, n: int, extra: int) -> str | None:
        if n + extra > self.n_ctx:
            return f"prompt of {n} tokens (+{extra} to generate) exceeds the context of {self.n_ctx} tokens (n_ctx)"
        return None

    # ---------------------------------------------------------------- forward pass with KV reuse
    def _logits_after(self, tokens: list[int]) -> np.ndarray:
        """Next-token logits after ``tokens``, evaluating only what differs from the cached prefix."""
        llm = self._llm
        cached = llm.input_ids[: llm.n_tokens]
        common = 0
        limit = min(len(cached), len(tokens))
        while common < limit and cached[common] == tokens[common]:
            common += 1
        if common == len(tokens):
            common -= 1  # re-evaluate the last token to get fresh logits
        llm.n_tokens = common  # eval() drops the KV cells from here on
        llm.eval(tokens[common:])
        ptr = self._lib.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._vocab,)).astype(np.float64, copy=True)

    @staticmethod
    def _log_softmax(logits: np.ndarray) -> np.ndarray:
        m = float(np.max(logits))
        return logits - (m + math.log(float(np.sum(np.exp(logits - m)))))

    def _choice_plan(self, prefix: str, choices: tuple[str, ...]) -> tuple[list[int], list[list[int]] | None,
                                                                             list[list[int]]]:
        """For answer prefix + each choice: the shared context tokens, the single next-token ids per
        choice (with case variants) when they tell the choices apart, and each choice's full tokens."""
        key = (prefix, choices)
        if key in self._choice_cache:
            return self._choice_cache[key]
        seqs = [self._tok(prefix + c, special=False) for c in choices]
        lcp = 0
        while all(len(s) > lcp for s in seqs) and len({s[lcp] for s in seqs}) == 1:
            lcp += 1
        context = seqs[0][:lcp]
        firsts = [s[lcp] if len(s) > lcp else None for s in seqs]
        single: list[list[int]] | None = None
        if None not in firsts and len(set(firsts)) == len(firsts):
            claimed: dict[int, int] = {}
            sets: list[list[int]] = []
            for ci, c in enumerate(choices):
                ids = []
                for variant in dict.fromkeys([c, c.lower(), c.capitalize(), c.upper()]):
                    t = self._tok(prefix + variant, special=False)
                    if t[:lcp] == context and len(t) > lcp:
                        ids.append(t[lcp])
                sets.append(list(dict.fromkeys(ids)))
                for tid in sets[-1]:
                    claimed[tid] = -1 if tid in claimed and claimed[tid] != ci else ci
            single = [[tid for tid in ids if claimed[tid] == ci] for ci, ids in enumerate(sets)]
        plan = (context, single, [s[lcp:] for s in seqs])
        self._choice_cache[key] = plan
        return plan

    def _one_distribution(self, messages: list[dict[str, str]], choices: tuple[str, ...]) -> ChoiceDistribution:
        body, prefix = self._split(messages)
        head = self._head_tokens(body)
        context, single, rests = self._choice_plan(prefix, choices)
        tokens = head + context
        longest = max(len(r) for r in rests) + 1
        problem = self._check_length(len(tokens), longest)
        if problem:
            return ChoiceDistribution(choices=choices, probs=tuple(float("nan") for _ in choices), mass=0.0,
                                      prompt_tokens=len(tokens), extra={"error": problem})
        logp = self._log_softmax(self._logits_after(tokens))
        if single is not None:
            p = np.array([float(np.sum(np.exp(logp[ids]))) if ids else 0.0 for ids in single])
            mass = float(p.sum())
            probs = p / mass if mass > 0 else np.full(len(choices), np.nan)
            return ChoiceDistribution(choices=choices, probs=tuple(float(x) for x in probs), mass=mass,
                                      prompt_tokens=len(tokens), completion_tokens=1)
        # sequences: log P(choice tokens, then end of turn), one extra pass per choice token
        scores = []
        for rest in rests:
            seq = [*rest, self._end_token]
            total = float(logp[seq[0]])
            for j in range(1, len(seq)):
                step = self._log_softmax(self._logits_after(tokens + seq[:j]))
                total += float(step[seq[j]])
            scores.append(total)
        s = np.array(scores)
        mass = float(np.exp(s).sum())
        probs = np.exp(s - s.max())
        probs /= probs.sum()
        return ChoiceDistribution(choices=choices, probs=tuple(float(x) for x in probs), mass=min(1.0, mass),
                                  prompt_tokens=len(tokens), completion_tokens=max(len(r) for r in rests),
                                  extra={"scored": "sequences"})

    def _iter_choice_probs(self, prompts: list[list[dict[str, str]]], choices: tuple[str, ...], *,
                           fallback_samples: int = 8, seed: int | None = None):  # noqa: ANN202
        for pos, messages in enumerate(prompts):
            with self._lock:
                dist = self._one_distribution(messages, choices)
            yield pos, dist

    # ---------------------------------------------------------------- generation
    def _one_sample(self, messages: list[dict[str, str]], params: GenerationParams, index: int) -> Completion:
        body, prefix = self._split(messages)
        stripped = prefix.rstrip()
        tokens = self._head_tokens(body) + self._tok(stripped, special=False)
        problem = self._check_length(len(tokens), params.max_tokens)
        if problem:
            return Completion(text="", prompt_tokens=len(tokens), error=problem)
        seed = params.sample_seed(index)
        if seed is None:
            seed = self.seed + index
        out = self._llm.create_completion(
            prompt=tokens, max_tokens=params.max_tokens, temperature=max(0.0, float(params.temperature)),
            top_p=1.0, top_k=0, min_p=0.0, typical_p=1.0, repeat_penalty=1.0, seed=int(seed),
            stop=list(params.stop) or None,
        )
        choice = out["choices"][0]
        text = choice["text"]
        if stripped != prefix:  # the prefix lost its trailing space: the model wrote it
            text = text.lstrip()
        usage = out.get("usage") or {}
        return Completion(text=text, prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
                          completion_tokens=int(usage.get("completion_tokens", 0)),
                          finish_reason=choice.get("finish_reason"))

    def _iter_generate(self, prompts: list[list[dict[str, str]]], params: GenerationParams):  # noqa: ANN202
        for pos, messages in enumerate(prompts):
            for i in range(params.first_sample, params.first_sample + params.n):
                with self._lock:
                    comp = self._one_sample(messages, params, i)
                yield pos, i, comp

    def _generate(self, prompts: list[list[dict[str, str]]], params: GenerationParams) -> list[list[Completion]]:
        out: list[list[Completion]] = [[] for _ in prompts]
        for pos, _i, comp in self._iter_generate(prompts, params):
            out[pos].append(comp)
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.path), "n_ctx": self.n_ctx}

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is not None:
            try:
                llm.close()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
            self._llm = None
