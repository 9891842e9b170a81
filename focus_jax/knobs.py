"""The continuous Focus knobs as a pytree of arrays, separate from the static ``FocusConfig``.

``FocusConfig`` fixes everything that decides shapes and compiled code (vector, window and
m-tile sizes, which layers run SEC); ``FocusKnobs`` holds the numbers a tuner moves: one
SIC similarity threshold per decoder layer and GEMM input, and one SEC keep ratio per SEC
layer. They are ordinary JAX arrays (a registered dataclass), so ``jax.grad``, ``vmap``,
optax and ``flax.nnx`` wrappers see them as leaves, and changing them never recompiles
the model: ``LlavaOnevision.forward(..., knobs=knobs)`` runs the exact Focus path with
these thresholds (hard masks), ``relaxed=True`` the differentiable one.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.config import FocusConfig
from focus_jax.errors import InputError
from focus_jax.trace import GEMM_NAMES

__all__ = ["FocusKnobs"]

#: Smallest SEC keep ratio ``to_config`` writes (``FocusConfig`` needs alpha > 0; SEC keeps
#: at least one token anyway).
MIN_KEEP = 1e-6


def _shortest(value) -> float:
    """The shortest decimal that rounds to the float32 ``value`` (0.975, not 0.97500002)."""
    return float(np.format_float_positional(np.float32(value), unique=True))


@dataclasses.dataclass(frozen=True)
class FocusKnobs:
    """Continuous Focus parameters (spec "SIC" step 6 threshold, "SEC" step 3 alpha).

    Attributes:
        similarity_threshold: ``(num_layers, 5)`` float32, the SIC threshold of every
            decoder layer and GEMM input, columns in ``focus_jax.trace.GEMM_NAMES`` order
            (``q_proj``, ``query``, ``o_proj``, ``gate_proj``, ``down_proj``). A vector is
            similar when its best cosine is strictly greater (in [-1, 1]; >= 1 merges
            nothing).
        sec_keep: ``(len(config.sec_layers),)`` float32, SEC's retention ratio alpha of
            each SEC layer of the ``FocusConfig`` it is used with (relative to the original
            number of visual tokens, in (0, 1]); entries of SEC layers beyond the model's
            last layer are unused.
    """

    similarity_threshold: jax.Array
    sec_keep: jax.Array

    @classmethod
    def from_config(cls, cfg: FocusConfig, num_layers: int) -> FocusKnobs:
        """The knobs that reproduce ``cfg``: its threshold everywhere, its SEC alphas.

        Raises:
            InputError: ``num_layers`` is not a positive integer.
        """
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise InputError(f"num_layers must be a positive integer, got {num_layers!r}")
        return cls(
            similarity_threshold=jnp.full((num_layers, len(GEMM_NAMES)), cfg.similarity_threshold, jnp.float32),
            sec_keep=jnp.asarray(np.asarray(cfg.sec_alphas, np.float32).reshape(-1)),
        )

    @property
    def num_layers(self) -> int:
        return int(np.shape(self.similarity_threshold)[0])

    def check(self, cfg: FocusConfig, num_layers: int) -> None:
        """Raise ``InputError`` unless the shapes fit ``cfg`` and a ``num_layers`` decoder."""
        expected = (num_layers, len(GEMM_NAMES))
        if tuple(np.shape(self.similarity_threshold)) != expected:
            raise InputError(
                f"FocusKnobs.similarity_threshold must have shape {expected}, got {np.shape(self.similarity_threshold)}"
            )
        if tuple(np.shape(self.sec_keep)) != (len(cfg.sec_layers),):
            raise InputError(
                f"FocusKnobs.sec_keep must have shape ({len(cfg.sec_layers)},) (one per SEC layer), got "
                f"{np.shape(self.sec_keep)}"
            )

    def sec_alphas(self) -> tuple[float, ...]:
        """``sec_keep`` as the Python floats the exact path's static SEC schedule needs,
        clipped to ``[MIN_KEEP, 1]``.

        Raises:
            InputError: ``sec_keep`` is traced (inside ``jax.grad``/``jit``): the exact path
                fixes the kept-token counts at trace time; use ``relaxed=True``.
        """
        if isinstance(self.sec_keep, jax.core.Tracer):
            raise InputError(
                "the exact Focus path needs concrete FocusKnobs.sec_keep (token counts are static); use relaxed=True"
            )
        return tuple(_shortest(a) for a in np.clip(np.asarray(self.sec_keep, np.float32), MIN_KEEP, 1.0))

    def to_config(self, cfg: FocusConfig) -> FocusConfig:
        """The closest ``FocusConfig``: ``cfg`` with one global threshold and these alphas.

        Rounding: ``FocusConfig`` holds one threshold, so per-layer/GEMM thresholds become
        their mean (the least-squares closest single value), clipped to [-1, 1]; the exact
        path itself accepts the full ``(num_layers, 5)`` table (``forward(..., knobs=...)``),
        so pass the knobs there to keep them. ``sec_keep`` is clipped to ``[MIN_KEEP, 1]``;
        the exact path then keeps ``max(1, int(N * alpha))`` tokens (``FocusConfig``).
        Knobs are float32: each value is written as the shortest decimal that rounds to the
        same float32 (the precision the exact path compares in), so ``from_config`` then
        ``to_config`` gives back the config.

        Raises:
            InputError: traced knobs (see ``sec_alphas``).
        """
        if isinstance(self.similarity_threshold, jax.core.Tracer):
            raise InputError("FocusKnobs.to_config needs concrete knobs, not traced ones")
        threshold = _shortest(np.clip(np.mean(np.asarray(self.similarity_threshold, np.float64)), -1.0, 1.0))
        return cfg.replace(similarity_threshold=threshold, sec_alphas=self.sec_alphas())


jax.tree_util.register_dataclass(FocusKnobs, data_fields=["similarity_threshold", "sec_keep"], meta_fields=[])
