"""A fake OpenAI-compatible server on 127.0.0.1 for tests and benchmarks (standard library only).

    from tests.fakeserver import FakeOpenAIServer   # or: from fakeserver import ... (tests/ on sys.path)

    with FakeOpenAIServer(answer=lambda req: "Rating: 4", latency=0.01) as server:
        backend = open_backend(base_url=server.url, model="fake-model")
        ...
        assert server.answered == 10

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``.

- ``answer(req) -> str``: the reply text for a :class:`FakeRequest` (default: "Rating: N" with N from a
  hash of the last user message, shifted by the seed when the temperature is above 0).
- ``distribution(req, token) -> {token: prob}``: the top log-probs of an answer token (default: a peaked
  distribution over the digits 1-5 around a digit token, 0.8/0.2 for Yes/No).
- ``latency``: seconds each answer takes. ``api_key``: when set, requests need ``Bearer <api_key>``.
- ``faults``: probabilities of injected faults, drawn from ``random.Random(seed)`` for each request:
  ``"500"`` (HTTP 500), ``"429"`` (HTTP 429 with ``Retry-After: retry_after``), ``"timeout"`` (hold the
  request for ``hold`` seconds, then drop it), ``"drop"`` (close the connection without a reply),
  ``"garbage"`` (a 200 reply whose text is nonsense), ``"empty"`` (a 200 reply with empty text),
  ``"no_logprobs"`` (a reply without log-probs even when asked).
- ``fault_plan``: a list of fault names (or None for "no fault") used in order for the first requests,
  before the random draws; handy for exact stories ("the first request gets a 429").
- ``error_message``: the ``error.message`` of the body an injected ``"500"`` answers with.
- ``logprobs_error``: when set, every request that asks for log-probs is answered HTTP 500 with this
  message -- a real server that says no, e.g. llama.cpp's server started without ``logits_all``:
  ``FakeOpenAIServer(logprobs_error=LOGITS_ALL_ERROR)``. Counted as the fault ``"logprobs_error"``.

Counters (thread-safe): ``requests`` (every HTTP request to a completion endpoint), ``answered`` (replies
with status 200), ``faults`` (by name), ``prompts`` (how many 200 replies each prompt got, keyed by the
JSON of its messages/prompt and seed), ``max_in_flight`` (the most requests handled at once).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("500", "429", "timeout", "drop", "garbage", "empty", "no_logprobs")
#: what llama.cpp's OpenAI-compatible server answers (HTTP 500) to a log-prob request without logits_all
LOGITS_ALL_ERROR = "logprobs is not supported for models created with logits_all=False"


@dataclass
class FakeRequest:
    endpoint: str  # "chat" | "completions"
    body: dict[str, Any]
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt: str = ""

    @property
    def temperature(self) -> float:
        return float(self.body.get("temperature", 1.0) or 0.0)

    @property
    def seed(self) -> int | None:
        return self.body.get("seed")

    @property
    def last_user(self) -> str:
        if self.endpoint == "completions":
            return self.prompt
        return next((m["content"] for m in reversed(self.messages) if m.get("role") == "user"), "")

    @property
    def key(self) -> str:
        what = self.messages if self.endpoint == "chat" else self.prompt
        return json.dumps({"what": what, "seed": self.seed, "t": self.temperature,
                           "lp": bool(self.body.get("logprobs"))}, sort_keys=True)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def default_answer(req: FakeRequest) -> str:
    rating = 1 + _hash(req.last_user) % 5
    if req.temperature > 0 and req.seed is not None:
        rating = min(5, max(1, rating + (_hash(f"{req.seed}") % 3) - 1))
    return f"Rating: {rating}"


def default_distribution(req: FakeRequest, token: str) -> dict[str, float]:
    t = token.strip()
    if t.isdigit() and 1 <= int(t) <= 5:
        weights = {str(d): math.exp(-1.2 * abs(d - int(t))) for d in range(1, 6)}
        total = sum(weights.values())
        return {(" " if token.startswith(" ") else "") + d: w / total for d, w in weights.items()}
    if t.lower() in ("yes", "no"):
        other = "No" if t.lower() == "yes" else "Yes"
        return {t: 0.8, other: 0.2}
    return {token: 1.0}


def tokenize(text: str) -> list[str]:
    """GPT-like pieces: words and punctuation, a leading space kept on the next piece."""
    return re.findall(r"\s*\w+|\s*[^\w\s]|\s+$", text)


class FakeOpenAIServer:
    def __init__(
        self,
        *,
        answer: Callable[[FakeRequest], str] | None = None,
        distribution: Callable[[FakeRequest, str], Mapping[str, float]] | None = None,
        latency: float = 0.0,
        faults: Mapping[str, float] | None = None,
        fault_plan: Sequence[str | None] = (),
        seed: int = 0,
        logprobs: bool = True,
        retry_after: float = 0.05,
        hold: float = 2.0,
        api_key: str | None = None,
        model: str = "fake-model",
        error_message: str = "internal error (injected)",
        logprobs_error: str | None = None,
    ) -> None:
        unknown = set(faults or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {unknown}; use {FAULTS}")
        self.answer = answer or default_answer
        self.distribution = distribution or default_distribution
        self.latency = latency
        self.faults = dict(faults or {})
        self.fault_plan = list(fault_plan)
        self.rng = random.Random(seed)
        self.logprobs = logprobs
        self.retry_after = retry_after
        self.hold = hold
        self.api_key = api_key
        self.model = model
        self.error_message = error_message
        self.logprobs_error = logprobs_error
        self.lock = threading.Lock()
        self.requests = 0
        self.answered = 0
        self.fault_counts: Counter[str] = Counter()
        self.prompts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._url: str | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT/v1``); kept after :meth:`stop`."""
        assert self._url is not None, "server not started"
        return self._url

    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one reply is two writes (headers, body): no 40 ms stall

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorised():
                    return
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                if not self._authorised():
                    return
                if self.path.endswith("/chat/completions"):
                    endpoint = "chat"
                elif self.path.endswith("/completions"):
                    endpoint = "completions"
                else:
                    self._send(404, {"error": {"message": "not found"}})
                    return
                body = json.loads(raw or b"{}")
                if body.get("model") != server.model:
                    self._send(404, {"error": {"message": f"model {body.get('model')!r} not found"}})
                    return
                req = FakeRequest(endpoint, body, messages=body.get("messages") or [],
                                  prompt=body.get("prompt") or "")
                server._serve(self, req)

            def _authorised(self) -> bool:
                if server.api_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {server.api_key}":
                    return True
                self._send(401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}})
                return False

            def _send(self, status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 drops connections under concurrency

            def handle_error(self, request: Any, client_address: Any) -> None:
                # a client that gave up (a stopped run closing its connections) is not a server fault;
                # printing it would land in the stderr of the CLI under test (same process)
                if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    return
                super().handle_error(request, client_address)

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- answering
    def _draw_fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            if self.fault_plan:
                return self.fault_plan.pop(0)
            u = self.rng.random()
            acc = 0.0
            for name in FAULTS:
                acc += self.faults.get(name, 0.0)
                if u < acc:
                    return name
            return None

    def _serve(self, handler: Any, req: FakeRequest) -> None:
        fault = self._draw_fault()
        if self.logprobs_error is not None and req.body.get("logprobs"):
            fault = "logprobs_error"
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if fault:
                self.fault_counts[fault] += 1
        try:
            if self.latency:
                time.sleep(self.latency)
            if fault == "500":
                handler._send(500, {"error": {"message": self.error_message, "type": "server_error"}})
                return
            if fault == "logprobs_error":
                handler._send(500, {"error": {"code": 500, "message": self.logprobs_error, "type": "server_error"}})
                return
            if fault == "429":
                handler._send(429, {"error": {"message": "rate limited (injected)"}},
                              {"Retry-After": f"{self.retry_after:g}"})
                return
            if fault in ("timeout", "drop"):
                if fault == "timeout":
                    time.sleep(self.hold)
                handler.close_connection = True
                return
            if fault == "garbage":
                text = "%%##@@ qwzx"
            elif fault == "empty":
                text = ""
            else:
                text = self.answer(req)
            max_tokens = int(req.body.get("max_tokens") or 10_000)
            pieces = tokenize(text)[:max_tokens]
            text = "".join(pieces)
            want_lp = bool(req.body.get("logprobs")) and self.logprobs and fault != "no_logprobs"
            handler._send(200, self._payload(req, text, pieces, want_lp))
            with self.lock:
                self.answered += 1
                self.prompts[req.key] += 1
        finally:
            with self.lock:
                self.in_flight -= 1

    def _tops(self, req: FakeRequest, token: str) -> list[tuple[str, float]]:
        dist = dict(self.distribution(req, token))
        dist.setdefault(token, 1e-6)
        return sorted(((t, math.log(max(p, 1e-12))) for t, p in dist.items()), key=lambda tp: -tp[1])

    def _payload(self, req: FakeRequest, text: str, pieces: list[str], want_lp: bool) -> dict[str, Any]:
        prompt_text = req.prompt if req.endpoint == "completions" else " ".join(m.get("content", "")
                                                                                 for m in req.messages)
        usage = {"prompt_tokens": len(tokenize(prompt_text)), "completion_tokens": len(pieces),
                 "total_tokens": len(tokenize(prompt_text)) + len(pieces)}
        if req.endpoint == "chat":
            logprobs = None
            if want_lp:
                n_top = int(req.body.get("top_logprobs") or 0)
                content = []
                for piece in pieces:
                    tops = self._tops(req, piece)
                    own = dict(tops)[piece]
                    content.append({"token": piece, "logprob": own, "bytes": None,
                                    "top_logprobs": [{"token": t, "logprob": lp, "bytes": None}
                                                     for t, lp in tops[:n_top]]})
                logprobs = {"content": content, "refusal": None}
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                      "logprobs": logprobs}
            return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                    "model": self.model, "choices": [choice], "usage": usage}
        logprobs = None
        if want_lp:
            n_top = int(req.body.get("logprobs") or 0)
            tops = [self._tops(req, p) for p in pieces]
            logprobs = {"tokens": pieces, "token_logprobs": [dict(t)[p] for t, p in zip(tops, pieces, strict=True)],
                        "top_logprobs": [dict(t[:n_top]) for t in tops],
                        "text_offset": [sum(len(x) for x in pieces[:i]) for i in range(len(pieces))]}
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": logprobs}
        return {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
                "model": self.model, "choices": [choice], "usage": usage}
