"""The SIC unit: integer similarity test, best candidate, group-pointer table (veriloggen).

Streaming interface (one vector slot of one GEMM input; ``B = candidates + 1`` beats per
vector, no back-pressure):

- ``start`` (one cycle, no beat): token counter and beat counter to 0.
- beats: ``in_valid`` with ``in_a`` (the vector, ``vector_size`` signed lanes) and
  ``in_b``: beat 0 carries the vector itself (``in_b = in_a``: it yields ``|a|^2``), beat
  ``j`` its window candidate ``j`` in ``focus_jax.concentration.window_offsets`` order.
  The layouter sends a zero vector for a candidate that does not exist (before the first
  token, a pruned token, another m-tile); a zero candidate never matches.
- ``cand_offsets``: the token offset of each candidate (``candidates`` fields of
  ``pointer_width`` bits, candidate 1 in the low bits), static during a stream.
- results, ``SIC_LATENCY`` cycles after a vector's last beat, one cycle of ``out_valid``
  with ``out_token`` (its index in the stream), ``out_zero``, ``out_similar``,
  ``out_candidate`` (1-based index of the best positive-dot candidate, 0 if none) and
  ``out_root`` (the group-pointer table's entry: the root token of its group).

Arithmetic (``focus_jax.quant``, bit for bit): ``dot = a.b`` and ``|b|^2`` per beat in one
adder tree each; the best candidate by ``dot_j^2 |b_best|^2 > dot_best^2 |b_j|^2`` among
``dot > 0`` (strict: the earlier candidate keeps a tie); similar when
``dot^2 2^(2F) > T^2 |a|^2 |b|^2``. The group-pointer table (``sic_tokens`` entries) stores
every token's root: a similar vector takes its best candidate's root, others themselves.
"""

from __future__ import annotations

from veriloggen import Cat, Int, Module, Mux, Posedge

from rtlgen._vg import if_
from rtlgen.config import RtlConfig, clog2

__all__ = ["SIC_LATENCY", "sic_module"]

#: Cycles from a vector's last beat to its ``out_valid`` (beat register, finalize register, output register).
SIC_LATENCY = 3


def sic_module(cfg: RtlConfig) -> Module:
    """``focus_sic``: the SIC unit for ``cfg`` (module docstring)."""
    vs, dw, sw = cfg.vector_size, cfg.data_width, cfg.sum_width
    nc, pw, f = cfg.candidates, cfg.pointer_width, cfg.tau_frac_bits
    cw = clog2(nc + 1)
    uw = sw - 1  # a positive sum or a norm fits sw - 1 unsigned bits
    tw = 2 * uw + 2 * f + 1  # width of both sides of the threshold test (T^2 <= 2^(2F))
    xw = 3 * uw  # width of both sides of the best-candidate comparison
    m = Module("focus_sic")
    clk, rst = m.Input("clk"), m.Input("rst")
    start = m.Input("start")
    in_valid = m.Input("in_valid")
    in_a = m.Input("in_a", vs * dw)
    in_b = m.Input("in_b", vs * dw)
    cand_offsets = m.Input("cand_offsets", nc * pw)
    out_valid = m.Output("out_valid")
    out_token = m.Output("out_token", pw)
    out_zero = m.Output("out_zero")
    out_similar = m.Output("out_similar")
    out_candidate = m.Output("out_candidate", cw)
    out_root = m.Output("out_root", pw)

    # stage A: products and adder trees (combinational), beat counter
    prods, squares = [], []
    for i in range(vs):
        a = m.Wire(f"a{i}", dw, signed=True)
        b = m.Wire(f"b{i}", dw, signed=True)
        a.assign(in_a[i * dw:(i + 1) * dw])
        b.assign(in_b[i * dw:(i + 1) * dw])
        p = m.Wire(f"ab{i}", sw, signed=True)
        q = m.Wire(f"bb{i}", uw)  # b*b >= 0: the signed product fits uw unsigned bits
        p.assign(a * b)
        q.assign(b * b)
        prods.append(p)
        squares.append(q)
    dot = m.Wire("dot", sw, signed=True)
    nb = m.Wire("nb", uw)
    dot.assign(_sum(prods))
    nb.assign(_sum(squares))
    beat = m.Reg("beat", cw)
    s_valid, s_beat = m.Reg("s_valid"), m.Reg("s_beat", cw)
    s_dot = m.Reg("s_dot", sw, signed=True)
    s_nb = m.Reg("s_nb", uw)
    last_beat = Int(nc, cw)
    m.Always(Posedge(clk))(if_(rst | start, [beat(Int(0, cw)), s_valid(0)], [
        s_valid(in_valid), s_beat(beat), s_dot(dot), s_nb(nb),
        if_(in_valid, [beat(Mux(beat == last_beat, Int(0, cw), beat + Int(1, cw)))]),
    ]))

    # stage B: running best over the candidates of the current vector
    na, has = m.Reg("na", uw), m.Reg("has")
    best, best_dot, best_nb = m.Reg("best", cw), m.Reg("best_dot", uw), m.Reg("best_nb", uw)
    s_dot_u = m.Wire("s_dot_u", uw)
    s_dot_u.assign(s_dot[0:uw])
    dsq = m.Wire("dsq", 2 * uw)
    dsq.assign(s_dot_u * s_dot_u)  # products at their natural operand widths, into full-width wires
    bsq = m.Wire("bsq", 2 * uw)
    bsq.assign(best_dot * best_dot)
    lhs = m.Wire("cross_new", xw)
    rhs = m.Wire("cross_best", xw)
    lhs.assign(dsq * best_nb)
    rhs.assign(bsq * s_nb)
    is_self = m.Wire("is_self")
    is_self.assign(s_beat == Int(0, cw))
    positive = m.Wire("positive")
    positive.assign(s_dot > Int(0, sw, signed=True))
    better = m.Wire("better")
    better.assign(~is_self & positive & (~has | (lhs > rhs)))
    n_na, n_has = m.Wire("n_na", uw), m.Wire("n_has")
    n_best, n_dot, n_nb = m.Wire("n_best", cw), m.Wire("n_dot", uw), m.Wire("n_nb", uw)
    n_na.assign(Mux(is_self, s_nb, na))
    n_has.assign(Mux(is_self, Int(0, 1), has | better))
    n_best.assign(Mux(better, s_beat, Mux(is_self, Int(0, cw), best)))
    n_dot.assign(Mux(better, s_dot_u, Mux(is_self, Int(0, uw), best_dot)))
    n_nb.assign(Mux(better, s_nb, Mux(is_self, Int(0, uw), best_nb)))
    f_valid, f_na, f_has = m.Reg("f_valid"), m.Reg("f_na", uw), m.Reg("f_has")
    f_best, f_dot, f_nb = m.Reg("f_best", cw), m.Reg("f_dot", uw), m.Reg("f_nb", uw)
    m.Always(Posedge(clk))(if_(rst | start, [f_valid(0), has(0)], [
        f_valid(s_valid & (s_beat == last_beat)),
        if_(s_valid, [na(n_na), has(n_has), best(n_best), best_dot(n_dot), best_nb(n_nb),
                      f_na(n_na), f_has(n_has), f_best(n_best), f_dot(n_dot), f_nb(n_nb)]),
    ]))

    # stage C: threshold test, group-pointer table, outputs
    fsq = m.Wire("f_dot_sq", 2 * uw)
    fsq.assign(f_dot * f_dot)
    tsq = m.Wire("thr_dot", tw)
    tsq.assign(Cat(Int(0, 1), fsq, Int(0, 2 * f)))
    fnn = m.Wire("f_norms", 2 * uw)
    fnn.assign(f_na * f_nb)
    nn = m.Wire("thr_norms", tw)
    nn.assign(fnn * Int(cfg.tau_q * cfg.tau_q, 2 * f + 1))
    similar = m.Wire("similar")
    similar.assign(f_has & (tsq > nn))
    token = m.Reg("token", pw)
    table = m.Reg("root_table", pw, cfg.sic_tokens)
    offsets = [cand_offsets[j * pw:(j + 1) * pw] for j in range(nc)]
    off = m.Wire("best_offset", pw)
    off.assign(_select(f_best, offsets, pw, cw))
    target = m.Wire("target", pw)
    target.assign(token - off)
    root = m.Wire("root", pw)
    root.assign(Mux(similar, table[target], token))
    o_valid, o_token, o_zero = m.Reg("o_valid"), m.Reg("o_token", pw), m.Reg("o_zero")
    o_similar, o_cand, o_root = m.Reg("o_similar"), m.Reg("o_candidate", cw), m.Reg("o_root", pw)
    m.Always(Posedge(clk))(if_(rst | start, [o_valid(0), token(Int(0, pw))], [
        o_valid(f_valid),
        if_(f_valid, [
            table[token](root), o_token(token), o_zero(f_na == Int(0, uw)), o_similar(similar),
            o_cand(f_best), o_root(root), token(token + Int(1, pw)),
        ]),
    ]))
    for port, reg in ((out_valid, o_valid), (out_token, o_token), (out_zero, o_zero), (out_similar, o_similar),
                      (out_candidate, o_cand), (out_root, o_root)):
        port.assign(reg)
    return m


def _sum(terms):
    """Balanced adder tree."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def _select(index, values, width: int, index_width: int):
    """``values[index - 1]`` (index 1-based; 0 selects 0) as a mux chain."""
    out = Int(0, width)
    for j, v in enumerate(values, start=1):
        out = Mux(index == Int(j, index_width), v, out)
    return out
