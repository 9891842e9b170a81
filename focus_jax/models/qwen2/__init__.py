"""Qwen2 decoder with Focus in prefill (``modeling``: functions; ``params``: checkpoint keys)."""

from focus_jax.models.qwen2.modeling import Qwen2Config

__all__ = ["Qwen2Config"]
