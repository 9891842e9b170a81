"""The paper's baselines -- CMC, Adaptiv, FrameFusion, FastV -- as pure, jit-compiled,
static-shape JAX functions (one module each), their configurations (``config``), how
the LLaVA-OneVision model applies them (``hooks``) and how they are compared with Focus
(``compare``). Every function follows the original implementation named in its module's
docstring; ``tests/test_baselines_golden.py`` checks them against vectors the originals
produced.
"""

from focus_jax.baselines.config import (
    METHODS,
    AdaptivConfig,
    BaselineConfig,
    CMCConfig,
    FastVConfig,
    FrameFusionConfig,
    default_method_config,
    method_from_dict,
    paper_method_config,
)

__all__ = [
    "METHODS",
    "AdaptivConfig",
    "BaselineConfig",
    "CMCConfig",
    "FastVConfig",
    "FrameFusionConfig",
    "default_method_config",
    "method_from_dict",
    "paper_method_config",
]
