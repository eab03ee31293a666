"""Any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, LM Studio, OpenAI) through the official
``openai`` SDK.

The SDK's async client runs on an event loop in a background thread, so the interface stays synchronous
while up to ``concurrency`` requests are in flight. One request per sample (``n=1``): every sample has its
own seed (``seed + index``) and its own cache entry, and servers that ignore ``n`` behave the same.

Reliability (the numbers are the module constants below; docs/reliability.md quotes them and a test
checks that it does):

- a fault that may pass -- HTTP 5xx or 408, 429 (honouring ``Retry-After``), a timeout, a dropped
  connection, an empty reply -- is retried up to ``MAX_RETRIES`` = 6 times (7 attempts), waiting
  ``BACKOFF_BASE * 2**i`` seconds before retry ``i`` (0.5, 1, 2, 4, 8, 16 s; at most ``BACKOFF_MAX``),
  each times a random jitter in [0.5, 1.5]: about 31 s in all before the one-line error;
- a server nothing listens on gets ``UNREACHABLE_ATTEMPTS`` = 3 attempts (waits 0.5 and 1 s, about
  1.5 s in all), then one line naming the URL and ``--base-url``;
- a server that says no: when ``SAME_ERROR_LIMIT`` = 4 failed attempts in a row (across all requests,
  no success between them) got the identical HTTP error and message, the run stops with that error
  (circuit breaker) instead of retrying every task -- about 3.5 s when one request gets them all, less
  when several requests are in flight. 429, 408 and 502/503/504 (busy, restarting) never count;
- the server's own error text is part of every error line (``HTTP 500: <message>``);
- ``sleep=``: the coroutine function awaited with each backoff wait (default ``asyncio.sleep``); tests
  pass a recorder to count the schedule instead of timing it.

Several base URLs are used round-robin (a retry moves to the next one). A bad API key (401/403), an
unknown model (404) or another refused request (4xx) raises :class:`BackendError` at once. Each fault is
reported to listeners (``"fault"``, kind = ``rate_limit`` | ``server_error`` | ``timeout`` |
``connection`` | ``unreachable`` | ``empty`` | ``no_logprobs`` | ``off_format`` | ``logprobs_refused``)
so the usage report can count them.

The API key is read from the environment variable named by ``api_key_env`` and is never logged,
cached or written anywhere.

Log-probabilities: ``choice_probs`` asks for ``logprobs``/``top_logprobs`` and reads the first answer
token that names a choice (so a chat model that writes "Rating: 4" still works). When the reply has no
log-probs (some servers do not support them) it falls back to ``fallback_samples`` samples at
temperature 1 that are parsed and counted, and the distribution says ``method="sampling"``. A server
that refuses log-prob requests with an error that says so (llama.cpp's server without ``logits_all``
answers HTTP 500 "logprobs is not supported ...") gets the same fallback, with a warning naming the
server's message; after the first refusal no further log-prob request is sent.

Chat endpoint: a trailing assistant message (the answer prefix) is dropped by default, since OpenAI-style
chat servers cannot continue it; ``assistant_prefix="continue"`` keeps it and asks the server to continue
it (vLLM's ``continue_final_message``). Completions endpoint: messages are rendered as a plain
"System: / User: / Assistant:" transcript ending with the answer prefix.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import random
import re
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

from crowdllm.errors import BackendError, ConfigError
from crowdllm.llm.base import (
    ChoiceDistribution,
    Completion,
    GenerationParams,
    LanguageModel,
    distribution_from_samples,
)

_PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key; the SDK insists on one

#: retries after the first attempt for a fault that may pass (5xx, 408, 429, timeout, dropped connection, empty)
MAX_RETRIES = 6
#: attempts a server that nothing listens on gets (connection refused) before the one-line error
UNREACHABLE_ATTEMPTS = 3
#: the wait before retry i is min(BACKOFF_MAX, BACKOFF_BASE * 2**i) times a jitter drawn from [0.5, 1.5]
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
#: failed attempts in a row with the identical server error that stop the run (circuit breaker)
SAME_ERROR_LIMIT = 4
_TRANSIENT_STATUS = (502, 503, 504)  # gateway / unavailable: busy or restarting, never "says no"


_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")


def _one_turn(content: str) -> str:
    """Message text with its blank lines collapsed: a blank line separates turns in the transcript, so text
    from data ("...\\n\\nAssistant: 5") cannot start a turn of its own."""
    return _BLANK_LINES.sub("\n", content.replace("\r\n", "\n").replace("\r", "\n"))


def render_transcript(messages: list[dict[str, str]]) -> str:
    """Messages as a plain transcript for the completions endpoint, ending with the answer prefix.

    Turns are separated by a blank line; blank lines inside a message are collapsed (see :func:`_one_turn`)."""
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    parts = []
    trailing = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else None
    body = messages[:-1] if trailing is not None else messages
    for m in body:
        parts.append(f"{names[m['role']]}: {_one_turn(m['content'])}")
    parts.append("Assistant: " + _one_turn(trailing or ""))
    return "\n\n".join(parts)


def _retry_after(err: Exception) -> float | None:
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            import time

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _connect_failed(err: BaseException) -> bool:
    """Whether a connection error means nothing listens there (vs. a connection dropped mid-request)."""
    seen = 0
    cur: BaseException | None = err
    while cur is not None and seen < 10:
        if isinstance(cur, ConnectionRefusedError) or type(cur).__name__ == "ConnectError":
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


def _norm_token(token: str) -> str:
    return token.strip().strip("*\"'`.").lower()


def _server_message(err: Any) -> str:
    """The server's own error text (the ``message`` of an OpenAI-style error body, else the raw body), one line."""
    body = getattr(err, "body", None)
    text = body.get("message") if isinstance(body, dict) else body
    if not isinstance(text, str) or not text.strip():
        text = str(getattr(err, "message", "") or "")
    return " ".join(text.split())[:300]


class _Retryable(Exception):
    def __init__(self, kind: str, detail: str, wait: float | None = None, *, says_no: bool = False) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.wait = wait
        self.says_no = says_no  # an error the server may repeat identically (counts for the circuit breaker)


class _LogprobsRefused(Exception):
    """The server answered a log-prob request with an error about log-probs: it cannot give them."""

    def __init__(self, detail: str, *, asked: bool = True) -> None:
        super().__init__(detail)
        self.detail = detail
        self.asked = asked  # False: not sent, since an earlier request was refused already


class OpenAICompatLLM(LanguageModel):
    """Backend for an OpenAI-compatible HTTP server (see the module docstring)."""

    backend = "openai"
    supports_logprobs = True

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str | None = None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        endpoint: str = "chat",
        concurrency: int = 4,
        rpm: float | None = None,
        timeout: float = 60.0,
        max_retries: int = MAX_RETRIES,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
        top_logprobs: int = 20,
        logprob_max_tokens: int = 8,
        assistant_prefix: str = "drop",
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ConfigError("base_url: give at least one server URL, e.g. http://localhost:8000/v1")
        for url in urls:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ConfigError(f"base_url {url!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
        if endpoint not in ("chat", "completions"):
            raise ConfigError(f"endpoint {endpoint!r} must be 'chat' or 'completions'")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1 (got {concurrency})")
        if rpm is not None and rpm <= 0:
            raise ConfigError(f"rpm must be positive (got {rpm})")
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive (got {timeout})")
        if assistant_prefix not in ("drop", "continue"):
            raise ConfigError("assistant_prefix must be 'drop' or 'continue'")
        self.base_urls = [u.rstrip("/") for u in urls]
        self.api_key_env = api_key_env
        self.endpoint = endpoint
        self.concurrency = int(concurrency)
        self.rpm = rpm
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.top_logprobs = int(top_logprobs)
        self.logprob_max_tokens = int(logprob_max_tokens)
        self.assistant_prefix = assistant_prefix
        self._jitter = random.Random()
        self._sleep = sleep or asyncio.sleep  # tests inject a recorder to count the backoff schedule
        self._same_error: tuple[str, int] | None = None  # (detail, failed attempts in a row with it)
        self._stopped: BackendError | None = None  # set by the circuit breaker: every later call raises it
        self._logprobs_refused: str | None = None  # the server's refusal, once a log-prob request got one
        self._rr = 0
        self._rr_lock = threading.Lock()
        key = os.environ.get(api_key_env)
        if not key and any(urlparse(u).hostname == "api.openai.com" for u in self.base_urls):
            raise BackendError(f"no API key: set the environment variable {api_key_env} (or pick another "
                               f"variable with --api-key-env) to use {self.base_urls[0]}")
        self._key = key or _PLACEHOLDER_KEY
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="crowdllm-openai", daemon=True)
        self._thread.start()
        self._clients: list[Any] = self._run(self._make_clients())
        self.model = model or self._run(self._discover_model())

    # ---------------------------------------------------------------- plumbing
    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _make_clients(self) -> list[Any]:
        import openai

        self._sem = asyncio.Semaphore(self.concurrency)
        self._rpm_lock = asyncio.Lock()
        self._next_slot = 0.0
        return [openai.AsyncOpenAI(base_url=u, api_key=self._key, max_retries=0, timeout=self.timeout)
                for u in self.base_urls]

    async def _discover_model(self) -> str:
        async def ask(client: Any) -> Any:
            return await client.models.list()

        page = await self._call(ask)
        ids = [m.id for m in getattr(page, "data", [])]
        if not ids:
            raise BackendError(f"{self.base_urls[0]} lists no models; name one with --model")
        return str(ids[0])

    def cache_identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "endpoint": self.endpoint,
                "assistant_prefix": self.assistant_prefix}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_urls": self.base_urls, "endpoint": self.endpoint,
                "concurrency": self.concurrency, "rpm": self.rpm}

    def _next_client(self) -> tuple[Any, str]:
        with self._rr_lock:
            i = self._rr % len(self._clients)
            self._rr += 1
        return self._clients[i], self.base_urls[i]

    async def _rate_limit(self) -> None:
        if not self.rpm:
            return
        async with self._rpm_lock:
            now = self._loop.time()
            wait = self._next_slot - now
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_slot = max(now, self._next_slot) + 60.0 / float(self.rpm)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * (2 ** attempt)) * self._jitter.uniform(0.5, 1.5)

    async def _call(self, make: Callable[[Any], Any], check: Callable[[Any], None] | None = None) -> Any:
        """Run ``make(client)`` with retries; ``check(response)`` may raise :class:`_Retryable`."""
        import openai

        attempt = 0
        while True:
            if self._stopped is not None:
                raise self._stopped
            client, url = self._next_client()
            await self._rate_limit()
            try:
                async with self._sem:
                    if self._stopped is not None:  # tripped while this request waited for its turn
                        raise self._stopped
                    response = await make(client)
                if check is not None:
                    check(response)
                self._same_error = None
                return response
            except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
                raise BackendError(f"{url} rejected the API key (HTTP {err.status_code}); set the environment "
                                   f"variable {self.api_key_env} (or choose another with --api-key-env)") from None
            except openai.NotFoundError:
                raise BackendError(f"{url} answered 404 for model {self.model if hasattr(self, 'model') else '?'!r}"
                                   f": check --model and that --base-url ends with /v1") from None
            except openai.RateLimitError as err:
                failure = _Retryable("rate_limit", "HTTP 429", _retry_after(err))
            except openai.APITimeoutError:
                failure = _Retryable("timeout", f"no answer within {self.timeout:g} s")
            except openai.APIConnectionError as err:
                refused = _connect_failed(err)
                failure = _Retryable("unreachable" if refused else "connection",
                                     "cannot connect" if refused else "connection dropped")
            except openai.APIStatusError as err:
                message = _server_message(err)
                detail = f"HTTP {err.status_code}" + (f": {message}" if message else "")
                if err.status_code >= 500 or err.status_code == 408:
                    failure = _Retryable("server_error", detail, _retry_after(err),
                                         says_no=err.status_code not in _TRANSIENT_STATUS and err.status_code != 408)
                else:
                    raise BackendError(f"{url} refused the request ({detail})") from None
            except _Retryable as err:
                failure = err
            self._notify("fault", kind=failure.kind, url=url)
            attempt += 1
            self._count_same_error(failure, url)
            # nothing listening is reported after a few tries (a retry goes to the next URL, if any)
            limit = min(self.max_retries, UNREACHABLE_ATTEMPTS - 1) if failure.kind == "unreachable" else self.max_retries
            if attempt > limit:
                if failure.kind == "empty":
                    return None  # the caller records an empty answer (never a silent default)
                hint = " (is the server running? check --base-url)" if failure.kind == "unreachable" else ""
                raise BackendError(f"{url}: gave up after {attempt} attempts, last: {failure.detail}{hint}")
            self._notify("retry", kind=failure.kind)
            wait = self._backoff(attempt - 1)
            if failure.wait is not None:
                wait = min(max(failure.wait, 0.0), max(self.backoff_max, 60.0))
            await self._sleep(wait)

    def _count_same_error(self, failure: _Retryable, url: str) -> None:
        """The circuit breaker: stop everything once the server said the same no ``SAME_ERROR_LIMIT`` times in
        a row (the event loop runs one coroutine at a time, so no lock is needed)."""
        if not failure.says_no:
            self._same_error = None
            return
        same = self._same_error
        count = same[1] + 1 if same is not None and same[0] == failure.detail else 1
        self._same_error = (failure.detail, count)
        if count >= SAME_ERROR_LIMIT:
            self._stopped = BackendError(f"{url}: stopped after the same error {count} times in a row: "
                                         f"{failure.detail}")
            raise self._stopped

    # ---------------------------------------------------------------- requests
    def _chat_messages(self, messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], dict[str, Any]]:
        if messages and messages[-1]["role"] == "assistant":
            if self.assistant_prefix == "continue":
                return messages, {"continue_final_message": True, "add_generation_prompt": False}
            return messages[:-1], {}
        return messages, {}

    async def _complete(self, messages: list[dict[str, str]], *, temperature: float, max_tokens: int,
                        seed: int | None, stop: Sequence[str], logprobs: bool = False) -> Any:
        """One request; returns the SDK response (retrying faults and empty replies)."""
        def check(resp: Any) -> None:
            choices = getattr(resp, "choices", None) or []
            text = (choices[0].message.content if self.endpoint == "chat" else choices[0].text) if choices else None
            if not text:
                raise _Retryable("empty", "empty reply")

        if self.endpoint == "chat":
            msgs, extra = self._chat_messages(messages)
            kwargs: dict[str, Any] = {"model": self.model, "messages": msgs, "max_tokens": max_tokens,
                                      "temperature": temperature}
            if logprobs:
                kwargs.update(logprobs=True, top_logprobs=self.top_logprobs)
            if extra:
                kwargs["extra_body"] = extra

            async def create(client: Any) -> Any:
                return await client.chat.completions.create(**kwargs)
        else:
            kwargs = {"model": self.model, "prompt": render_transcript(messages), "max_tokens": max_tokens,
                      "temperature": temperature}
            if logprobs:
                kwargs["logprobs"] = min(self.top_logprobs, 5)

            async def create(client: Any) -> Any:
                return await client.completions.create(**kwargs)

        async def make(client: Any) -> Any:
            import openai

            if logprobs and self._logprobs_refused is not None:  # refused while this request waited its turn
                raise _LogprobsRefused(self._logprobs_refused, asked=False)
            try:
                return await create(client)
            except openai.APIStatusError as err:
                message = _server_message(err)
                if logprobs and "logprob" in message.lower():  # the server cannot give log-probs: no retry
                    raise _LogprobsRefused(f"HTTP {err.status_code}: {message}") from None
                raise

        if seed is not None:
            kwargs["seed"] = int(seed)
        if stop:
            kwargs["stop"] = list(stop)[:4]
        return await self._call(make, check)

    def _text_of(self, resp: Any) -> tuple[str, int, int, str | None]:
        if resp is None:
            return "", 0, 0, None
        choice = resp.choices[0]
        text = choice.message.content if self.endpoint == "chat" else choice.text
        usage = getattr(resp, "usage", None)
        return (text or "", int(getattr(usage, "prompt_tokens", 0) or 0),
                int(getattr(usage, "completion_tokens", 0) or 0), getattr(choice, "finish_reason", None))

    async def _one_sample(self, messages: list[dict[str, str]], params: GenerationParams, index: int) -> Completion:
        resp = await self._complete(messages, temperature=params.temperature, max_tokens=params.max_tokens,
                                    seed=params.sample_seed(index), stop=params.stop)
        text, pt, ct, finish = self._text_of(resp)
        return Completion(text=text, prompt_tokens=pt, completion_tokens=ct, finish_reason=finish,
                          error=None if text else "empty reply after retries")

    def _positions(self, resp: Any) -> list[list[tuple[str, float]]] | None:
        """Per generated token: the top alternatives as (token, logprob); None when the reply has none."""
        if resp is None:
            return None
        lp = getattr(resp.choices[0], "logprobs", None)
        if lp is None:
            return None
        content = getattr(lp, "content", None)
        if content:  # chat format
            out = []
            for entry in content:
                tops = [(t.token, float(t.logprob)) for t in (entry.top_logprobs or [])]
                if not tops:
                    tops = [(entry.token, float(entry.logprob))]
                out.append(tops)
            return out
        tops = getattr(lp, "top_logprobs", None)
        if tops:  # completions format: list of {token: logprob}
            return [[(str(t), float(v)) for t, v in (d or {}).items()] for d in tops]
        return None

    @staticmethod
    def _match(token: str, choices: tuple[str, ...]) -> str | None:
        t = _norm_token(token)
        if not t:
            return None
        exact = [c for c in choices if _norm_token(c) == t]
        if exact:
            return exact[0]
        starts = [c for c in choices if _norm_token(c).startswith(t)]
        return starts[0] if len(starts) == 1 else None

    def _read_distribution(self, positions: list[list[tuple[str, float]]], choices: tuple[str, ...]
                           ) -> tuple[tuple[float, ...], float] | None:
        for tops in positions:
            if not tops or self._match(tops[0][0], choices) is None:
                continue
            mass = dict.fromkeys(choices, 0.0)
            for token, logprob in tops:
                c = self._match(token, choices)
                if c is not None and math.isfinite(logprob):
                    mass[c] += math.exp(logprob)
            total = sum(mass.values())
            if total <= 0:
                return None
            return tuple(mass[c] / total for c in choices), min(1.0, total)
        return None

    async def _one_distribution(self, messages: list[dict[str, str]], choices: tuple[str, ...],
                                fallback_samples: int, seed: int | None) -> ChoiceDistribution:
        resp, refused = None, self._logprobs_refused
        if refused is None:
            try:
                resp = await self._complete(messages, temperature=0.0, max_tokens=self.logprob_max_tokens,
                                            seed=seed, stop=(), logprobs=True)
            except _LogprobsRefused as err:
                if err.asked:
                    self._notify("fault", kind="logprobs_refused")
                refused = err.detail
                if self._logprobs_refused is None:  # the first refusal: say it once, then stop asking
                    self._logprobs_refused = refused
                    warnings.warn(f"the server refuses log-probs ({refused}); each log-prob reference falls "
                                  f"back to {fallback_samples} sampled answers (or use --strategy zero-shot or "
                                  f"self-consistency)", stacklevel=1)
        if refused is None:
            _, pt, ct, _ = self._text_of(resp)
            positions = self._positions(resp)
            read = self._read_distribution(positions, choices) if positions is not None else None
            if read is not None:
                probs, mass = read
                return ChoiceDistribution(choices=choices, probs=probs, method="logprobs", mass=mass,
                                          prompt_tokens=pt, completion_tokens=ct)
            reason = "no log-probs in the reply" if positions is None else "no choice among the top log-probs"
            self._notify("fault", kind="no_logprobs" if positions is None else "off_format")
            calls = fallback_samples + 1  # the reply without usable log-probs was an answer too
        else:
            reason, pt, ct, calls = f"the server refuses log-probs ({refused})", 0, 0, fallback_samples
        params = GenerationParams(n=fallback_samples, temperature=1.0, max_tokens=16, seed=seed)
        comps = await asyncio.gather(*(self._one_sample(messages, params, i) for i in range(fallback_samples)))
        dist = distribution_from_samples(comps, choices, fallback=reason, calls=calls)
        dist.prompt_tokens += pt
        dist.completion_tokens += ct
        return dist

    # ---------------------------------------------------------------- streaming interface
    def _stream(self, coros: list[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        futures = {asyncio.run_coroutine_threadsafe(coro, self._loop): tag for tag, coro in coros}
        try:
            for fut in concurrent.futures.as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            for fut in futures:
                fut.cancel()

    def _iter_generate(self, prompts: list[list[dict[str, str]]], params: GenerationParams
                       ) -> Iterator[tuple[int, int, Completion]]:
        coros = [((pos, i), self._one_sample(m, params, i))
                 for pos, m in enumerate(prompts)
                 for i in range(params.first_sample, params.first_sample + params.n)]
        for (pos, i), comp in self._stream(coros):
            yield pos, i, comp

    def _generate(self, prompts: list[list[dict[str, str]]], params: GenerationParams) -> list[list[Completion]]:
        out: list[list[Completion | None]] = [[None] * params.n for _ in prompts]
        for pos, i, comp in self._iter_generate(prompts, params):
            out[pos][i - params.first_sample] = comp
        return out  # type: ignore[return-value]

    def _iter_choice_probs(self, prompts: list[list[dict[str, str]]], choices: tuple[str, ...], *,
                           fallback_samples: int = 8, seed: int | None = None
                           ) -> Iterator[tuple[int, ChoiceDistribution]]:
        coros = [(pos, self._one_distribution(m, choices, fallback_samples, seed)) for pos, m in enumerate(prompts)]
        yield from self._stream(coros)

    def close(self) -> None:
        if not self._loop.is_running():
            return

        async def shutdown() -> None:
            for c in self._clients:
                await c.close()

        try:
            self._run(shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()
