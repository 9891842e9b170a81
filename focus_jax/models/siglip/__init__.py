"""SigLIP vision tower (``modeling``: functions; ``params``: checkpoint keys)."""

from focus_jax.models.siglip.modeling import SiglipVisionConfig

__all__ = ["SiglipVisionConfig"]
