"""Focus' three concentration stages as pure, jit-compiled JAX functions.

- SEC (semantic): ``attention_importance`` (streamed query rows), ``token_importance``,
  ``select_tokens``, ``sequence_keep_indices``, ``gather_tokens``, ``scatter_tokens``, ``soft_top_k``.
- SIC block level: ``block_similarity``.
- SIC vector level: ``vector_concentration``.
- ``similarity_concentration`` composes the two SIC stages.

Semantics: ../shared/spec/focus-algorithm.md.
"""

from focus_jax.concentration.block import NO_CANDIDATE, BlockMatch, window_offsets
from focus_jax.concentration.layout import vector_layout
from focus_jax.concentration.semantic import (
    attention_importance,
    gather_tokens,
    scatter_tokens,
    select_tokens,
    sequence_keep_indices,
    soft_top_k,
    token_importance,
)
from focus_jax.concentration.sic import (
    SICResult,
    block_similarity,
    similarity_concentration,
    vector_concentration,
)

__all__ = [
    "NO_CANDIDATE",
    "BlockMatch",
    "SICResult",
    "attention_importance",
    "block_similarity",
    "gather_tokens",
    "scatter_tokens",
    "select_tokens",
    "sequence_keep_indices",
    "similarity_concentration",
    "soft_top_k",
    "token_importance",
    "vector_concentration",
    "vector_layout",
    "window_offsets",
]
