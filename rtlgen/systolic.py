"""Weight-stationary systolic array and its PE (INT8 x INT8 -> INT32), veriloggen.

Dataflow (SCALE-Sim's weight-stationary, ``costmodel/fold.py``): K on the ``R`` rows, N on
the ``C`` columns, M streamed. One fold:

1. ``R`` cycles of ``w_valid``: row ``k`` of the weight tile (``w_data``, ``C`` lanes)
   enters the top row and shifts one row down per cycle, so rows are sent bottom first
   (``W[R-1]`` first); all PEs shift together.
2. ``M`` cycles of ``a_valid``: one activation row (``a_data``, ``R`` lanes = the K-slice
   of one token) per cycle, unskewed; the array delays lane ``k`` by ``k`` cycles.
   PE ``(k, n)`` multiplies row ``m`` in cycle ``m + k + n`` and passes its partial sum down.
3. ``R + C - 2`` drain cycles until the last PE's last MAC; the next fold's weights may
   shift in from the cycle after.

So a fold keeps the array busy ``M + 2R + C - 2`` cycles and a GEMM of ``F`` folds
``F (M + 2R + C - 2)`` cycles; the index of its last busy cycle is
``costmodel.gemm_cycles(M, N, K, R, C, "ws")``. ``busy_cycles`` counts them.
Output row ``m`` (``out_data``, ``C`` lanes, deskewed) appears ``R + C - 1`` cycles after
its ``a_valid`` cycle, with ``out_valid``. Accumulation across K-folds is the output
buffer's (the scatter accumulators).
"""

from __future__ import annotations

from veriloggen import Cat, Int, Module, Mux, Posedge

from rtlgen._vg import if_
from rtlgen.config import RtlConfig

__all__ = ["SYSTOLIC_LATENCY", "pe_module", "systolic_module"]

#: Busy-cycle counter width.
COUNTER_WIDTH = 32


def SYSTOLIC_LATENCY(cfg: RtlConfig) -> int:
    """Cycles from a row's ``a_valid`` to its ``out_valid``."""
    return cfg.rows + cfg.cols - 1


def pe_module(cfg: RtlConfig) -> Module:
    """``focus_pe``: one weight-stationary processing element.

    Ports: ``w_shift``, ``w_in``/``w_out`` (weight chain, down), ``a_in``/``a_out``
    (activation, right, one register), ``psum_in``/``psum_out`` (partial sum, down, one
    register: ``psum_out <= psum_in + a_in * w``). Signed two's complement; the partial sum
    wraps at ``acc_width`` bits like an INT32 accumulator.
    """
    dw, aw = cfg.data_width, cfg.acc_width
    m = Module("focus_pe")
    clk, rst = m.Input("clk"), m.Input("rst")
    w_shift = m.Input("w_shift")
    w_in = m.Input("w_in", dw, signed=True)
    a_in = m.Input("a_in", dw, signed=True)
    psum_in = m.Input("psum_in", aw, signed=True)
    w_out = m.Output("w_out", dw, signed=True)
    a_out = m.Output("a_out", dw, signed=True)
    psum_out = m.Output("psum_out", aw, signed=True)
    w = m.Reg("w", dw, signed=True)
    a = m.Reg("a", dw, signed=True)
    psum = m.Reg("psum", aw, signed=True)
    prod = m.Wire("prod", 2 * dw, signed=True)
    prod.assign(a_in * w)
    wide = m.Wire("prod_ext", aw, signed=True)
    wide.assign(Cat(*([prod[2 * dw - 1]] * (aw - 2 * dw)), prod) if aw > 2 * dw else prod)
    w_out.assign(w)
    a_out.assign(a)
    psum_out.assign(psum)
    m.Always(Posedge(clk))(
        if_(rst, [w(Int(0, dw)), a(Int(0, dw)), psum(Int(0, aw))],
            [if_(w_shift, [w(w_in)], []), a(a_in), psum(psum_in + wide)])
    )
    return m


def systolic_module(cfg: RtlConfig, pe: Module) -> Module:
    """``focus_systolic_array``: ``rows x cols`` PEs with input skew, output deskew,
    the busy-cycle counter and the output valid delay line (module docstring)."""
    r, c, dw, aw = cfg.rows, cfg.cols, cfg.data_width, cfg.acc_width
    lat = SYSTOLIC_LATENCY(cfg)
    m = Module("focus_systolic_array")
    clk, rst = m.Input("clk"), m.Input("rst")
    clear = m.Input("clear")
    w_valid = m.Input("w_valid")
    w_data = m.Input("w_data", c * dw)
    a_valid = m.Input("a_valid")
    a_data = m.Input("a_data", r * dw)
    out_valid = m.Output("out_valid")
    out_data = m.Output("out_data", c * aw)
    busy = m.Output("busy")
    busy_cycles = m.Output("busy_cycles", COUNTER_WIDTH)

    # input skew: lane k delayed k cycles; lanes are zero outside a_valid
    lane_in = []
    for k in range(r):
        x = m.Wire(f"a_lane{k}", dw, signed=True)
        x.assign(Mux(a_valid, a_data[k * dw:(k + 1) * dw], Int(0, dw)))
        regs = [m.Reg(f"a_skew{k}_{i}", dw, signed=True) for i in range(k)]
        for i, reg in enumerate(regs):
            src = x if i == 0 else regs[i - 1]
            m.Always(Posedge(clk))(if_(rst, [reg(Int(0, dw))], [reg(src)]))
        lane_in.append(regs[-1] if regs else x)

    # the chain ends (bottom weight outputs, right-most activation outputs) are not read:
    # the one lint waiver of the generated RTL, scoped to their declarations
    w_chain = [[None] * c for _ in range(r)]
    a_chain = [[None] * c for _ in range(r)]
    for waive in (False, True):
        if waive:
            m.EmbeddedCode("/* verilator lint_off UNUSEDSIGNAL */")
        for k in range(r):
            for n in range(c):
                if (k == r - 1) == waive:
                    w_chain[k][n] = m.Wire(f"w_{k}_{n}", dw, signed=True)
                if (n == c - 1) == waive:
                    a_chain[k][n] = m.Wire(f"a_{k}_{n}", dw, signed=True)
        if waive:
            m.EmbeddedCode("/* verilator lint_on UNUSEDSIGNAL */")
    p_chain = [[m.Wire(f"p_{k}_{n}", aw, signed=True) for n in range(c)] for k in range(r)]
    for k in range(r):
        for n in range(c):
            w_src = w_data[n * dw:(n + 1) * dw] if k == 0 else w_chain[k - 1][n]
            a_src = lane_in[k] if n == 0 else a_chain[k][n - 1]
            p_src = Int(0, aw) if k == 0 else p_chain[k - 1][n]
            m.Instance(pe, f"pe_{k}_{n}", ports=[
                ("clk", clk), ("rst", rst), ("w_shift", w_valid), ("w_in", w_src), ("a_in", a_src),
                ("psum_in", p_src), ("w_out", w_chain[k][n]), ("a_out", a_chain[k][n]), ("psum_out", p_chain[k][n]),
            ])
    # output deskew: column n delayed C-1-n cycles so a row leaves in one beat
    outs = []
    for n in range(c):
        regs = [m.Reg(f"o_skew{n}_{i}", aw, signed=True) for i in range(c - 1 - n)]
        for i, reg in enumerate(regs):
            src = p_chain[r - 1][n] if i == 0 else regs[i - 1]
            m.Always(Posedge(clk))(if_(rst, [reg(Int(0, aw))], [reg(src)]))
        outs.append(regs[-1] if regs else p_chain[r - 1][n])
    out_data.assign(Cat(*reversed(outs)))

    valid_line = m.Reg("valid_line", lat)
    m.Always(Posedge(clk))(if_(rst, [valid_line(Int(0, lat))], [
        valid_line(Cat(valid_line[0:lat - 1], a_valid) if lat > 1 else a_valid)]))
    out_valid.assign(valid_line[lat - 1])

    # busy: weights shifting, a row entering, or a row still inside (R + C - 2 drain cycles)
    dwidth = max(1, (r + c - 2).bit_length())
    drain = m.Reg("drain", dwidth)
    count = m.Reg("count", COUNTER_WIDTH)
    is_busy = m.Wire("is_busy")
    is_busy.assign(w_valid | a_valid | (drain != Int(0, dwidth)))
    m.Always(Posedge(clk))(
        if_(
            rst | clear,
            [drain(Int(0, dwidth)), count(Int(0, COUNTER_WIDTH))],
            [
                if_(
                    a_valid,
                    [drain(Int(r + c - 2, dwidth))],
                    [if_(drain != Int(0, dwidth), [drain(drain - Int(1, dwidth))], [])],
                ),
                if_(is_busy, [count(count + Int(1, COUNTER_WIDTH))], []),
            ],
        )
    )
    busy.assign(is_busy)
    busy_cycles.assign(count)
    return m
