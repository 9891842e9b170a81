"""The SEC unit: importance accumulation and top-k selection of kept tokens (veriloggen).

Streaming interface (no back-pressure):

- ``clear`` (one cycle): every importance to 0 (before an SEC layer; a per-entry valid bit
  is reset, the buffer itself is not rewritten).
- accumulation beats: ``acc_valid`` with ``acc_index`` (visual token) and ``acc_value``
  (an attention probability as unsigned ``importance_bits`` fixed point,
  ``focus_jax.quant.quantize_importance``): ``imp[index] = max(imp[index], value)``, one
  beat per cycle, so streaming every (head, query row, visual column) probability gives
  the max over heads and query rows (spec SEC step 2).
- selection: ``sel_start`` (one cycle) with ``sel_k`` and ``sel_n`` (``1 <= k <= n``,
  ``n <= sec_tokens``): ``busy`` rises; the unit finds the k-th largest importance by a
  radix search over its ``importance_bits`` bits (one pass of ``n`` reads per bit,
  counting tokens above the prefix found so far) and then emits, in one more pass, the
  kept token indices in ascending order: ``out_valid`` with ``out_index``, exactly ``k``
  beats. Ties at the k-th value go to the lower indices (``lax.top_k``'s rule). ``done``
  pulses with the last pass's final cycle; the whole selection takes
  ``(importance_bits + 1) * n`` cycles after ``sel_start`` (``sec_cycles``).

One comparator, one counter and the importance buffer: the Max Unit and Importance Vector
Buffer of the paper's SEC.
"""

from __future__ import annotations

from veriloggen import Cat, Int, Module, Mux, Posedge

from rtlgen._vg import if_
from rtlgen.config import RtlConfig, clog2

__all__ = ["sec_cycles", "sec_module"]


def sec_cycles(cfg: RtlConfig, n: int) -> int:
    """Cycles from ``sel_start`` to the cycle after ``done`` for ``n`` tokens."""
    return (cfg.importance_bits + 1) * n + 1


def sec_module(cfg: RtlConfig) -> Module:
    """``focus_sec``: the SEC unit for ``cfg`` (module docstring)."""
    iw, depth, xw = cfg.importance_bits, cfg.sec_tokens, cfg.index_width
    kw = clog2(depth + 1)
    bw = clog2(iw)
    m = Module("focus_sec")
    clk, rst = m.Input("clk"), m.Input("rst")
    clear = m.Input("clear")
    acc_valid = m.Input("acc_valid")
    acc_index = m.Input("acc_index", xw)
    acc_value = m.Input("acc_value", iw)
    sel_start = m.Input("sel_start")
    sel_k = m.Input("sel_k", kw)
    sel_n = m.Input("sel_n", kw)
    busy = m.Output("busy")
    out_valid = m.Output("out_valid")
    out_index = m.Output("out_index", xw)
    done = m.Output("done")

    imp = m.Reg("imp", iw, depth)
    idle, count, emit = 0, 1, 2
    state = m.Reg("state", 2)
    bit = m.Reg("radix_bit", bw)
    prefix = m.Reg("prefix", iw)
    remaining = m.Reg("remaining", kw)
    cnt = m.Reg("cnt", kw)
    taken = m.Reg("taken", kw)
    j = m.Reg("j", xw)
    n = m.Reg("n", kw)
    o_valid, o_index, o_done = m.Reg("o_valid"), m.Reg("o_index", xw), m.Reg("o_done")

    # `live` marks the entries written since `clear`; the others read as 0 (one vector reset
    # instead of clearing the whole buffer)
    live = m.Reg("live", depth)
    current = m.Wire("current", iw)
    current.assign(Mux(live[j], imp[j], Int(0, iw)))
    acc_old = m.Wire("acc_old", iw)
    acc_old.assign(Mux(live[acc_index], imp[acc_index], Int(0, iw)))
    # count pass: does token j's importance start with prefix followed by a 1 at `bit`?
    onehot = m.Wire("onehot", iw)
    onehot.assign(Int(1, iw) << bit)
    high = m.Wire("high_mask", iw)
    high.assign(~(onehot - Int(1, iw)))
    probe = m.Wire("probe", iw)
    probe.assign(prefix | onehot)
    match = m.Wire("match", kw)
    match.assign(Mux((current & high) == probe, Int(1, kw), Int(0, kw)))
    total = m.Wire("total", kw)
    total.assign(cnt + match)
    last = m.Wire("last")
    n_last = m.Wire("n_last", kw)
    n_last.assign(n - Int(1, kw))
    last.assign((Cat(Int(0, kw - xw), j) if kw > xw else j) == n_last)
    # emit pass: above the k-th value, or equal to it while ties are still to take
    tie = m.Wire("tie")
    tie.assign((current == prefix) & (taken < remaining))
    keep = m.Wire("keep")
    keep.assign((current > prefix) | tie)

    m.Always(Posedge(clk))(if_(acc_valid & ~clear & (acc_value > acc_old), [imp[acc_index](acc_value)]))
    m.Always(Posedge(clk))(if_(rst | clear, [live(Int(0, depth))], [
        if_(acc_valid & (acc_value > acc_old), [live[acc_index](1)])]))
    m.Always(Posedge(clk))(if_(rst, [state(Int(idle, 2)), o_valid(0), o_done(0)], [
        o_valid(0), o_done(0),
        if_(state == Int(idle, 2), [
            if_(sel_start, [state(Int(count, 2)), bit(Int(iw - 1, bw)), prefix(Int(0, iw)), remaining(sel_k),
                            cnt(Int(0, kw)), j(Int(0, xw)), n(sel_n)]),
        ], [if_(state == Int(count, 2), [
            if_(last, [
                if_(total >= remaining, [prefix(probe)], [remaining(remaining - total)]),
                cnt(Int(0, kw)), j(Int(0, xw)),
                if_(bit == Int(0, bw), [state(Int(emit, 2)), taken(Int(0, kw))], [bit(bit - Int(1, bw))]),
            ], [cnt(total), j(j + Int(1, xw))]),
        ], [
            o_valid(keep), o_index(j), if_(tie, [taken(taken + Int(1, kw))]),
            if_(last, [state(Int(idle, 2)), o_done(1)], [j(j + Int(1, xw))]),
        ])]),
    ]))
    busy.assign(state != Int(idle, 2))
    out_valid.assign(o_valid)
    out_index.assign(o_index)
    done.assign(o_done)
    return m
