"""The step functions of the cost model, exact or relaxed.

Every formula in ``costmodel`` rounds through one ``Ops`` object, so the three modes share
one code path: ``Ops()`` is exact (``floor``, ``ceil``, ``max``), ``Ops(temperature=t)``
replaces each step by a smooth stand-in whose derivative is finite everywhere and which
tends to the exact step as ``t -> 0`` (pointwise, including at the jump points).

- ``floor``: the soft round of Agustsson & Theis (2020),
  ``s(y) = n + 1/2 + tanh(a (y - n - 1/2)) / (2 tanh(a/2))`` with ``n = floor(y)`` and
  sharpness ``a = 1/t``, applied to ``y = x - 1/2 + e`` where the shift ``e = min(sqrt(t), 1/2)/2``
  places each smooth jump just left of the integer it belongs to, so that ``floor(n) -> n``.
  ``s`` is continuous and infinitely differentiable; large ``t`` makes it the identity
  (slope 1 everywhere), small ``t`` a staircase.
- ``ceil(x) = -floor(-x)``; ``minimum(a, b) = -maximum(-a, -b)``.
- ``maximum(a, b) = b + relu(a - b)`` with ``relu`` a softplus whose width is ``t`` times the
  mean magnitude of ``a`` and ``b`` (cycle counts span 1 to 1e11, so an absolute width
  would be meaningless).

Arguments are arrays or Python numbers (any unit: these functions are unitless).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

__all__ = ["Ops", "EXACT"]


@dataclasses.dataclass(frozen=True)
class Ops:
    """Rounding and maximum, exact (``temperature=None``) or relaxed (``temperature > 0``).

    Raises:
        ValueError: a temperature that is not a positive finite number.
    """

    temperature: float | None = None

    def __post_init__(self):
        t = self.temperature
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < float("inf")):
            raise ValueError(f"temperature must be a positive number or None, got {t!r}")

    @property
    def exact(self) -> bool:
        return self.temperature is None

    def floor(self, x):
        if self.exact:
            return jnp.floor(x)
        t = float(self.temperature)
        shift = min(t**0.5, 0.5) / 2
        return _soft_round(jnp.asarray(x) - 0.5 + shift, 1.0 / t)

    def ceil(self, x):
        if self.exact:
            return jnp.ceil(x)
        return -self.floor(-jnp.asarray(x))

    def cdiv(self, a, b):
        """``ceil(a / b)``: the reference's integer ``(a + b - 1) // b`` for integer ``a``, ``b > 0``."""
        return self.ceil(jnp.asarray(a) / b)

    def relu(self, x, scale):
        """``max(x, 0)``; ``scale`` (same unit as ``x``) sets the width of the relaxed corner."""
        if self.exact:
            return jnp.maximum(x, 0.0)
        width = float(self.temperature) * jax.lax.stop_gradient(jnp.abs(scale)) + 1e-30
        return width * jax.nn.softplus(x / width)

    def maximum(self, a, b):
        if self.exact:
            return jnp.maximum(a, b)
        return b + self.relu(a - b, (jnp.abs(a) + jnp.abs(b)) / 2)

    def minimum(self, a, b):
        """``min(a, b) = -max(-a, -b)`` (relaxed alike)."""
        if self.exact:
            return jnp.minimum(a, b)
        return -self.maximum(-jnp.asarray(a), -jnp.asarray(b))


def _soft_round(y, sharpness: float):
    n = jnp.floor(y)
    r = y - n - 0.5
    return n + 0.5 + jnp.tanh(sharpness * r) / (2.0 * jnp.tanh(sharpness / 2.0))


#: The exact step functions (paper and corrected modes).
EXACT = Ops()
