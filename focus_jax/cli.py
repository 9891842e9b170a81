"""The ``focus-jax`` command line (typer + rich).

Each sub-command lives in its own module and is registered here; heavy imports (JAX,
PyAV, transformers) happen inside the commands so ``focus-jax --help`` stays fast.
Expected failures (bad input, missing files) print one line naming the problem and exit
with status 1; see ``cli_errors``.
"""

from __future__ import annotations

import functools
import os
import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="focus-jax",
    help="Focus streaming token concentration for video VLMs: run a model on a video, evaluate, train the demo "
         "model, simulate, tune, generate RTL.",
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
    from focus_jax.commands import concentrate, evaluate, model_info, rtl, run, simulate, train_demo, tune

    app.command("run")(cli_errors(run.run))
    app.command("eval")(cli_errors(evaluate.evaluate))
    app.command("train-demo")(cli_errors(train_demo.train_demo))
    app.command("concentrate")(cli_errors(concentrate.concentrate))
    app.command("simulate")(cli_errors(simulate.simulate))
    app.command("model-info")(cli_errors(model_info.model_info))
    app.command("tune")(cli_errors(tune.tune))
    app.command("rtl")(cli_errors(rtl.rtl))


_register()


#: glibc tunable that makes malloc ask for transparent huge pages on large blocks. XLA
#: allocates every large buffer afresh per call; with 4 KB pages the first touch costs
#: ~0.4 ms per MB (38 ms for a 90 MB activation here), with huge pages ~4x less.
HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"


def _with_huge_pages() -> None:
    """Re-execute the CLI once with ``HUGEPAGE_TUNABLE`` set (glibc reads it at start-up only).

    Skipped when already set, off Linux, or when ``FOCUS_JAX_NO_HUGEPAGES`` is set.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if (
        not sys.platform.startswith("linux")
        or "glibc.malloc.hugetlb" in tunables
        or os.environ.get("FOCUS_JAX_NO_HUGEPAGES")
    ):
        return
    env = dict(os.environ, GLIBC_TUNABLES=":".join(filter(None, [tunables, HUGEPAGE_TUNABLE])))
    os.execve(sys.executable, [sys.executable, "-m", "focus_jax.cli", *sys.argv[1:]], env)


def main() -> None:
    """Console-script entry point."""
    _with_huge_pages()
    app(prog_name="focus-jax")


if __name__ == "__main__":
    sys.exit(main())
