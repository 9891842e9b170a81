"""The one error type for bad user input (files, flags, values): ``InputError``.

Every input-validation layer (model directory, config.json, preprocessor, tokenizer,
safetensors, Focus/design config, trace, video) raises ``InputError`` with a one-line
message naming the file or field and the problem; the CLI prints it as ``error: ...`` and
exits with status 1. It subclasses ``ValueError`` so existing ``except ValueError`` callers
keep working.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """A user-supplied input (file, flag, value) is missing, malformed, hostile or out of range.

    The message is one line and names the input and the problem (and, for a size limit,
    the limit and how to raise it).
    """
