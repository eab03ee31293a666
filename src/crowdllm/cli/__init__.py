"""The ``crowdllm`` command line: a thin shell over the library.

Each module in this package that defines ``register(app)`` adds its commands (``data``, ``evaluate``,
``llm``, ``reference``, ``reproduce``, ``pipeline``, ``analyze``, ``report``, ...). Modules are found
automatically, so a command group lives next to the others without editing this file.

User errors (:class:`crowdllm.errors.CrowdLLMError`) print one line and exit with code 2, no traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click
import typer

from crowdllm.errors import CrowdLLMError

app = typer.Typer(
    name="crowdllm",
    help="Digital crowds (CrowdLLM) and crowdsourcing pipelines with virtual workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from crowdllm import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def fail(message: str) -> None:
    """Print one error line on stderr and exit 2 (for CLI-level checks)."""
    raise CrowdLLMError(message)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning user errors into one line + exit code 2."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="crowdllm", standalone_mode=False)
    except CrowdLLMError as err:
        msg = " ".join(str(err).split())
        click.echo(f"error: {msg}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:  # usage errors: unknown option, missing argument, bad value
        exc.show()
        return 2
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted: results computed so far are kept in the cache", err=True)
        return 130
    return int(rv) if isinstance(rv, int) else 0


def run() -> None:  # pragma: no cover - console script wrapper
    sys.exit(main())
