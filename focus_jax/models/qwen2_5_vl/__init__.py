"""Qwen2.5-VL in JAX with Focus in prefill (``modeling``, ``params``, ``preprocessing``, ``model``)."""

from focus_jax.models.qwen2_5_vl.model import Qwen2_5_VL, from_pretrained
from focus_jax.models.qwen2_5_vl.modeling import Qwen2_5_VLConfig, VisionConfig

__all__ = ["Qwen2_5_VL", "Qwen2_5_VLConfig", "VisionConfig", "from_pretrained"]
