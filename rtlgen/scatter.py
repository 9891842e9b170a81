"""The scatter accumulators: ``scatter_vectors`` lanes adding one partial-sum row into
output rows per cycle (veriloggen).

After SIC, the array multiplies only one vector per group (the unique vectors); every
member token still needs that partial sum in its own output row. Each cycle the array's
output row ``in_psum`` (``cols`` INT32 lanes) is added, on each valid lane ``l``, to the
output-buffer row ``lane_acc[l]`` read for token ``lane_addr[l]``; one cycle later
``out_valid[l]``, ``out_addr[l]`` and ``out_sum[l] = lane_acc[l] + in_psum`` (wrapping
at ``acc_width`` bits) go back to the output buffer. The cost model's scatter term is
``ceil(tokens * K-folds * N-folds / scatter_vectors)`` cycles of this unit
(``costmodel.accelerators``).
"""

from __future__ import annotations

from veriloggen import Cat, Int, Module, Posedge

from rtlgen._vg import if_
from rtlgen.config import RtlConfig, clog2

__all__ = ["scatter_module"]


def scatter_module(cfg: RtlConfig) -> Module:
    """``focus_scatter``: the scatter accumulators for ``cfg`` (module docstring)."""
    lanes, c, aw = cfg.scatter_vectors, cfg.cols, cfg.acc_width
    adw = clog2(cfg.sic_tokens)
    row = c * aw
    m = Module("focus_scatter")
    clk, rst = m.Input("clk"), m.Input("rst")
    in_psum = m.Input("in_psum", row)
    lane_valid = m.Input("lane_valid", lanes)
    lane_addr = m.Input("lane_addr", lanes * adw)
    lane_acc = m.Input("lane_acc", lanes * row)
    out_valid = m.Output("out_valid", lanes)
    out_addr = m.Output("out_addr", lanes * adw)
    out_sum = m.Output("out_sum", lanes * row)
    valid = m.Reg("valid", lanes)
    addrs, sums = [], []
    for lane in range(lanes):
        addr = m.Reg(f"addr{lane}", adw)
        total = m.Reg(f"sum{lane}", row)
        elems = []
        for n in range(c):
            e = m.Wire(f"add{lane}_{n}", aw)
            lo, hi = n * aw, (n + 1) * aw
            e.assign(lane_acc[lane * row + lo:lane * row + hi] + in_psum[lo:hi])
            elems.append(e)
        m.Always(Posedge(clk))(if_(lane_valid[lane], [addr(lane_addr[lane * adw:(lane + 1) * adw]),
                                                      total(Cat(*reversed(elems)))]))
        addrs.append(addr)
        sums.append(total)
    m.Always(Posedge(clk))(if_(rst, [valid(Int(0, lanes))], [valid(lane_valid)]))
    out_valid.assign(valid)
    out_addr.assign(Cat(*reversed(addrs)))
    out_sum.assign(Cat(*reversed(sums)))
    return m
