"""Size limits on what inputs may ask for, so a hostile or mistyped value ends in a
one-line ``InputError`` instead of an out-of-memory crash.

Each limit has a default sized well above what the supported models use and can be raised
with the environment variable ``FOCUS_JAX_MAX_<NAME>`` (e.g. ``FOCUS_JAX_MAX_FRAMES=4096``);
the error message names the variable.
"""

from __future__ import annotations

import os

from focus_jax.errors import InputError

__all__ = ["LIMITS", "check_limit", "limit"]

#: Default limits. Why these values: LLaVA-OneVision uses 8-64 frames of 196 tokens
#: (12,544 visual tokens at 64 frames); the largest Qwen2 decoders have 80 layers, hidden
#: 8192 and 152k vocabulary entries.
LIMITS = {
    "FRAMES": 1024,                  # frames sampled from a video
    "VISUAL_TOKENS": 1 << 20,        # frames x rows x cols of one visual-token grid
    "VIDEO_BYTES": 8 << 30,          # RGB bytes of the sampled frames kept in memory
    "QUESTIONS": 1_000_000,          # eval --questions
    "LAYERS": 1024,                  # num_hidden_layers in config.json
    "WIDTH": 1 << 17,                # hidden/intermediate sizes, heads, head_dim
    "VOCAB": 1 << 23,                # vocab_size
    "POSITIONS": 1 << 22,            # max_position_embeddings (the context length)
    "IMAGE_SIDE": 8192,              # image_size / preprocessor size, in pixels
    "JSON_BYTES": 64 << 20,          # one config JSON file
    "TRACE_BYTES": 4 << 30,          # uncompressed arrays of one trace file
}  # fmt: skip


def limit(name: str) -> int:
    """The limit ``name`` (a ``LIMITS`` key): ``FOCUS_JAX_MAX_<NAME>`` if set, else the default.

    Raises:
        InputError: the environment variable is not a positive integer.
    """
    var = f"FOCUS_JAX_MAX_{name}"
    text = os.environ.get(var)
    if text is None:
        return LIMITS[name]
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{var} must be a positive integer, got {text!r}")
    return value


def check_limit(what: str, value: int, name: str) -> int:
    """Return ``value`` if it is at most ``limit(name)``.

    Raises:
        InputError: ``value`` exceeds the limit; the message names ``what``, the limit and
            the variable that raises it.
    """
    bound = limit(name)
    if value > bound:
        raise InputError(f"{what} is {value:,}, above the limit of {bound:,} (raise it with FOCUS_JAX_MAX_{name})")
    return value
