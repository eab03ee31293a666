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

# Recent typer versions vendor their own copy of click (``typer._click``): its usage errors and aborts
# are not click's classes, so catch both (else a mistyped option ends in a traceback).
try:
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - older typer uses click itself
    _typer_click = click.exceptions
_USAGE_ERRORS = (click.ClickException, _typer_click.ClickException)
_EXITS = (click.exceptions.Exit, typer.Exit)
_ABORTS = (click.exceptions.Abort, typer.Abort, KeyboardInterrupt)

app = typer.Typer(
    name="crowdllm",
    help="Digital crowds (CrowdLLM) and crowdsourcing pipelines with virtual workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from crowdllm import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                 callback=_print_version, is_eager=True),
) -> None:
    """Eager ``--version``: handled while parsing, before click asks for a command."""


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


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Warnings shown to CLI users: one line, no source code."""
    return f"warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning user errors into one line + exit code 2."""
    import warnings

    warnings.formatwarning = _one_line_warning
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="crowdllm", standalone_mode=False)
    except CrowdLLMError as err:
        msg = " ".join(str(err).split())
        click.echo(f"error: {msg}", err=True)
        return 2
    except _EXITS as exc:
        return int(exc.exit_code or 0)
    except _USAGE_ERRORS as exc:  # usage errors: unknown option, missing argument, bad value
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command group: show its help
            exc.show()
            return 2
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        click.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
        return 2
    except _ABORTS:
        click.echo("interrupted: results computed so far are kept in the cache", err=True)
        return 130
    return int(rv) if isinstance(rv, int) else 0


def run() -> None:  # pragma: no cover - console script wrapper
    sys.exit(main())
