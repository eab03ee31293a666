"""Shared LLM backend flags for every command that calls a language model.

How to use it in a CLI module (``src/crowdllm/cli/<name>.py``)::

    from crowdllm.cli._backend import BackendOptions, with_backend_options

    def register(app):
        @app.command()
        @with_backend_options
        def mycommand(dataset: str, backend_options: BackendOptions, seed: int = 0) -> None:
            # the LanguageModel, cached + metered; usage printed and saved, backend closed at the end
            with backend_options.session(usage_file="results/x.usage.json") as llm:
                ...                                      # llm.choice_probs(...), compute_references(...)

``with_backend_options`` adds these flags to the command and hands the command one
:class:`BackendOptions` in the parameter named ``backend_options``:

``--base-url URL`` (repeat for several servers, used round-robin; none: the embedded model),
``--model NAME`` (served model; embedded: same as --model-path), ``--model-path FILE.gguf|test``,
``--concurrency N``, ``--rpm N``, ``--timeout S``, ``--endpoint chat|completions``,
``--api-key-env VAR`` (the key is read from that environment variable only),
``--price-in`` / ``--price-out`` (per million tokens, for the cost line), ``--n-ctx``, ``--no-cache``.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from crowdllm.cli._grouped import add_option_group
from crowdllm.errors import ConfigError
from crowdllm.llm.base import LanguageModel

#: library argument -> command-line flag, for the errors the library raises about its arguments
ARGUMENT_FLAGS = {"base_url": "--base-url", "model_path": "--model-path", "model": "--model",
                  "api_key_env": "--api-key-env", "n_ctx": "--n-ctx", "concurrency": "--concurrency",
                  "rpm": "--rpm", "timeout": "--timeout", "endpoint": "--endpoint", "hidden_states": "--hidden-states"}


def as_flags(err: ConfigError, flags: dict[str, str] = ARGUMENT_FLAGS) -> ConfigError:
    """The library's errors name its arguments (``concurrency must be ...``); the command line's name the
    flags (``--concurrency must be ...``). Maps an argument name that starts the message, and a
    snake_case argument name anywhere in it."""
    message = str(err)
    head = re.match(r"[a-z_]+", message)
    if head and head.group(0) in flags:
        message = flags[head.group(0)] + message[head.end():]
    for name, flag in flags.items():
        if "_" in name:
            message = re.sub(rf"(?<![\w-]){name}(?![\w-])", flag, message)
    return ConfigError(message)


@dataclass
class BackendOptions:
    base_url: list[str] = field(default_factory=list)
    model: str | None = None
    model_path: str | None = None
    concurrency: int = 4
    rpm: float | None = None
    timeout: float = 60.0
    endpoint: str = "chat"
    api_key_env: str = "OPENAI_API_KEY"
    price_in: float | None = None
    price_out: float | None = None
    n_ctx: int = 2048
    no_cache: bool = False
    hidden_states: bool = False  # set by the commands that offer --hidden-states (crowdllm reference)

    def open(self, *, seed: int = 0) -> LanguageModel:
        """The backend these flags describe, wrapped in the disk cache and usage accounting."""
        from crowdllm.llm import open_backend

        try:
            return open_backend(
                base_url=list(self.base_url) or None, model=self.model, model_path=self.model_path,
                api_key_env=self.api_key_env, concurrency=self.concurrency, rpm=self.rpm, timeout=self.timeout,
                cache=not self.no_cache, price_in=self.price_in, price_out=self.price_out, n_ctx=self.n_ctx,
                seed=seed, endpoint=self.endpoint, hidden_states=self.hidden_states,
            )
        except ConfigError as err:
            raise as_flags(err) from None

    @contextlib.contextmanager
    def session(self, needed: bool = True, *, usage_file: str | Path | None = None, seed: int = 0,
                quiet: bool = False) -> Iterator[LanguageModel | None]:
        """The one way a command opens and closes the LLM: opened only when ``needed`` (else None);
        at the end, also after a failure, the usage is printed (unless ``quiet``) and written to
        ``usage_file``, and the backend closed."""
        llm = self.open(seed=seed) if needed else None
        try:
            yield llm
        finally:
            if llm is not None:
                self.finish(llm, quiet=quiet)
                usage = getattr(llm, "usage", None)
                if usage is not None and usage_file is not None:
                    usage.save(str(usage_file))
                close = getattr(llm, "close", None)
                if close is not None:
                    close()

    @staticmethod
    def finish(llm: LanguageModel, *, out: str | Path | None = None, quiet: bool = False) -> None:
        """Print the usage summary (stderr) and, with ``out``, write it to ``<out>.usage.json``. When the
        command is failing (called while an exception propagates) nothing is printed: the one ``error:``
        line is all a failed command says; the file is still written."""
        usage = getattr(llm, "usage", None)
        if usage is None:
            return
        if not quiet and sys.exc_info()[0] is None:
            print(usage.render(), file=sys.stderr)
        if out is not None:
            usage.save(str(out) + ".usage.json")


_OPTIONS: list[tuple[str, Any, Any]] = [
    ("base_url", list[str] | None, typer.Option(None, "--base-url", help="OpenAI-compatible server URL, e.g. "
     "http://localhost:8000/v1; repeat for several (round-robin). None: the embedded model.")),
    ("model", str | None, typer.Option(None, "--model", help="Served model name (default: the server's first).")),
    ("model_path", str | None, typer.Option(None, "--model-path", help="Embedded model: a .gguf file, 'test' "
     "(SmolLM2-135M), or hf:owner/repo/file.gguf. Default: Qwen2.5-Coder-1.5B-Instruct.")),
    ("concurrency", int, typer.Option(4, "--concurrency", help="Requests in flight at once (servers).")),
    ("rpm", float | None, typer.Option(None, "--rpm", help="At most this many requests per minute.")),
    ("timeout", float, typer.Option(60.0, "--timeout", help="Seconds per request before it is retried.")),
    ("endpoint", str, typer.Option("chat", "--endpoint", help="Server endpoint: chat or completions.")),
    ("api_key_env", str, typer.Option("OPENAI_API_KEY", "--api-key-env",
     help="Environment variable holding the API key (never written anywhere).")),
    ("price_in", float | None, typer.Option(None, "--price-in", help="Price per million prompt tokens.")),
    ("price_out", float | None, typer.Option(None, "--price-out", help="Price per million completion tokens.")),
    ("n_ctx", int, typer.Option(2048, "--n-ctx", help="Embedded model context length in tokens.")),
    ("no_cache", bool, typer.Option(False, "--no-cache", help="Do not read or write the answer cache.")),
]
OPTION_NAMES = tuple(name for name, _, _ in _OPTIONS)


def with_backend_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for a Typer command: adds the backend flags; the command gets ``backend_options``."""
    def build(values: dict[str, Any]) -> BackendOptions:
        return BackendOptions(**{**values, "base_url": list(values.get("base_url") or [])})

    return add_option_group(func, "backend_options", _OPTIONS, build)
