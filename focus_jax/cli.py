"""The ``focus-jax`` command line (typer + rich).

Each sub-command lives in its own module and is registered here; heavy imports (JAX,
PyAV, transformers) happen inside the commands so ``focus-jax --help`` stays fast.
Expected failures (bad input, missing files) print one line naming the problem and exit
with status 1; see ``cli_errors``.
"""

from __future__ import annotations

import functools
import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="focus-jax",
    help="Focus streaming token concentration for video VLMs: run, simulate, tune, generate RTL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Focus streaming token concentration for video VLMs."""

#: Exceptions that mean "the user's input is wrong", reported without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, KeyError)


def cli_errors(fn):
    """Turn the user-input errors raised by ``fn`` into one red line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None

    return wrapper


def _register() -> None:
    from focus_jax.commands import concentrate, simulate

    app.command("concentrate")(cli_errors(concentrate.concentrate))
    app.command("simulate")(cli_errors(simulate.simulate))


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="focus-jax")


if __name__ == "__main__":
    sys.exit(main())
