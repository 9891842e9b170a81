"""The Focus tile controller: SIC decisions in, unique rows to the array, scatter lanes out (veriloggen).

One GEMM tile of ``M <= sic_tokens`` tokens, one K-fold (``rows`` channels: one SIC vector
slot, the design's ``vector_size = k_tile = rows``) and one N-fold (``cols`` outputs), in
two phases (``tile_cycles`` counts them):

1. Decide. While the SIC unit decides the tile's tokens, every ``sic_out_valid`` result
   updates the group tables: a unique token (not similar, not zero) is appended to the
   unique list and opens a group whose first member is itself; a similar token is
   appended to its root's group (``out_root``: the resolved root, always a unique token).
   Members are dealt round-robin over the ``scatter_vectors`` lanes, one linked list per
   lane (``head_l``, ``tail_l``, ``next``), so a group of ``g`` tokens scatters in
   ``rounds = ceil(g / lanes)`` cycles. Zero vectors join no group (their output rows
   stay as the output buffer holds them).
2. Compute (``run``, one cycle, after the last SIC result): for each unique token ``u`` in
   stream order the controller reads its row from the input buffer (``ib_rd_en``,
   ``ib_rd_addr``; the buffer answers on ``ib_rd_data`` the next cycle, a synchronous
   SRAM read) and sends it to the array (``a_valid``), then waits ``rounds(u) - 1``
   cycles, so the array's output rows come out ``rounds`` cycles apart. Each output row is
   held (``psum``) while its ``rounds`` scatter cycles drive the lanes: lane ``l`` of
   round ``c`` is group member ``c * lanes + l`` (``lane_valid``, ``lane_addr``; the
   scatter accumulators add ``psum`` to the output-buffer row read for that member and
   write it back one cycle later). ``done`` rises for one cycle the cycle after the last
   write. Only the unique rows enter the array: the GEMM work is ``U`` rows, not ``M``.

The tables are ``sic_tokens`` entries each (the SIC table's depth): SRAM macros in an ASIC,
flip-flops here.
"""

from __future__ import annotations

from veriloggen import Cat, Int, Module, Mux, Posedge

from rtlgen._vg import if_
from rtlgen.config import RtlConfig, clog2
from rtlgen.sic import SIC_LATENCY
from rtlgen.systolic import SYSTOLIC_LATENCY

__all__ = ["CTRL_TABLES", "ctrl_module", "group_rounds", "tile_cycles"]

#: The controller's per-token tables (``sic_tokens`` entries each), besides the lane lists.
CTRL_TABLES = ("uniq", "rounds", "lane_sel", "next_member")


def group_rounds(roots, zero, lanes: int) -> dict[int, int]:
    """``{unique token: scatter rounds}`` of one tile: ``roots`` ``(M,)`` resolved root token
    of every token, ``zero`` ``(M,)`` zero-vector flags; a group of ``g`` tokens (root
    included) takes ``ceil(g / lanes)`` rounds."""
    sizes: dict[int, int] = {}
    for r, z in zip(roots, zero):
        if not z:
            sizes[int(r)] = sizes.get(int(r), 0) + 1
    return {u: -(-g // lanes) for u, g in sorted(sizes.items())}


def tile_cycles(cfg: RtlConfig, tokens: int, rounds) -> dict:
    """Cycles of one tile through ``focus_top`` (``rounds``: the ``group_rounds`` values in
    unique-token order).

    Returns:
        ``{"decide": ..., "compute": ..., "array_busy": ...}``:

        - ``decide``: from the ``sic_start`` cycle to the last SIC result,
          ``M (candidates + 1) + SIC_LATENCY``;
        - ``compute``: from the ``run`` cycle to ``done``, ``S + rows + cols + 4`` with
          ``S = sum(rounds)`` (first issue 1 cycle after ``run``, input-buffer read 1, the
          array ``rows + cols - 1``, output hold 1, ``S`` issue/scatter cycles, write 1,
          ``done`` 1); 2 for a tile of zero vectors only;
        - ``array_busy``: the array's ``busy_cycles`` for the tile, weights included:
          ``rows + sum(min(r, rows + cols - 1) for r in rounds[:-1]) + rows + cols - 1``
          (an issue gap longer than the array's drain leaves it idle). With every group
          within the lanes (all rounds 1) this is ``U + 2 rows + cols - 2``, the cost
          model's weight-stationary fold over the ``U`` unique rows
          (``costmodel.gemm_cycles(U, cols, rows, rows, cols, "ws") + 1``).
    """
    rounds = list(rounds)
    drain = SYSTOLIC_LATENCY(cfg)  # rows + cols - 1
    return {
        "decide": tokens * (cfg.candidates + 1) + SIC_LATENCY,
        "compute": sum(rounds) + drain + 5 if rounds else 2,
        "array_busy": cfg.rows + sum(min(r, drain) for r in rounds[:-1]) + drain if rounds else cfg.rows,
    }


def ctrl_module(cfg: RtlConfig) -> Module:
    """``focus_ctrl``: the tile controller for ``cfg`` (module docstring)."""
    pw, lanes, depth = cfg.pointer_width, cfg.scatter_vectors, cfg.sic_tokens
    cw = pw + 1  # counts up to `depth`
    lw = clog2(lanes)
    row_in = cfg.rows * cfg.data_width
    row_out = cfg.cols * cfg.acc_width
    m = Module("focus_ctrl")
    clk, rst = m.Input("clk"), m.Input("rst")
    tile_start = m.Input("tile_start")
    sic_valid = m.Input("sic_valid")
    sic_token = m.Input("sic_token", pw)
    sic_zero = m.Input("sic_zero")
    sic_similar = m.Input("sic_similar")
    sic_root = m.Input("sic_root", pw)
    run = m.Input("run")
    ib_rd_en = m.Output("ib_rd_en")
    ib_rd_addr = m.Output("ib_rd_addr", pw)
    ib_rd_data = m.Input("ib_rd_data", row_in)
    a_valid = m.Output("a_valid")
    a_data = m.Output("a_data", row_in)
    sa_valid = m.Input("sa_valid")
    sa_data = m.Input("sa_data", row_out)
    psum = m.Output("psum", row_out)
    lane_valid = m.Output("lane_valid", lanes)
    lane_addr = m.Output("lane_addr", lanes * pw)
    busy = m.Output("busy")
    done = m.Output("done")

    uniq = m.Reg("uniq", pw, depth)
    rounds = m.Reg("rounds", cw, depth)
    lane_sel = m.Reg("lane_sel", lw, depth)
    nxt = m.Reg("next_member", pw, depth)
    tails = [m.Reg(f"tail{lane}", pw, depth) for lane in range(lanes)]
    heads = [None] + [m.Reg(f"head{lane}", pw, depth) for lane in range(1, lanes)]
    count = m.Reg("unique_count", cw)

    # decide: group tables from the SIC results
    unique = m.Wire("is_unique")
    unique.assign(sic_valid & ~sic_zero & ~sic_similar)
    member = m.Wire("member")
    member.assign(sic_valid & sic_similar)
    sel = m.Wire("member_lane", lw)
    sel.assign(lane_sel[sic_root])
    if lanes > 1:
        first_round = m.Wire("first_round")
        first_round.assign(rounds[sic_root] == Int(1, cw))
    wrap = m.Wire("sel_next", lw)
    wrap.assign(Mux(sel == Int(lanes - 1, lw), Int(0, lw), sel + Int(1, lw)) if lanes > 1 else Int(0, lw))
    decide = [
        if_(unique, [uniq[count[0:pw]](sic_token), count(count + Int(1, cw)), rounds[sic_token](Int(1, cw)),
                     lane_sel[sic_token](Int(1 % lanes, lw)), tails[0][sic_token](sic_token)]),
        if_(member, [lane_sel[sic_root](wrap)]),
    ]
    for lane in range(lanes):
        hit = member & (sel == Int(lane, lw))
        # the tail read as a wire: a memory read inside a write address makes Yosys turn
        # the table into single registers instead of a memory
        tail = m.Wire(f"root_tail{lane}", pw)
        tail.assign(tails[lane][sic_root])
        if lane == 0:  # a new round: lane 0's list always holds the root first
            decide.append(if_(hit, [rounds[sic_root](rounds[sic_root] + Int(1, cw)),
                                    nxt[tail](sic_token), tails[0][sic_root](sic_token)]))
        else:
            decide.append(if_(hit & first_round, [heads[lane][sic_root](sic_token)]))
            decide.append(if_(hit & ~first_round, [nxt[tail](sic_token)]))
            decide.append(if_(hit, [tails[lane][sic_root](sic_token)]))
    # the lane-0 append and a lane-l append never happen in the same cycle (one member per
    # cycle), so `next` has one writer per cycle
    m.Always(Posedge(clk))(if_(rst | tile_start, [count(Int(0, cw))], decide))

    # compute, issue side: one unique row every `rounds` cycles
    active = m.Reg("active")
    issue_i = m.Reg("issue_index", cw)
    gap = m.Reg("gap", cw)
    rd_en, rd_addr, a_v = m.Reg("rd_en"), m.Reg("rd_addr", pw), m.Reg("a_v")
    next_u = m.Wire("issue_token", pw)
    next_u.assign(uniq[issue_i[0:pw]] if cw > pw else uniq[issue_i])
    can_issue = m.Wire("can_issue")
    can_issue.assign(active & (gap == Int(0, cw)) & (issue_i < count))
    m.Always(Posedge(clk))(if_(rst | tile_start, [issue_i(Int(0, cw)), gap(Int(0, cw)), rd_en(0), a_v(0)], [
        rd_en(can_issue), a_v(rd_en),
        if_(run, [issue_i(Int(0, cw)), gap(Int(0, cw))], [
            if_(can_issue, [rd_addr(next_u), gap(rounds[next_u] - Int(1, cw)), issue_i(issue_i + Int(1, cw))], [
                if_(active & (gap != Int(0, cw)), [gap(gap - Int(1, cw))])]),
        ]),
    ]))

    # compute, scatter side: the array's output rows, `rounds` cycles each
    out_j = m.Reg("output_index", cw)
    sc_on = m.Reg("scatter_on")
    rnd, last_rnd = m.Reg("scatter_round", cw), m.Reg("last_round", cw)
    root_sel = m.Reg("root_lane_sel", lw) if lanes > 1 else None
    hold = m.Reg("psum_hold", row_out)
    ptr = [m.Reg(f"lane_ptr{lane}", pw) for lane in range(lanes)]
    out_u = m.Wire("output_token", pw)
    out_u.assign(uniq[out_j[0:pw]] if cw > pw else uniq[out_j])
    load = [out_j(out_j + Int(1, cw)), sc_on(1), rnd(Int(0, cw)), last_rnd(rounds[out_u] - Int(1, cw)),
            hold(sa_data), ptr[0](out_u)]
    if lanes > 1:
        load.append(root_sel(lane_sel[out_u]))
    load += [ptr[lane](heads[lane][out_u]) for lane in range(1, lanes)]
    step = [rnd(rnd + Int(1, cw)), if_(rnd == last_rnd, [sc_on(0)])]
    step += [ptr[lane](nxt[ptr[lane]]) for lane in range(lanes)]
    finished = m.Wire("finished")
    finished.assign(active & ~run & (issue_i == count) & (out_j == count) & ~sc_on & ~rd_en & ~a_v)
    d = m.Reg("done_r")
    m.Always(Posedge(clk))(if_(rst | tile_start, [out_j(Int(0, cw)), sc_on(0), active(0), d(0)], [
        d(0),
        if_(run, [active(1), out_j(Int(0, cw)), sc_on(0)], [
            if_(sa_valid, load, [if_(sc_on, step)]),
            if_(finished & ~sa_valid, [active(0), d(1)]),
        ]),
    ]))
    valids = []
    for lane in range(lanes):
        # lanes fill in order: lane l >= 1 holds one element less once the last round ends before it
        v = m.Wire(f"lane_valid{lane}")
        if lane == 0:
            v.assign(sc_on)
        else:
            short = root_sel != Int(0, lw)
            if lane < (1 << lw) - 1:
                short = short & (root_sel <= Int(lane, lw))
            v.assign(sc_on & ~(short & (rnd == last_rnd)))
        valids.append(v)
    lane_valid.assign(Cat(*reversed(valids)))
    lane_addr.assign(Cat(*reversed(ptr)))
    psum.assign(hold)
    ib_rd_en.assign(rd_en)
    ib_rd_addr.assign(rd_addr)
    a_valid.assign(a_v)
    a_data.assign(ib_rd_data)
    busy.assign(active)
    done.assign(d)
    return m
