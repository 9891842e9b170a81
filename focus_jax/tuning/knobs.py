"""The tunable knobs as ``flax.nnx`` modules: tuning is ordinary Flax training.

- ``TunableHardware``: the inner accelerator fields (m-tile, scatter vectors, gather block)
  as one ``nnx.Param`` of continuous coordinates ``(log2 m_tile, scatter_vectors,
  log2 gather_block)`` inside a ``HardwareSpace``'s bounds; calling it on a base
  ``costmodel.Hardware`` gives that design with the (traced) fields set.
- ``TunableFocus``: the SIC similarity thresholds (one global value, one per layer, or one
  per layer and GEMM input, ``GEMM_NAMES`` order) as ``nnx.Param`` logits mapped into their
  bounds by a sigmoid, and the SEC keep ratios as an ``nnx.Param`` of the ratios themselves,
  projected back into their bounds after every step (a keep ratio of 1.0, "no SEC at this
  layer", is where the tuner starts candidate layers; a sigmoid there would saturate and
  hold it); calling it gives ``{"similarity_threshold": (L, 5), "sec_keep": (n_sec,)}``, the
  fields of the model's ``FocusKnobs``.

``train_step`` is one projected optax step of an ``nnx.Optimizer`` on any scalar loss of the
modules (every module with a ``clip`` method is projected into its bounds after the update).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from focus_jax.config import FocusConfig
from focus_jax.tuning.hardware import HardwareSpace

__all__ = ["GRANULARITIES", "TunableFocus", "TunableHardware", "project", "train_step"]

#: Threshold sharing: one value, one per layer, one per layer and GEMM input.
GRANULARITIES = ("global", "layer", "layer_gemm")
_GEMMS = 5  # len(costmodel.GEMM_NAMES)


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class TunableHardware(nnx.Module):
    """Accelerator coordinates ``(log2 m_tile, scatter_vectors, log2 gather_block)`` as an ``nnx.Param``.

    Args:
        space: bounds (``HardwareSpace``).
        start: initial ``(m_tile, scatter_vectors, gather_block)``.
    """

    def __init__(self, space: HardwareSpace, start=(1024, 2, 8)):
        self.space = space
        lo, hi = space.bounds()
        self.bounds = (tuple(float(x) for x in lo), tuple(float(x) for x in hi))
        self.coords = nnx.Param(jnp.asarray(space.to_coords(*start), jnp.float32))

    def clip(self) -> None:
        """Project the coordinates back into the bounds (after an optimiser step)."""
        lo, hi = self.bounds
        self.coords[...] = jnp.clip(self.coords[...], jnp.asarray(lo), jnp.asarray(hi))

    def set(self, design) -> None:
        """Move to a (rounded) design ``(m_tile, scatter_vectors, gather_block)``."""
        self.coords[...] = jnp.asarray(self.space.to_coords(*design), jnp.float32)

    def rounded(self) -> tuple[int, int, int]:
        """The nearest valid design."""
        return self.space.round(np.asarray(self.coords[...]))

    def __call__(self, base):
        c = self.coords[...]
        return base.replace(m_tile=2.0 ** c[0], scatter_vectors=c[1], gather_block=2.0 ** c[2])


class TunableFocus(nnx.Module):
    """SIC thresholds (sigmoid logits) and SEC keep ratios (projected values) as bounded ``nnx.Param`` s.

    Args:
        cfg: the starting ``FocusConfig`` (its threshold and SEC schedule).
        num_layers: decoder layers ``L``.
        granularity: one of ``GRANULARITIES``.
        threshold_bounds: ``(lo, hi)`` of every threshold, ``-1 <= lo < hi <= 1``.
        keep_bounds: ``(lo, hi)`` of every keep ratio, ``0 < lo < hi <= 1``.

    Raises:
        ValueError: unknown granularity, bad bounds, or a starting value outside them.
    """

    def __init__(
        self,
        cfg: FocusConfig,
        num_layers: int,
        granularity: str = "layer_gemm",
        threshold_bounds=(0.8, 1.0),
        keep_bounds=(0.02, 1.0),
    ):
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
        (tlo, thi), (klo, khi) = threshold_bounds, keep_bounds
        if not -1 <= tlo < thi <= 1 or not 0 < klo < khi <= 1:
            raise ValueError(
                f"bad bounds: thresholds {threshold_bounds} must lie in [-1, 1], keep ratios {keep_bounds} in (0, 1]"
            )
        thr = cfg.similarity_threshold
        if not tlo <= thr <= thi or any(not klo <= a <= khi for a in cfg.sec_alphas):
            raise ValueError(f"the starting threshold {thr} or keep ratios {cfg.sec_alphas} lie outside the bounds")
        shape = {"global": (), "layer": (num_layers, 1), "layer_gemm": (num_layers, _GEMMS)}[granularity]
        self.num_layers = num_layers
        self.granularity = granularity
        self.threshold_bounds, self.keep_bounds = (float(tlo), float(thi)), (float(klo), float(khi))
        self.threshold_logit = nnx.Param(jnp.full(shape, _logit((thr - tlo) / (thi - tlo)), jnp.float32))
        self.keep_ratio = nnx.Param(jnp.asarray(cfg.sec_alphas, jnp.float32).reshape(-1))

    def clip(self) -> None:
        """Project the keep ratios back into their bounds (after an optimiser step)."""
        lo, hi = self.keep_bounds
        self.keep_ratio[...] = jnp.clip(self.keep_ratio[...], lo, hi)

    def set(self, cfg: FocusConfig) -> None:
        """Move every threshold to ``cfg``'s and the keep ratios to its SEC alphas (clipped into the bounds)."""
        (tlo, thi), (klo, khi) = self.threshold_bounds, self.keep_bounds
        thr = np.clip(cfg.similarity_threshold, tlo, thi)
        self.threshold_logit[...] = jnp.full(
            self.threshold_logit[...].shape, _logit((thr - tlo) / (thi - tlo)), jnp.float32
        )
        alphas = np.clip(np.asarray(cfg.sec_alphas, np.float64), klo, khi)
        self.keep_ratio[...] = jnp.asarray(alphas, jnp.float32).reshape(-1)

    def thresholds(self) -> jax.Array:
        """``(L, 5)`` float32 thresholds."""
        lo, hi = self.threshold_bounds
        t = lo + (hi - lo) * jax.nn.sigmoid(self.threshold_logit[...])
        return jnp.broadcast_to(t, (self.num_layers, _GEMMS))

    def keep(self) -> jax.Array:
        """``(n_sec,)`` float32 SEC keep ratios."""
        lo, hi = self.keep_bounds
        return jnp.clip(self.keep_ratio[...], lo, hi)

    def __call__(self) -> dict:
        return {"similarity_threshold": self.thresholds(), "sec_keep": self.keep()}


def train_step(optimizer: nnx.Optimizer, modules, loss_fn):
    """One projected optimiser step: ``value, grads = nnx.value_and_grad(loss_fn)(modules)``,
    the update, then ``clip()`` of every module that has one (bounded knobs stay valid).

    ``modules``: an ``nnx.Module`` (or a tuple of them, wrapped in ``nnx.List``) the
    ``optimizer`` was built for; ``loss_fn(modules) -> scalar``. Returns the loss value.
    """
    value, grads = nnx.value_and_grad(loss_fn)(modules)
    optimizer.update(modules, grads)
    project(modules)
    return value


def project(modules) -> None:
    """``clip()`` every module in ``modules`` (a module or a graph of them) that has one:
    the projection after an optimiser step that keeps bounded knobs valid."""
    for _, module in nnx.iter_graph(modules):
        if isinstance(module, nnx.Module) and callable(getattr(module, "clip", None)):
            module.clip()
