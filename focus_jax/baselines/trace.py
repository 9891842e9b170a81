"""What a baseline did in one prefill, and the visual-token GEMM work it executed.

``LlavaOnevision.forward(..., return_trace=True)`` on a model with a baseline method
(``with_method``) returns one ``MethodTrace`` per prompt. Work is counted as
``focus_jax.trace.FocusTrace.gemm_work`` counts Focus' (spec "What the hardware gains"),
so the fractions of all methods compare directly:

- token-removing methods (Adaptiv, FrameFusion, FastV): layer ``l`` with ``r_a`` visual
  tokens in its attention block and ``r_m`` in its MLP executes ``r_a / N`` of the dense
  q/k/v and o projections, ``(r_a / N)^2`` of Q.K^T and A.V, ``r_m / N`` of gate/up/down;
- CMC: its codec replaces tokens but keeps them in the sequence; the accelerator skips
  the replaced rows, so a GEMM executes ``1 - s`` of its dense work with ``s`` the
  non-informative fraction of its input (linear inputs for the projections, queries for
  Q.K^T, attention rows for A.V; reference ``sparsity_dict``).

Text tokens are excluded, as for Focus.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from focus_jax.config import VisualGeometry

__all__ = ["MethodTrace"]


@dataclasses.dataclass(frozen=True)
class MethodTrace:
    """One prompt's baseline trace.

    Attributes:
        method: ``cmc``, ``adaptiv``, ``framefusion`` or ``fastv``.
        config: the method config as ``to_dict`` writes it.
        geometry: the visual grid (``N`` tokens).
        model: decoder dimensions (``num_layers``, ``hidden_size``, ``intermediate_size``,
            ``num_heads``, ``num_kv_heads``, ``head_dim``).
        text_tokens: valid prompt tokens that are not grid tokens.
        kept_tokens: ``(L, 2)`` int, visual tokens entering each layer's attention and MLP.
        layer_sparsity: CMC: ``(L, 3)`` float, non-informative fraction of the linear,
            query and attention-score inputs per layer; None for the other methods.
    """

    method: str
    config: dict
    geometry: VisualGeometry
    model: dict
    text_tokens: int
    kept_tokens: np.ndarray
    layer_sparsity: np.ndarray | None = None

    def gemm_work(self) -> dict:
        """``{(layer, gemm): (method_MACs, dense_MACs)}`` over ``q_proj`` (q, k, v),
        ``o_proj``, ``gate_proj`` (gate, up), ``down_proj``, ``query`` (Q.K^T) and ``attn_v``."""
        m, n = self.model, self.geometry.num_tokens
        d, inter, qw = m["hidden_size"], m["intermediate_size"], m["num_heads"] * m["head_dim"]
        linear = {
            "q_proj": d * (m["num_heads"] + 2 * m["num_kv_heads"]) * m["head_dim"],
            "o_proj": qw * d,
            "gate_proj": d * 2 * inter,
            "down_proj": inter * d,
        }
        work = {}
        for layer in range(int(m["num_layers"])):
            if self.layer_sparsity is not None:
                lin, query, score = (1.0 - float(s) for s in self.layer_sparsity[layer])
                for name, macs in linear.items():
                    work[(layer, name)] = (lin * n * macs, n * macs)
                work[(layer, "query")] = (query * n * n * qw, n * n * qw)
                work[(layer, "attn_v")] = (score * n * n * qw, n * n * qw)
                continue
            r_a, r_m = (float(v) for v in self.kept_tokens[layer])
            for name, macs in linear.items():
                r = r_a if name in ("q_proj", "o_proj") else r_m
                work[(layer, name)] = (r * macs, n * macs)
            work[(layer, "query")] = (r_a * r_a * qw, n * n * qw)
            work[(layer, "attn_v")] = (r_a * r_a * qw, n * n * qw)
        return work

    def work_fraction(self) -> float:
        """Executed visual-token GEMM work as a fraction of dense (see ``gemm_work``)."""
        work = self.gemm_work().values()
        return sum(f for f, _ in work) / sum(d for _, d in work)

    def mean_sparsity(self) -> tuple[float, float, float] | None:
        """CMC: the ``(linear, query, attention-score)`` sparsity averaged over layers, as the
        reference writes ``cmc_sparsity.csv`` (and ``costmodel``'s ``cmc`` kind reads it)."""
        if self.layer_sparsity is None:
            return None
        return tuple(float(v) for v in self.layer_sparsity.mean(axis=0))

    def token_sparsity(self) -> float:
        """Fraction of the visual tokens removed before layer 0's attention (Adaptiv's
        ``pre_attn`` sparsity; 0 for methods that remove later or never)."""
        return 1.0 - float(self.kept_tokens[0, 0]) / self.geometry.num_tokens
