"""The integers a generator builds from: ``RtlConfig``, derived from a design file.

``RtlConfig.from_design`` reads the design's ``hardware`` part (array, dataflow, scatter
accumulators, m-tile) and its ``focus`` part (vector size, window, threshold). The
datapath is INT8 x INT8 -> INT32 whatever ``hardware.data_width`` says (16 there prices
the paper's FP16 units in the cost model; the RTL is the paper's INT8 variant,
``int8_focus.csv``); ``manifest.json`` records both.
"""

from __future__ import annotations

import dataclasses

from focus_jax.design import Design
from focus_jax.errors import InputError
from focus_jax.quant import ACTIVATION_BITS, IMPORTANCE_BITS, TAU_FRAC_BITS, tau_fixed

__all__ = ["RtlConfig", "clog2"]


def clog2(n: int) -> int:
    """Bits to index ``n`` items (at least 1)."""
    return max(1, (n - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class RtlConfig:
    """Generator parameters (all Python ints, baked into the emitted Verilog).

    Attributes:
        rows, cols: systolic array height (K on the rows) and width (N on the columns).
        data_width: operand width in bits (signed integers); acc_width: partial-sum width.
        vector_size: SIC vector width in channels.
        window: ``(frame_block_size, block_size, block_size)``; the SIC unit compares a
            vector with ``prod(window) - 1`` candidates.
        threshold: the float SIC threshold; tau_q: its fixed-point form ``round(tau 2^F)``.
        tau_frac_bits: ``F``.
        sic_tokens: depth of the SIC group-pointer table (tokens per vector stream).
        sec_tokens: depth of the SEC importance buffer (visual tokens).
        importance_bits: width of a quantised attention probability.
        scatter_vectors: scatter accumulator lanes (output rows updated per cycle).
        design_data_width: the design file's ``hardware.data_width`` (recorded only).

    Raises:
        InputError: naming the field, for a configuration the generator cannot build.
    """

    rows: int = 4
    cols: int = 4
    data_width: int = ACTIVATION_BITS
    acc_width: int = 32
    vector_size: int = 8
    window: tuple[int, int, int] = (2, 2, 2)
    threshold: float = 0.9
    tau_q: int = 0
    tau_frac_bits: int = TAU_FRAC_BITS
    sic_tokens: int = 64
    sec_tokens: int = 64
    importance_bits: int = IMPORTANCE_BITS
    scatter_vectors: int = 2
    design_data_width: int = ACTIVATION_BITS

    def __post_init__(self):
        for name in ("rows", "cols", "vector_size", "sic_tokens", "sec_tokens", "scatter_vectors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise InputError(f"rtl: {name} must be an integer in [1, 4096], got {value!r}")
        if self.vector_size > 256:
            raise InputError(f"rtl: vector_size must be <= 256, got {self.vector_size}")
        if self.candidates < 1:
            raise InputError("rtl: the SIC window must hold at least one candidate besides the vector itself")
        if self.tau_q == 0:
            object.__setattr__(self, "tau_q", tau_fixed(self.threshold, self.tau_frac_bits))

    @property
    def candidates(self) -> int:
        """Window candidates per vector (the self position excluded)."""
        f, h, w = self.window
        return f * h * w - 1

    @property
    def sum_width(self) -> int:
        """Signed width of a dot product / squared norm of one vector."""
        return 2 * self.data_width + clog2(self.vector_size) + 1

    @property
    def pointer_width(self) -> int:
        return clog2(self.sic_tokens)

    @property
    def index_width(self) -> int:
        return clog2(self.sec_tokens)

    @classmethod
    def from_design(cls, design: Design, sic_tokens: int | None = None, sec_tokens: int | None = None,
                    rows: int | None = None, cols: int | None = None) -> RtlConfig:
        """The generator parameters of ``design`` (``rows``/``cols``/depths overridable, for tests).

        The SIC table and SEC buffer hold one GEMM m-tile (``hardware.m_tile`` tokens)
        unless given.

        Raises:
            InputError: a dataflow other than weight-stationary, a kind other than
                ``focus``, a threshold outside (0, 1], or as the constructor.
        """
        hw, focus = design.hardware, design.focus
        if hw.kind != "focus":
            raise InputError(f"rtl generates the Focus accelerator (hardware.kind 'focus'), got {hw.kind!r}")
        if hw.dataflow != "ws":
            raise InputError(f"rtl generates a weight-stationary array (hardware.dataflow 'ws'), got {hw.dataflow!r}")
        if focus.gemm_m_size is not None:
            raise InputError("rtl: focus.gemm_m_size must be null (m-tile-crossing candidates are the layouter's job)")
        return cls(
            rows=hw.rows if rows is None else rows,
            cols=hw.cols if cols is None else cols,
            vector_size=focus.vector_size,
            window=(focus.frame_block_size, focus.block_size, focus.block_size),
            threshold=focus.similarity_threshold,
            sic_tokens=hw.m_tile if sic_tokens is None else sic_tokens,
            sec_tokens=hw.m_tile if sec_tokens is None else sec_tokens,
            scatter_vectors=hw.scatter_vectors,
            design_data_width=hw.data_width,
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["window"] = list(self.window)
        d["candidates"] = self.candidates
        return d
