"""Integer Focus on the embedded demo model: GEMM-input traces and the INT8 swap.

Both work by replacing, for the duration of a ``with`` block, the SIC call of the model's
Focus hooks (``focus_jax.models.focus_hooks.similarity_concentration``, the SIC of every
GEMM input before SEC prunes) with a wrapper; the model code itself is unchanged. The
SIC of the MLP inputs after SEC's pruning (``kept_sic``, the last layer of the demo model)
stays float. Call them in a fresh process, or before the model's prefill was compiled:
jit caches a traced prefill, hooks included.

- ``capture_sic_inputs``: records every SIC input ``(N, D)`` the prefill sees (the
  GEMM-input traces the RTL is verified on, ``tests/test_rtl.py``).
- ``int8_sic``: SIC decisions from ``focus_jax.quant`` (INT8, fixed-point threshold)
  instead of float, with agreement statistics against the float decisions
  (``benchmarks/int8_focus.py``).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.concentration import NO_CANDIDATE, BlockMatch, similarity_concentration, vector_concentration
from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.quant import TAU_FRAC_BITS, quantize_symmetric, quantized_block_match, tau_fixed

__all__ = ["AgreementStats", "capture_sic_inputs", "int8_sic"]


@contextlib.contextmanager
def _patched(replacement):
    from focus_jax.models import focus_hooks

    original = focus_hooks.similarity_concentration
    focus_hooks.similarity_concentration = replacement
    try:
        yield
    finally:
        focus_hooks.similarity_concentration = original


@contextlib.contextmanager
def capture_sic_inputs(records: list):
    """Append ``(geom, x)`` (``x`` ``(N, D)`` float32 numpy, one per prompt) for every SIC
    input of the prefills run inside the block."""

    def wrapper(vis, geom, cfg, **kwargs):
        def record(v):
            for row in np.asarray(v, np.float32).reshape((-1,) + v.shape[-2:]):
                records.append((geom, row))

        jax.debug.callback(record, vis)
        return similarity_concentration(vis, geom, cfg, **kwargs)

    with _patched(wrapper):
        yield records


class AgreementStats:
    """Integer vs float SIC decisions, accumulated over GEMM inputs.

    Attributes (totals over vectors): ``vectors``, ``similar_float``, ``similar_int``,
    ``mask_disagree``, ``zero_disagree``, ``group_disagree``, ``margins`` (float
    ``|best cosine - threshold|`` of every vector whose similar mask disagrees),
    ``explained`` (disagreements whose margin is at most that vector's own quantisation
    error ``|cos(x_int) - cos(x_float)|`` of the best candidate plus the threshold's rounding),
    ``quant_error`` (largest such error seen).
    """

    def __init__(self):
        self.vectors = self.similar_float = self.similar_int = 0
        self.mask_disagree = self.zero_disagree = self.group_disagree = 0
        self.margins: list[float] = []
        self.explained = 0
        self.quant_error = 0.0

    def to_dict(self) -> dict:
        m = np.asarray(self.margins)
        return {"vectors": self.vectors, "similar_float": self.similar_float, "similar_int": self.similar_int,
                "mask_agreement": 1.0 - self.mask_disagree / max(self.vectors, 1),
                "group_agreement": 1.0 - self.group_disagree / max(self.vectors, 1),
                "zero_disagree": self.zero_disagree, "mask_disagree": self.mask_disagree,
                "max_disagree_margin": float(m.max()) if m.size else 0.0,
                "median_disagree_margin": float(np.median(m)) if m.size else 0.0,
                "disagree_within_own_quant_error": self.explained / max(self.mask_disagree, 1),
                "quant_error_max": self.quant_error}


def _int_decisions(x: np.ndarray, geom: VisualGeometry, cfg: FocusConfig, stats: AgreementStats | None):
    """Integer decisions of ``x`` ``(..., N, D)`` (numpy) and the float comparison."""
    q, scale = quantize_symmetric(x)
    qm = quantized_block_match(q, geom, cfg, tau_fixed(cfg.similarity_threshold))
    if stats is not None:
        ref = similarity_concentration(jnp.asarray(x), geom, cfg)
        deq = similarity_concentration((q * scale).astype(jnp.float32), geom, cfg)
        mi, mf = np.asarray(qm.mask_similar), np.asarray(ref.mask_similar)
        res_int = vector_concentration(jnp.asarray(x), _match(qm), geom, cfg)
        stats.vectors += mi.size
        stats.similar_float += int(mf.sum())
        stats.similar_int += int(mi.sum())
        stats.mask_disagree += int((mi != mf).sum())
        stats.zero_disagree += int((np.asarray(qm.mask_zero) != np.asarray(ref.mask_zero)).sum())
        stats.group_disagree += int((np.asarray(res_int.group_index) != np.asarray(ref.group_index)).sum())
        sim = np.asarray(ref.similarity)
        sim_q = np.asarray(deq.similarity)
        margin = np.abs(sim[mi != mf] - cfg.similarity_threshold)
        tau_err = abs(tau_fixed(cfg.similarity_threshold) / (1 << TAU_FRAC_BITS) - cfg.similarity_threshold)
        stats.margins += margin.tolist()
        stats.explained += int(np.sum(margin <= np.abs(sim - sim_q)[mi != mf] + tau_err + 1e-6))
        both = (sim > -1.5) & (np.asarray(deq.similarity) > -1.5)
        if both.any():
            stats.quant_error = max(stats.quant_error, float(np.abs(sim - np.asarray(deq.similarity))[both].max()))
    return np.asarray(qm.mask_similar), np.asarray(qm.offset), np.asarray(qm.mask_zero)


def _match(qm) -> BlockMatch:
    return BlockMatch(jnp.where(qm.mask_similar, 1.0, NO_CANDIDATE).astype(jnp.float32), qm.offset, qm.mask_zero)


@contextlib.contextmanager
def int8_sic(stats: AgreementStats | None = None):
    """Inside the block, the model's SIC takes its decisions in integers (``focus_jax.quant``:
    INT8 per-tensor activations, ``T = round(tau 2^12)``) and merges the float vectors as
    the reference does; with ``stats``, every call also runs the float SIC and counts the
    disagreements."""

    def wrapper(vis, geom, cfg, **kwargs):
        v = -(-vis.shape[-1] // cfg.vector_size) if vis.shape[-1] > cfg.vector_size else 1
        shapes = (jax.ShapeDtypeStruct(vis.shape[:-1] + (v,), jnp.bool_),
                  jax.ShapeDtypeStruct(vis.shape[:-1] + (v,), jnp.int32),
                  jax.ShapeDtypeStruct(vis.shape[:-1] + (v,), jnp.bool_))

        def host(x):
            similar, offset, zero = _int_decisions(np.asarray(x, np.float32), geom, cfg, stats)
            return similar.astype(bool), offset.astype(np.int32), zero.astype(bool)

        similar, offset, zero = jax.pure_callback(host, shapes, vis, vmap_method="sequential")
        match = BlockMatch(jnp.where(similar, 1.0, NO_CANDIDATE).astype(jnp.float32), offset, zero)
        return vector_concentration(vis, match, geom, cfg)

    with _patched(wrapper):
        yield stats
