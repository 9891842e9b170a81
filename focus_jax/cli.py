"""The ``focus-jax`` command line (typer + rich).

Each sub-command lives in its own module and is registered here; heavy imports (JAX,
PyAV, transformers) happen inside the commands so ``focus-jax --help`` stays fast.
Expected failures (bad input, missing files) print one line naming the problem and exit
with status 1; see ``cli_errors``. Ctrl-C prints one line and exits with status 130; see
``install_sigint_handler``. Warnings (e.g. a truncated video) print as ``warning: ...``.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
import threading
import warnings

import typer
from rich.console import Console
from rich.text import Text

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

#: Exceptions that mean "the user's input is wrong", reported without a traceback
#: (``focus_jax.errors.InputError`` is a ``ValueError``).
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, KeyError)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def print_error(message: object, label: str = "error", style: str = "bold red") -> None:
    """Print ``label: message`` on stderr as one line; ``message`` is plain text, never markup
    (user-controlled paths and tensor names may contain ``[...]``)."""
    line = Text(f"{label}:", style=style)
    line.append(" " + _one_line(message))
    err_console.print(line, highlight=False, soft_wrap=True)


def cli_errors(fn):
    """Turn the user-input errors raised by ``fn`` into one red line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            print_error(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
            raise typer.Exit(code=1) from None

    return wrapper


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print_error(message, label="warning", style="bold yellow")


#: The line Ctrl-C prints (stderr) before the process exits with status 130.
INTERRUPTED = "interrupted (Ctrl-C)"
_interrupt_lock = threading.Lock()


def _exit_interrupted() -> None:
    """Write ``INTERRUPTED`` once and end the process now with status 130.

    ``os._exit`` skips interpreter teardown: raising ``KeyboardInterrupt`` through JAX
    while XLA's compiler and runtime threads are live segfaulted (issue 12) or was
    swallowed. Only the first caller writes; a second one waits for the exit.
    """
    if not _interrupt_lock.acquire(blocking=False):
        threading.Event().wait()
    try:
        os.write(2, f"{INTERRUPTED}\n".encode())
    finally:
        os._exit(130)


def install_sigint_handler() -> None:
    """Make SIGINT end the CLI promptly with one line and status 130, whatever runs.

    Python runs signal handlers only in the main thread between bytecodes, so a main
    thread inside a long XLA compile or computation would not see Ctrl-C until it
    returns. Python's C-level handler also writes the signal number to the wakeup fd;
    a daemon thread waits on it and exits at once. The Python-level handler covers the
    main thread being the first to notice.
    """
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGINT, lambda signum, frame: _exit_interrupted())

    def watch() -> None:
        while True:
            data = reader.recv(64)
            if not data:
                return
            if signal.SIGINT in data:
                _exit_interrupted()

    threading.Thread(target=watch, name="focus-jax-sigint", daemon=True).start()
    # the socket objects must outlive this function (their fds are in use)
    install_sigint_handler.sockets = (reader, writer)


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
    install_sigint_handler()
    warnings.showwarning = _show_warning
    app(prog_name="focus-jax")


if __name__ == "__main__":
    sys.exit(main())
