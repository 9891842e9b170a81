"""Integer Focus on the embedded demo model: GEMM-input traces and INT8-vs-float agreement.

Both are ``FocusPlan.capture`` callbacks (``model.with_focus(focus, capture=...)``), called
on the host with every SIC input (``SICInput``: before and after SEC's pruning) and every
SEC attention map (``SECInput``) of the prefills; the INT8 model is
``model.with_focus(focus, arithmetic="int8")`` (``focus_jax.quant`` decides SIC and SEC).

- ``Recorder``: keeps the inputs (the traces the RTL is verified on, ``tests/test_rtl.py``).
- ``AgreementStats``: on each input, the integer decisions next to the float ones
  (``benchmarks/int8_focus.py``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from focus_jax.concentration import (
    attention_importance,
    select_tokens,
    similarity_concentration,
    vector_concentration,
)
from focus_jax.models.focus_hooks import SECInput, SICInput
from focus_jax.quant import (
    TAU_FRAC_BITS,
    decisions_match,
    quantize_symmetric,
    quantized_attention_importance,
    quantized_keep_indices,
    quantized_sic_decisions,
    tau_fixed,
)

__all__ = ["AgreementStats", "Recorder"]


class Recorder:
    """A ``FocusPlan.capture`` that appends every ``SICInput`` to ``sic`` and every
    ``SECInput`` to ``sec``, in the order the prefill produced them."""

    def __init__(self):
        self.sic: list[SICInput] = []
        self.sec: list[SECInput] = []

    def __call__(self, record) -> None:
        (self.sec if isinstance(record, SECInput) else self.sic).append(record)


class AgreementStats:
    """Integer vs float Focus decisions, accumulated over the inputs a prefill captures.

    A ``FocusPlan.capture``: every SIC input is decided by ``quantized_sic_decisions`` and by
    the float ``similarity_concentration`` (with the SEC positions after pruning), every SEC
    attention map by ``quantized_keep_indices`` of the quantised importance and by the float
    top-k.

    Attributes (SIC totals over vectors): ``vectors``, ``similar_float``, ``similar_int``,
    ``mask_disagree``, ``zero_disagree``, ``group_disagree``, ``margins`` (float
    ``|best cosine - threshold|`` of every vector whose similar mask disagrees),
    ``explained`` (disagreements whose margin is at most that vector's own quantisation
    error ``|cos(x_int) - cos(x_float)|`` of the best candidate plus the threshold's rounding),
    ``quant_error`` (largest such error seen). SEC: ``sec_maps``, ``sec_kept`` (tokens kept
    over all maps), ``sec_kept_common`` (kept by both).
    """

    def __init__(self):
        self.vectors = self.similar_float = self.similar_int = 0
        self.mask_disagree = self.zero_disagree = self.group_disagree = 0
        self.margins: list[float] = []
        self.explained = 0
        self.quant_error = 0.0
        self.sec_maps = self.sec_kept = self.sec_kept_common = 0

    def __call__(self, record) -> None:
        if isinstance(record, SECInput):
            self._sec(record)
        else:
            self._sic(record)

    def _sec(self, rec: SECInput) -> None:
        heads, rows, n = rec.probs.shape
        args = (jnp.asarray(rec.probs)[None], jnp.ones((1, rows), bool), jnp.zeros(1, jnp.int32), n)
        kept_float = set(np.asarray(select_tokens(attention_importance(*args), rec.k))[0].tolist())
        kept_int = set(np.asarray(quantized_keep_indices(quantized_attention_importance(*args), rec.k))[0].tolist())
        self.sec_maps += 1
        self.sec_kept += rec.k
        self.sec_kept_common += len(kept_float & kept_int)

    def _sic(self, rec: SICInput) -> None:
        cfg, geom, x, pos = rec.config.replace(similarity_threshold=rec.threshold), rec.geometry, rec.x, rec.positions
        qm = quantized_sic_decisions(x, geom, cfg, positions=pos)
        ref = similarity_concentration(jnp.asarray(x), geom, cfg, positions=pos)
        q, scale = quantize_symmetric(x)
        deq = similarity_concentration((q * scale).astype(jnp.float32), geom, cfg, positions=pos)
        mi, mf = np.asarray(qm.mask_similar), np.asarray(ref.mask_similar)
        self.vectors += mi.size
        self.similar_float += int(mf.sum())
        self.similar_int += int(mi.sum())
        self.mask_disagree += int((mi != mf).sum())
        self.zero_disagree += int((np.asarray(qm.mask_zero) != np.asarray(ref.mask_zero)).sum())
        merged = vector_concentration(jnp.asarray(x), decisions_match(qm.mask_similar, qm.offset, qm.mask_zero),
                                      geom, cfg, positions=pos)  # the int8 model's grouping
        self.group_disagree += int((np.asarray(merged.group_index) != np.asarray(ref.group_index)).sum())
        sim, sim_q = np.asarray(ref.similarity), np.asarray(deq.similarity)
        margin = np.abs(sim[mi != mf] - rec.threshold)
        tau_err = abs(tau_fixed(rec.threshold) / (1 << TAU_FRAC_BITS) - rec.threshold)
        self.margins += margin.tolist()
        self.explained += int(np.sum(margin <= np.abs(sim - sim_q)[mi != mf] + tau_err + 1e-6))
        both = (sim > -1.5) & (sim_q > -1.5)
        if both.any():
            self.quant_error = max(self.quant_error, float(np.abs(sim - sim_q)[both].max()))

    def to_dict(self) -> dict:
        m = np.asarray(self.margins)
        return {"vectors": self.vectors, "similar_float": self.similar_float, "similar_int": self.similar_int,
                "mask_agreement": 1.0 - self.mask_disagree / max(self.vectors, 1),
                "group_agreement": 1.0 - self.group_disagree / max(self.vectors, 1),
                "zero_disagree": self.zero_disagree, "mask_disagree": self.mask_disagree,
                "max_disagree_margin": float(m.max()) if m.size else 0.0,
                "median_disagree_margin": float(np.median(m)) if m.size else 0.0,
                "disagree_within_own_quant_error": self.explained / max(self.mask_disagree, 1),
                "quant_error_max": self.quant_error,
                "sec_maps": self.sec_maps,
                "sec_kept_agreement": self.sec_kept_common / max(self.sec_kept, 1)}
