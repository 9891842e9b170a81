"""Output locations, checked before any work is done (a training run must not end in a
failed write)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from focus_jax.errors import InputError

__all__ = ["check_output_dir"]


def check_output_dir(path: str | Path, overwrite: bool = False, what: str = "--out") -> Path:
    """Make sure ``path`` can receive a new checkpoint: create it if needed, and check that
    it is a writable directory, empty unless ``overwrite``.

    Raises:
        InputError: ``path`` is a file; not empty and ``overwrite`` is False; cannot be
            created or written (the OS error named).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file, not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError(f"{what} {path} is not empty; pass --overwrite to replace its contents")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{what} {path} is not writable ({exc.strerror or exc})") from None
    return path
