"""focus-jax: Focus streaming token concentration (arXiv 2512.14661) for video VLMs in JAX.

Public entry points:

- ``FocusConfig``, ``VisualGeometry``, ``paper_config``: configuration (``focus_jax.config``).
- ``focus_jax.concentration``: the three concentration stages as pure JAX functions.
- ``FocusTrace``: per-GEMM sparsity traces consumed by ``costmodel``.
"""

from focus_jax.config import FocusConfig, VisualGeometry, paper_config
from focus_jax.trace import FocusTrace, GemmTrace

__all__ = ["FocusConfig", "VisualGeometry", "paper_config", "FocusTrace", "GemmTrace"]
__version__ = "0.1.0"
