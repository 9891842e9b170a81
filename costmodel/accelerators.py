"""Per-GEMM cycles and memory traffic of the five accelerators (one code path, three modes).

Each ``*_costs`` function returns ``GemmCost`` records holding arrays with one element per
GEMM: ``"linear"`` stacks the seven projections of every layer (``(7, L)``, or ``(7,)``
times the layer count when all layers are alike), ``"attention"`` the Q.K^T plus A.V of
every layer, ``"decode_*"`` the decode steps (``(..., steps, L)``). Each holds compute
cycles, on-chip stall cycles, DRAM bytes, SRAM bytes read and written per buffer, and MACs;
``costmodel.simulate`` applies the roofline per element and turns the sums into time and
energy.

With ``fix=PAPER`` (``costmodel.corrections``) the formulas are those of the reference
simulator (``simulator/core/simulator_comp.py`` and ``simulator_mem.py`` of the Focus
repository, commit 1842719), its defects included (``../shared/spec/cost-model.md``); each
``Corrections`` switch replaces one defect by the corrected formula
(``costmodel/CORRECTIONS.md``). Rounding goes through ``ops`` (exact or relaxed).

Units: cycles of the accelerator clock, bytes, MACs; FP16 data (2 bytes per element).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from costmodel.corrections import Corrections
from costmodel.fold import gemm_cycles
from costmodel.hardware import Hardware
from costmodel.ops import Ops
from costmodel.workload import Workload

__all__ = ["Traffic", "GemmCost", "prefill_costs", "decode_costs"]

_B = 2  # bytes per FP16 element


@dataclasses.dataclass
class Traffic:
    """Memory traffic of one GEMM kind (bytes; per-layer arrays or numbers)."""

    dram: object = 0.0
    sram_read: dict = dataclasses.field(default_factory=dict)
    sram_write: dict = dataclasses.field(default_factory=dict)

    def read(self, buffer: str, nbytes) -> None:
        self.sram_read[buffer] = self.sram_read.get(buffer, 0.0) + nbytes

    def write(self, buffer: str, nbytes) -> None:
        self.sram_write[buffer] = self.sram_write.get(buffer, 0.0) + nbytes

    def __add__(self, other: "Traffic") -> "Traffic":
        out = Traffic(self.dram + other.dram, dict(self.sram_read), dict(self.sram_write))
        for k, v in other.sram_read.items():
            out.read(k, v)
        for k, v in other.sram_write.items():
            out.write(k, v)
        return out

    def __mul__(self, factor) -> "Traffic":
        return Traffic(
            self.dram * factor,
            {k: v * factor for k, v in self.sram_read.items()},
            {k: v * factor for k, v in self.sram_write.items()},
        )

    __rmul__ = __mul__


class GemmCost(NamedTuple):
    """Cost of one GEMM kind, per layer (arrays broadcast over layers / decode steps).

    ``compute``, ``stall``: cycles (stall = on-chip scatter/gather stalls);
    ``traffic``: DRAM and SRAM bytes; ``macs``: multiply-accumulates executed.
    """

    name: str
    compute: object
    stall: object
    traffic: Traffic
    macs: object


# ----------------------------------------------------------------------------------------
# building blocks shared by the accelerators


def _dense_memory(hw: Hardware, ops: Ops, m, k, n, tile_rows: bool = False) -> Traffic:
    """A GEMM ``(m x k).(k x n)`` streamed from DRAM, no concentration (reference ``run_linear_dense``).

    Inputs are re-read once per buffer n-tile, weights once per buffer m-tile (``_m_tiles``),
    the output written once.
    """
    t = Traffic()
    cycles = ops.cdiv(m * k * n, hw.rows * hw.cols)
    t.read("input", cycles * hw.rows * _B)
    t.write("output", cycles * hw.cols * _B)
    m_repeat = _m_tiles(ops, m, hw.m_tile, tile_rows)
    t.read("wgt", k * n * m_repeat * _B)
    inputs = m * k * ops.cdiv(n, hw.n_tile) * _B
    weights = k * n * m_repeat * _B
    t.write("input", inputs)
    t.write("wgt", weights)
    t.read("output", m * n * _B)
    t.dram = inputs + weights + m * n * _B
    return t


def _focus_memory(hw: Hardware, ops: Ops, tokens, unique, k, n, tile_rows: bool = False) -> Traffic:
    """A concentrated GEMM: ``unique`` input rows computed, ``tokens`` rows scattered back.

    Reference ``run_linear_focus`` (memory): the array reads the unique vectors, the
    concentrate_out buffer collects the partial sums, the scatter writes one row per token.
    """
    t = Traffic()
    cycles = ops.cdiv(unique * k * n, hw.rows * hw.cols)
    t.read("input", cycles * hw.rows * _B)
    t.write("concentrate_out", cycles * hw.cols * _B)
    scattered = tokens * ops.cdiv(k, hw.cols) * n * _B
    t.read("concentrate_out", scattered)
    t.write("output", scattered)
    m_repeat = _m_tiles(ops, tokens, hw.m_tile, tile_rows)
    t.read("wgt", k * n * m_repeat * _B)
    inputs = unique * k * ops.cdiv(n, hw.n_tile) * _B
    weights = k * n * m_repeat * _B
    t.write("input", inputs)
    t.write("wgt", weights)
    t.dram = inputs + weights
    return t


def _m_tiles(ops: Ops, rows, m_tile, tile_rows: bool):
    """m-tiles a GEMM of ``rows`` rows spans, ``ceil(rows / m_tile)``. With ``tile_rows``
    (corrected and relaxed modes) at least one: a relaxed ceil of ``rows / m_tile`` near 0
    (a decode row, or a short prompt on a large tile) would otherwise stream no weights."""
    tiles = ops.cdiv(rows, m_tile)
    return jnp.maximum(tiles, 1.0) if tile_rows else tiles


def _detect_memory(ops: Ops, tokens, unique, n) -> Traffic:
    """SIC on a GEMM's output (reference ``run_detect_linear_focus``): layouter, similarity
    map and table traffic, and the concentrated output (``unique`` rows) written to DRAM."""
    t = Traffic()
    flags = tokens * ops.cdiv(n, 32) * _B
    rows = tokens * n * _B
    t.read("output", rows + flags)
    t.write("layouter", rows + flags)
    t.read("layouter", 7 * (rows + flags))
    t.write("similarity_map", flags)
    t.read("similarity_table", rows + unique * n * _B)
    t.write("similarity_table", rows)
    t.dram = unique * n * _B
    return t


def _paper_tiles(hw: Hardware, ops: Ops, tile_rows, partitions, n, k, n_on_rows: bool):
    """The paper's count: one SCALE-Sim call for a tile, times the tile repeats.

    Focus asks SCALE-Sim for ``(tile_rows, cols, rows)`` and repeats it ``ceil(n/cols)
    ceil(k/rows)`` times; the dense array and CMC ask for ``(tile_rows, rows, cols)`` and
    repeat ``ceil(n/rows) ceil(k/cols)`` times (``n_on_rows``).
    """
    h, w = hw.rows, hw.cols
    if n_on_rows:
        return gemm_cycles(tile_rows, h, w, h, w, "ws", ops) * partitions * ops.cdiv(n, h) * ops.cdiv(k, w)
    return gemm_cycles(tile_rows, w, h, h, w, "ws", ops) * partitions * ops.cdiv(n, w) * ops.cdiv(k, h)


def _split_cycles(hw: Hardware, ops: Ops, rows, partitions, n, k):
    """Corrected count: ``rows`` split evenly over ``partitions`` m-tiles, each a full GEMM
    on the array (SCALE-Sim's cycles; exact for weight-stationary, where cycles are linear
    in the streamed rows)."""
    p = jnp.maximum(partitions, 1.0)
    return p * gemm_cycles(rows / p, n, k, hw.rows, hw.cols, hw.dataflow, ops)


def _check_paper_dataflow(hw: Hardware) -> None:
    if hw.dataflow != "ws":
        raise ValueError(
            f"the paper's cycle count models the weight-stationary array only; {hw.kind} has dataflow "
            f"{hw.dataflow!r} (use mode='corrected')"
        )


# ----------------------------------------------------------------------------------------
# dense systolic array


def _dense_costs(hw: Hardware, wl: Workload, ops: Ops, fix: Corrections) -> list[GemmCost]:
    model = wl.model
    t = wl.visual_tokens + wl.text_tokens
    layers = model.num_layers
    parts = ops.cdiv(t, hw.m_tile)
    k, n, _ = model.linear_arrays()
    if fix.gemm_cycles:
        compute = _split_cycles(hw, ops, t, parts, n, k)
    else:
        compute = _paper_tiles(hw, ops, ops.cdiv(t, parts), parts, n, k, n_on_rows=True)
    memory = _dense_memory(hw, ops, t, k, n, fix.tile_rows)
    out = [GemmCost("linear", compute * layers, 0.0, memory * layers, t * k * n * layers)]
    heads, d = model.num_heads, model.head_dim
    if fix.gemm_cycles:
        qk = _split_cycles(hw, ops, t, parts, t, d) * heads
        sv = _split_cycles(hw, ops, t, parts, d, t) * heads
    else:
        qk = _paper_tiles(hw, ops, ops.cdiv(t, parts), parts, t, d, n_on_rows=True) * heads
        sv = qk
    traffic = (_dense_memory(hw, ops, t, d, t, fix.tile_rows) + _dense_memory(hw, ops, t, t, d, fix.tile_rows)) * (
        0.5 * heads
    )
    out.append(GemmCost("attention", (qk + sv) / 2 * layers, 0.0, traffic * layers, t * t * d * heads * layers))
    return out


# ----------------------------------------------------------------------------------------
# Focus and Focus SEC-only


class _FocusRows(NamedTuple):
    """Per-layer row counts of the traced GEMM inputs, ``(L, 5)`` arrays (text tokens included).

    ``kept``: rows not pruned by SEC (``r``); ``scattered``: rows written back by the
    scatter (``r_s``); ``unique``: rows of unique vectors computed (``u``); ``unique_c``:
    unique rows moved through memory (``u_c``, rounded up).
    """

    kept: object
    scattered: object
    unique: object
    unique_c: object


def _focus_rows(hw: Hardware, wl: Workload, ops: Ops) -> _FocusRows:
    st, text = wl.focus, wl.text_tokens
    v = np.asarray(st.vectors_per_token, float)
    kept = st.kept_tokens + text
    nonzero = (wl.visual_tokens + text) * v - st.zero_vectors
    unique_exact = nonzero - st.similar_vectors
    if hw.kind == "sec-only":
        return _FocusRows(kept, ops.floor(nonzero / v), kept, kept)
    return _FocusRows(kept, ops.floor(nonzero / v), ops.floor(unique_exact / v), ops.cdiv(unique_exact, v))


def _focus_costs(hw: Hardware, wl: Workload, ops: Ops, fix: Corrections) -> list[GemmCost]:
    if wl.focus is None:
        raise ValueError(f"{hw.kind} needs Focus statistics (Workload.focus): a trace, an SEC schedule or a sparsity")
    rows = _focus_rows(hw, wl, ops)
    return [_focus_linear(hw, wl, ops, fix, rows), _focus_attention(hw, wl, ops, fix, rows)]


def _focus_linear(hw: Hardware, wl: Workload, ops: Ops, fix: Corrections, rows: _FocusRows) -> GemmCost:
    """The seven projections at once: ``(7, L)`` arrays, row ``g`` reading trace column ``idx[g]``."""
    m, h, w = hw.m_tile, hw.rows, hw.cols
    k, n, idx = wl.model.linear_arrays()
    k, n = k[:, None], n[:, None]
    r, r_s, u, u_c = (x[:, idx].T for x in rows)
    tile_rows = ops.minimum(m, r) if fix.tile_rows else m  # the paper fills every tile to m rows
    gather_tile = hw.gather_block * tile_rows * ops.floor(hw.n_tile / w)  # cycles to gather one buffer tile
    parts = jnp.maximum(ops.cdiv(r, m), 1.0)
    if fix.gemm_cycles:
        compute = _split_cycles(hw, ops, u, parts, n, k)
    else:
        compute = _paper_tiles(hw, ops, ops.floor(u / parts), parts, n, k, n_on_rows=False)
    compute = jnp.where(u > 0, compute, 0.0)
    scatter = ops.cdiv(r_s * ops.cdiv(k, h) * ops.cdiv(n, w), hw.scatter_vectors)
    gather = gather_tile * _m_tiles(ops, r, m, fix.tile_rows) * ops.cdiv(n, hw.n_tile)
    busy = ops.maximum(scatter, gather)
    stall = ops.relu(busy - compute, busy) + gather_tile
    traffic = _focus_memory(hw, ops, r, u_c, k, n, fix.tile_rows) + _detect_memory(ops, r, u_c, n)
    return GemmCost("linear", compute, stall, traffic, u * k * n)


def _focus_attention(hw: Hardware, wl: Workload, ops: Ops, fix: Corrections, rows: _FocusRows) -> GemmCost:
    """Q.K^T on the concentrated queries, A.V on the kept tokens (column 1 of the trace: ``query``)."""
    m, heads, d = hw.m_tile, wl.model.num_heads, wl.model.head_dim
    t = wl.visual_tokens + wl.text_tokens
    r_k, r_s, u_q, u_cq = (x[:, 1] for x in rows)
    parts_q = jnp.maximum(ops.cdiv(u_q, m), 1.0)
    parts_k = jnp.maximum(ops.cdiv(r_k, m), 1.0)
    if fix.gemm_cycles:
        qk = _split_cycles(hw, ops, u_q, parts_q, r_k, d)
        sv = _split_cycles(hw, ops, r_k, parts_k, d, r_k)
    else:
        qk = _paper_tiles(hw, ops, ops.floor(u_q / parts_q), parts_q, r_k, d, n_on_rows=False)
        sv = _paper_tiles(hw, ops, ops.floor(r_k / parts_k), parts_k, r_k, d, n_on_rows=False)
    compute = (jnp.where(u_q > 0, qk, 0.0) + sv) / 2 * heads
    score_cols = r_k if fix.attention_traffic else t  # defect 1: the paper scatters against all T keys
    scatter = ops.cdiv(r_s * ops.cdiv(d * heads, hw.rows) * ops.cdiv(score_cols, hw.cols), hw.scatter_vectors)
    stall = ops.relu(scatter - compute, scatter)
    if fix.attention_traffic:
        qk_traffic = _focus_memory(hw, ops, r_k, u_cq, d, r_k, fix.tile_rows) * heads
        detect = _detect_memory(ops, r_k, u_cq, r_k) * (0.5 * heads)
    else:
        # defect 1: the per-slice token count is V - (T - r) instead of r, one head of Q.K^T
        slice_rows = wl.focus.vectors_per_token[1] - (t - r_k)
        if hw.kind == "sec-only":
            u_cq = slice_rows
        qk_traffic = _focus_memory(hw, ops, slice_rows, u_cq, d, r_k)
        detect = _detect_memory(ops, slice_rows, u_cq, t)
    sv_traffic = _dense_memory(hw, ops, r_k, r_k, d, fix.tile_rows) * heads
    traffic = (qk_traffic + sv_traffic) * 0.5 + detect
    macs = (u_q * r_k + r_k * r_k) * d * heads / 2
    return GemmCost("attention", compute, stall, traffic, macs)


# ----------------------------------------------------------------------------------------
# Adaptiv


def _adaptiv_linear(hw: Hardware, ops: Ops, tokens, rows, k, n):
    """Adaptiv GEMM with ``rows = T (1 - s)`` merged tokens (reference ``run_linear_adaptiv``).

    Token merging first reads all ``tokens`` (the TME stage, ``ceil(T K / 64)`` cycles);
    the MAC array then computes ``k_tile`` cycles per (N-line, M-line, K-tile) triple.
    """
    lines_m = ops.floor((rows + hw.rows - 1) / hw.rows)
    compute = hw.k_tile * ops.cdiv(n, hw.cols) * lines_m * ops.cdiv(k, hw.k_tile) + ops.cdiv(tokens * k, hw.rows)
    t = Traffic()
    t.read("input", 2 * tokens * k * _B)
    t.write("input", tokens * k * _B)
    n_repeat = ops.cdiv(n, hw.n_tile)
    m_repeat = ops.floor((rows + hw.m_tile - 1) / hw.m_tile)
    cycles = k * n_repeat * m_repeat
    t.read("input", cycles * hw.rows * hw.cols * _B)
    t.read("wgt", cycles * hw.rows * hw.cols * _B)
    t.write("output", n * rows * ops.cdiv(k, hw.k_tile) * _B)
    inputs = rows * k * n_repeat * _B
    weights = k * n * m_repeat * _B
    t.write("input", inputs)
    t.write("wgt", weights)
    t.read("output", n * rows * _B)
    t.dram = tokens * k * _B + inputs + weights + n * rows * _B
    return compute, t


def _adaptiv_costs(hw: Hardware, wl: Workload, ops: Ops, fix: Corrections) -> list[GemmCost]:
    model = wl.model
    text = wl.text_tokens
    t = wl.visual_tokens + text
    rows = wl.visual_tokens * (1 - wl.adaptiv_sparsity) + text
    layers = model.num_layers
    k, n, _ = model.linear_arrays()
    compute, traffic = _adaptiv_linear(hw, ops, t, rows, k, n)
    out = [GemmCost("linear", compute * layers, 0.0, traffic * layers, rows * k * n * layers)]
    heads, d = model.num_heads, model.head_dim
    qk, qk_traffic = _adaptiv_linear(hw, ops, t, rows, d, t)
    sv, sv_traffic = _adaptiv_linear(hw, ops, t, rows, t, d)
    if fix.gemm_cycles:
        compute = (qk + sv) * heads / 2
    else:
        compute = ops.floor((qk + qk) * heads / 2)  # A.V priced with the Q.K^T shape
    traffic = (qk_traffic + sv_traffic) * (0.5 * heads)
    out.append(GemmCost("attention", compute * layers, 0.0, traffic * layers, rows * t * d * heads * layers))
    return out


# ----------------------------------------------------------------------------------------
# CMC


def _cmc_linear(hw: Hardware, ops: Ops, wl: Workload, sparsity, k, n, fix: Corrections, codec):
    """CMC GEMM over the codec's kept rows (reference ``run_linear_cmc``).

    The video codec splits the ``F`` frames into ``P = ceil(F / 8)`` partitions and drops a
    fraction ``sparsity`` of the rows; its own time is not counted (as in the paper). Where
    ``codec`` is 1 (every GEMM but k and v), the raw input is also read once and compared
    patch against patch.
    """
    text = wl.text_tokens
    visual = wl.visual_tokens
    parts = ops.cdiv(wl.frames, hw.frames_per_partition)
    rows = visual * (1 - sparsity) + text
    if fix.gemm_cycles:
        compute = _split_cycles(hw, ops, rows, parts, n, k)
    else:
        tile = ops.floor(ops.floor(rows + parts - 1) / parts)
        compute = _paper_tiles(hw, ops, tile, parts, n, k, n_on_rows=True)
    t = Traffic()
    patches = visual / wl.frames
    t.read("input", codec * wl.frames * patches * patches * k * _B)
    raw = codec * (visual + text) * k * _B
    t.write("input", raw)
    n_repeat = ops.cdiv(n, hw.n_tile)
    m_repeat = ops.floor((rows + hw.m_tile - 1) / hw.m_tile)
    cycles = ops.floor((rows * k * n + hw.rows * hw.cols - 1) / (hw.rows * hw.cols))
    t.read("input", cycles * hw.rows * _B)
    t.read("wgt", n * k * m_repeat * _B)
    t.write("output", cycles * hw.cols * _B)
    inputs = rows * k * n_repeat * _B
    weights = k * n * m_repeat * _B
    t.write("input", inputs)
    t.write("wgt", weights)
    t.read("output", n * rows * _B)
    t.dram = raw + inputs + weights + n * rows * _B
    return compute, t, rows * k * n


def _cmc_costs(hw: Hardware, wl: Workload, ops: Ops, fix: Corrections) -> list[GemmCost]:
    model = wl.model
    linear, query, score = wl.cmc_sparsity
    t = wl.visual_tokens + wl.text_tokens
    layers = model.num_layers
    k, n, _ = model.linear_arrays()
    codec = np.array([g.name not in ("k_proj", "v_proj") for g in model.linear_gemms()], float)
    compute, traffic, macs = _cmc_linear(hw, ops, wl, linear, k, n, fix, codec)
    out = [GemmCost("linear", compute * layers, 0.0, traffic * layers, macs * layers)]
    heads, d = model.num_heads, model.head_dim
    qk, qk_traffic, qk_macs = _cmc_linear(hw, ops, wl, query, d, t, fix, 1.0)
    sv, sv_traffic, sv_macs = _cmc_linear(hw, ops, wl, score, t, d, fix, 1.0)
    compute = ops.floor((qk + sv) * heads / 2)
    traffic = (qk_traffic + sv_traffic) * (0.5 * heads)
    out.append(GemmCost("attention", compute * layers, 0.0, traffic * layers, (qk_macs + sv_macs) * heads / 2 * layers))
    return out


# ----------------------------------------------------------------------------------------
# entry points


def prefill_costs(hw: Hardware, wl: Workload, ops: Ops, fix: Corrections) -> list[GemmCost]:
    """Per-GEMM costs of the prefill of ``wl`` (visual and text tokens) on ``hw``.

    Raises:
        ValueError: the paper's cycle count on a non-weight-stationary array, or Focus
            without statistics.
    """
    if not fix.gemm_cycles and hw.kind != "adaptiv":
        _check_paper_dataflow(hw)
    if hw.kind == "dense":
        return _dense_costs(hw, wl, ops, fix)
    if hw.kind in ("focus", "sec-only"):
        return _focus_costs(hw, wl, ops, fix)
    if hw.kind == "adaptiv":
        return _adaptiv_costs(hw, wl, ops, fix)
    return _cmc_costs(hw, wl, ops, fix)


def decode_costs(hw: Hardware, wl: Workload, ops: Ops) -> list[GemmCost]:
    """Per-GEMM costs of generating ``wl.decode_tokens`` tokens after the prefill (corrected mode).

    Each step runs every projection on one row (its weights streamed from DRAM) and
    attends over the KV cache: the kept visual tokens of that layer (SEC shrinks the cache
    of later layers on Focus), the text tokens and the tokens generated so far. The cache
    is read from DRAM once per KV head per step and the new K and V rows written back.
    Arrays are ``(steps, layers)``.
    """
    model = wl.model
    steps = jnp.arange(wl.decode_tokens, dtype=jnp.result_type(float))[:, None]
    if hw.kind in ("focus", "sec-only"):
        visual = wl.focus.kept_tokens[:, 1]
    else:
        visual = jnp.full((model.num_layers,), 1.0) * wl.visual_tokens
    context = visual[None, :] + wl.text_tokens + steps + 1  # keys attended by the new token
    ones = jnp.ones_like(context)

    def row_cycles(k, n):
        if hw.kind == "adaptiv":
            return _adaptiv_linear(hw, ops, 1.0, 1.0, k, n)[0]
        return gemm_cycles(1.0, n, k, hw.rows, hw.cols, hw.dataflow, ops)

    k, n, _ = model.linear_arrays()
    k, n = k[:, None, None], n[:, None, None]  # (7, steps, layers) with the context below
    out = [
        GemmCost(
            "decode_linear", row_cycles(k, n) * ones, 0.0, _dense_memory(hw, ops, 1.0, k, n, True) * ones, k * n * ones
        )
    ]
    heads, kv_heads, d = model.num_heads, model.num_kv_heads, model.head_dim
    compute = heads * (row_cycles(d, context) + row_cycles(context, d))
    cache = 2 * kv_heads * context * d * _B
    t = Traffic(dram=cache + 2 * kv_heads * d * _B)
    t.write("wgt", cache)
    t.read("wgt", heads * 2 * context * d * _B)
    t.write("output", heads * (context + d) * _B)
    out.append(GemmCost("decode_attention", compute, 0.0, t, 2 * heads * context * d))
    return out
