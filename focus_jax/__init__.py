"""focus-jax: Focus streaming token concentration (arXiv 2512.14661) for video VLMs in JAX.

Public entry points:

- ``FocusConfig``, ``VisualGeometry``, ``paper_config``: configuration (``focus_jax.config``).
- ``FocusKnobs``: the continuous knobs (per-layer/GEMM SIC thresholds, SEC keep ratios)
  as a pytree of arrays, for the exact and the relaxed (differentiable) model forward.
- ``focus_jax.concentration``: the three concentration stages as pure JAX functions.
- ``FocusTrace``: per-GEMM sparsity traces consumed by ``costmodel``.
- ``from_pretrained``: a Hugging Face LLaVA-OneVision / LLaVA-Video or Qwen2.5-VL
  checkpoint as a JAX model with optional Focus, chosen by ``config.json``'s
  ``model_type`` (``focus_jax.models``; imported on first use, so ``import focus_jax``
  stays light).
"""

from focus_jax.config import FocusConfig, VisualGeometry, paper_config
from focus_jax.knobs import FocusKnobs
from focus_jax.trace import FocusTrace, GemmTrace, RelaxedFocusTrace

__all__ = [
    "FocusConfig",
    "VisualGeometry",
    "paper_config",
    "FocusKnobs",
    "FocusTrace",
    "GemmTrace",
    "RelaxedFocusTrace",
    "from_pretrained",
]


def __getattr__(name):
    if name == "from_pretrained":
        from focus_jax.models import from_pretrained

        return from_pretrained
    raise AttributeError(f"module 'focus_jax' has no attribute {name!r}")
__version__ = "0.1.0"
