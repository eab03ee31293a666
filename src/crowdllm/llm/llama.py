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
  evaluated: put the shared part first (``crowdllm.llm.prompts`` does). Measured on 2 busy cores this
  costs 0.8x the raw prefill time of the text's own tokens (``benchmarks/llm_bench.py``, docs/llm.md).
- ``score_batch=B`` (B > 1) instead evaluates the shared prefix once into sequence 0 of a context of its
  own and then B prompts per ``llama_batch``, each with its own sequence id, a copy of the prefix cells
  (``llama_memory_seq_cp``; the KV cache is unified, so the cells are shared, not copied) and its own
  tokens, reading each prompt's logits at its last token. On this project's 2-core machine it was no
  faster (0.9-1.0x) and its probabilities differ from one-at-a-time by float rounding amplified by the
  4-bit weights (max 0.02, expected rating 0.04 on the default model), so it is off by default; it is
  kept for machines where larger batches are cheaper per token (``llm_bench.reference_speed`` measures
  both side by side).
- Choices that do not differ in their first token (e.g. "1" and "10") are scored one prompt at a time
  as whole token sequences followed by end-of-turn.
- ``hidden_states=True``: each log-prob answer also carries the model's hidden state (the last layer,
  ``n_embd`` numbers) at the answer position, in ``ChoiceDistribution.extra["hidden"]``: the last prompt
  token is evaluated once more with embeddings switched on (one token, not a second pass over the
  prompt; switching them on for the whole prompt would compute the vocabulary logits of every token,
  ~4x slower). A richer reading of the task for the crowd (:mod:`crowdllm.crowd.reference`); the same
  probabilities as without. One prompt at a time (not with ``score_batch`` > 1).
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
        score_batch: int = 1,
        hidden_states: bool = False,
    ) -> None:
        if n_ctx < 64:
            raise ConfigError(f"n_ctx {n_ctx} is too small (at least 64 tokens)")
        if score_batch < 1:
            raise ConfigError(f"score_batch must be at least 1 (got {score_batch})")
        if hidden_states and score_batch > 1:
            raise ConfigError("hidden states are read one prompt at a time: use score_batch=1")
        self.hidden_states = bool(hidden_states)
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
        self.score_batch = int(score_batch)
        self._threads = threads
        self._n_batch = n_batch
        self._scorer: _BatchScorer | None = None  # made on first use (its own KV cache)

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
    def _cached_prefix(self, tokens: list[int], most: int) -> int:
        """How many leading ``tokens`` (at most ``most``) the KV cache already holds."""
        cached = self._llm.input_ids[: self._llm.n_tokens]
        common, limit = 0, min(len(cached), most)
        while common < limit and cached[common] == tokens[common]:
            common += 1
        return common

    def _logits_after(self, tokens: list[int]) -> np.ndarray:
        """Next-token logits after ``tokens``, evaluating only what differs from the cached prefix."""
        llm = self._llm
        common = self._cached_prefix(tokens, len(tokens))
        if common == len(tokens):
            common -= 1  # re-evaluate the last token to get fresh logits
        llm.n_tokens = common  # eval() drops the KV cells from here on
        llm.eval(tokens[common:])
        ptr = self._lib.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._vocab,)).astype(np.float64, copy=True)

    def _hidden_after(self, tokens: list[int]) -> list[float]:
        """The last layer's state at the last of ``tokens`` (re-evaluating only that token when the KV
        cache already holds the rest, as it does right after the log-prob pass)."""
        llm, ctx = self._llm, self._llm._ctx.ctx
        common = self._cached_prefix(tokens, len(tokens) - 1)
        llm.n_tokens = common
        self._lib.llama_set_embeddings(ctx, True)
        try:
            llm.eval(tokens[common:])
            ptr = self._lib.llama_get_embeddings_ith(ctx, -1)
            if not ptr:
                raise BackendError("llama.cpp returned no hidden state for the answer position")
            return np.ctypeslib.as_array(ptr, shape=(llm.n_embd(),)).astype(float).tolist()
        finally:
            self._lib.llama_set_embeddings(ctx, False)

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

    def _plan_prompt(self, messages: list[dict[str, str]], choices: tuple[str, ...]
                     ) -> tuple[list[int], list[list[int]] | None, list[list[int]], str | None]:
        """The tokens to evaluate for one prompt (chat head + the answer prefix's shared tokens), the
        single next-token ids per choice (None: score whole sequences), each choice's own tokens, and a
        problem (too long for the context) or None."""
        body, prefix = self._split(messages)
        context, single, rests = self._choice_plan(prefix, choices)
        tokens = self._head_tokens(body) + context
        return tokens, single, rests, self._check_length(len(tokens), max(len(r) for r in rests) + 1)

    def _distribution(self, choices: tuple[str, ...], single: list[list[int]], logits: np.ndarray,
                      n_tokens: int) -> ChoiceDistribution:
        """Renormalised probabilities of the choices' first tokens (case variants summed)."""
        logp = self._log_softmax(logits)
        p = np.array([float(np.sum(np.exp(logp[ids]))) if ids else 0.0 for ids in single])
        mass = float(p.sum())
        probs = p / mass if mass > 0 else np.full(len(choices), np.nan)
        return ChoiceDistribution(choices=choices, probs=tuple(float(x) for x in probs), mass=mass,
                                  prompt_tokens=n_tokens, completion_tokens=1)

    def _sequence_distribution(self, tokens: list[int], choices: tuple[str, ...], rests: list[list[int]]
                               ) -> ChoiceDistribution:
        """log P(choice tokens, then end of turn) per choice: one extra pass per choice token."""
        logp = self._log_softmax(self._logits_after(tokens))
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
        """Distributions in prompt order, ``score_batch`` prompts per forward pass (see the module docstring)."""
        pending: list[tuple[int, list[int], list[list[int]]]] = []  # prompts waiting for a batched pass
        for pos, messages in enumerate(prompts):
            tokens, single, rests, problem = self._plan_prompt(messages, choices)
            if problem:
                yield pos, ChoiceDistribution(choices=choices, probs=tuple(float("nan") for _ in choices), mass=0.0,
                                              prompt_tokens=len(tokens), extra={"error": problem})
            elif single is None or self.score_batch == 1:
                with self._lock:
                    dist = (self._sequence_distribution(tokens, choices, rests) if single is None else
                            self._distribution(choices, single, self._logits_after(tokens), len(tokens)))
                    if self.hidden_states:
                        dist.extra["hidden"] = self._hidden_after(tokens)
                yield pos, dist
            else:
                pending.append((pos, tokens, single))
                if len(pending) == self.score_batch or pos == len(prompts) - 1:
                    yield from self._score_pending(pending, choices)
                    pending = []
        yield from self._score_pending(pending, choices)

    def _score_pending(self, pending: list[tuple[int, list[int], list[list[int]]]], choices: tuple[str, ...]
                       ) -> Any:
        if not pending:
            return
        with self._lock:
            if self._scorer is None:
                self._scorer = _BatchScorer(self._lib, self._llm, n_ctx=self.n_ctx, n_batch=self._n_batch,
                                            n_seqs=self.score_batch, threads=self._threads)
            logits = self._scorer.logits([tokens for _, tokens, _ in pending])
        for (pos, tokens, single), row in zip(pending, logits, strict=True):
            yield pos, self._distribution(choices, single, row, len(tokens))

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

    def cache_identity(self) -> dict[str, Any]:
        """With hidden states the cached answers carry them: a cache entry without them never answers."""
        return {**super().cache_identity(), **({"hidden_states": True} if self.hidden_states else {})}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.path), "n_ctx": self.n_ctx}

    def close(self) -> None:
        scorer = getattr(self, "_scorer", None)
        if scorer is not None:  # its context must go before the model it was made from
            scorer.close()
            self._scorer = None
        llm = getattr(self, "_llm", None)
        if llm is not None:
            try:
                llm.close()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
            self._llm = None


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class _BatchScorer:
    """Next-token logits after each of several token lists that share a prefix, in one ``llama_batch``.

    A llama.cpp context of its own (on the same model weights) with a unified KV cache for ``n_seqs + 1``
    sequences: sequence 0 holds the shared prefix (kept between calls, so the next batch of prompts with
    the same instructions costs only their own tokens); prompt ``i`` of a batch is sequence ``i + 1``, made
    from sequence 0 with ``llama_memory_seq_cp`` (the unified cache shares those cells, nothing is copied)
    plus its own tokens. All prompts' own tokens go into one batch (split only when longer than
    ``n_batch``), each marked to output logits at its last token."""

    def __init__(self, lib: Any, llm: Any, *, n_ctx: int, n_batch: int, n_seqs: int, threads: int) -> None:
        self._lib = lib
        # the embedded model's own context settings (threads, attention kernel, KV types: the same numbers
        # as one prompt at a time), with room for the extra sequences in one unified KV cache
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, int(params.n_ubatch) or n_batch)
        params.n_seq_max = n_seqs + 1
        params.kv_unified = True
        params.n_threads = threads
        params.n_threads_batch = threads
        self._ctx = lib.llama_init_from_model(llm._model.model, params)
        if not self._ctx:
            raise BackendError("llama.cpp could not make a context for batched log-prob scoring")
        self._mem = lib.llama_get_memory(self._ctx)
        self._batch = lib.llama_batch_init(n_batch, 0, 1)
        self._vocab = llm.n_vocab()
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.n_seqs = n_seqs
        self._prefix: list[int] = []  # the tokens sequence 0 holds

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> list[np.ndarray]:
        """Decode (token, position, sequence, want logits) entries in order; the logits of those wanted."""
        lib, batch, out = self._lib, self._batch, []
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start:start + self.n_batch]
            batch.n_tokens = len(chunk)
            wanted = []
            for j, (token, pos, seq, want) in enumerate(chunk):
                batch.token[j] = token
                batch.pos[j] = pos
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = seq
                batch.logits[j] = 1 if want else 0
                if want:
                    wanted.append(j)
            rc = lib.llama_decode(self._ctx, batch)
            if rc != 0:
                raise BackendError(f"llama.cpp could not evaluate a batch of {len(chunk)} tokens (llama_decode "
                                   f"returned {rc}); try a smaller score_batch or a larger n_ctx")
            for j in wanted:
                ptr = lib.llama_get_logits_ith(self._ctx, j)
                out.append(np.ctypeslib.as_array(ptr, shape=(self._vocab,)).astype(np.float64, copy=True))
        return out

    def logits(self, token_lists: list[list[int]]) -> list[np.ndarray]:
        """The next-token logits after each token list (at most ``n_seqs`` lists)."""
        assert 0 < len(token_lists) <= self.n_seqs
        lib, mem = self._lib, self._mem
        shared = min(len(t) for t in token_lists) - 1  # every list keeps at least one token of its own
        for t in token_lists[1:]:
            shared = min(shared, _common_prefix(token_lists[0], t))
        if len(token_lists) == 1 and self._prefix:  # one prompt: split where the instructions end, as before
            shared = min(shared, _common_prefix(token_lists[0], self._prefix))
        prefix = token_lists[0][:shared]
        suffix_cells = sum(len(t) - shared for t in token_lists)
        if shared + suffix_cells > self.n_ctx:  # too many cells for the context: halve the batch
            half = len(token_lists) // 2
            if half == 0:
                raise BackendError(f"a prompt of {len(token_lists[0])} tokens does not fit the context of "
                                   f"{self.n_ctx} tokens (n_ctx)")
            return self.logits(token_lists[:half]) + self.logits(token_lists[half:])
        # sequence 0: keep what it shares with this prefix, evaluate the rest
        keep = _common_prefix(self._prefix, prefix)
        lib.llama_memory_seq_rm(mem, 0, keep, -1)
        self._prefix = self._prefix[:keep]
        if keep < len(prefix):
            self._decode([(tok, keep + i, 0, False) for i, tok in enumerate(prefix[keep:])])
            self._prefix = list(prefix)
        entries = []
        for i, tokens in enumerate(token_lists):
            seq = i + 1
            lib.llama_memory_seq_rm(mem, seq, -1, -1)
            if shared:
                lib.llama_memory_seq_cp(mem, 0, seq, 0, shared)
            own = tokens[shared:]
            entries += [(tok, shared + j, seq, j == len(own) - 1) for j, tok in enumerate(own)]
        try:
            return self._decode(entries)
        finally:
            for i in range(len(token_lists)):
                lib.llama_memory_seq_rm(mem, i + 1, -1, -1)

    def close(self) -> None:
        if self._ctx:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None
