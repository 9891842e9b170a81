"""LLaVA-OneVision / LLaVA-Video in JAX: SigLIP + 2-layer GELU projector + Qwen2.

- ``modeling``: pure functions (vision features, pooling, anyres packing, loss).
- ``params``: config.json and safetensors key rules, load/save.
- ``model``: ``LlavaOnevision`` (forward, generate, save_pretrained) and ``from_pretrained``.
- ``preprocessing``: frame/image preprocessing matching the Hugging Face image processor.
- ``sharding``: parameter and batch placement on a device mesh.
- ``sizes``: full-size configs (0.5B, 7B) checked with ``jax.eval_shape``.
"""

from focus_jax.models.llava_onevision.model import LlavaOnevision, from_pretrained
from focus_jax.models.llava_onevision.modeling import LlavaOnevisionConfig

__all__ = ["LlavaOnevision", "LlavaOnevisionConfig", "from_pretrained"]
