"""cocotb testbench of ``focus_sic``: streams of vectors with their window candidates.

Stimulus: ``x`` (S, T, VS) integers (S streams of T tokens: one vector slot each),
``offsets`` (NC,) candidate token offsets, ``data_width``, ``pointer_width``.
Each stream: one ``start`` cycle, then per token ``NC + 1`` beats (self, then candidate
``j`` = token ``p - offsets[j-1]``, zero vector when ``p < offset``), back to back.
Result (``(S, T)`` each): ``zero``, ``similar``, ``candidate``, ``root``, ``token`` and
``latency`` (cycles from a token's last beat to its ``out_valid``).
"""

import cocotb
import numpy as np
from _common import load_stimulus, pack, save_result, start, value
from cocotb.triggers import FallingEdge


def _sample(dut, res, stream, seen, cycle, last_beat_cycle):
    """Record one result if ``out_valid``; returns the number of results seen."""
    if not value(dut.out_valid):
        return seen
    for field in ("token", "zero", "similar", "candidate", "root"):
        res[field][stream, seen] = value(getattr(dut, f"out_{field}"))
    res["latency"][stream, seen] = cycle - last_beat_cycle.get(seen, cycle)
    return seen + 1


@cocotb.test()
async def sic_streams(dut):
    s = load_stimulus()
    x, offsets = s["x"], [int(o) for o in s["offsets"]]
    dw, pw = int(s["data_width"]), int(s["pointer_width"])
    streams, tokens, _ = x.shape
    await start(dut)
    dut.cand_offsets.value = pack(offsets, pw)
    dut.in_valid.value = 0
    dut.start.value = 0
    fields = ("token", "zero", "similar", "candidate", "root", "latency")
    res = {f: np.zeros((streams, tokens), np.int64) for f in fields}
    cycle = 0
    for si in range(streams):
        beats = []
        for p in range(tokens):
            beats.append((p, x[si, p], x[si, p], False))
            for j, off in enumerate(offsets, start=1):
                # offset 0 marks a window slot with no candidate (geometry smaller than the window)
                cand = x[si, p - off] if 0 < off <= p else np.zeros_like(x[si, p])
                beats.append((p, x[si, p], cand, j == len(offsets)))
        last_beat_cycle = {}
        seen = 0
        dut.start.value = 1
        await FallingEdge(dut.clk)
        cycle += 1
        dut.start.value = 0
        for p, a, b, last in beats:
            seen = _sample(dut, res, si, seen, cycle, last_beat_cycle)
            dut.in_valid.value = 1
            dut.in_a.value = pack(a, dw)
            dut.in_b.value = pack(b, dw)
            if last:
                last_beat_cycle[p] = cycle
            await FallingEdge(dut.clk)
            cycle += 1
        dut.in_valid.value = 0
        for _ in range(6):
            seen = _sample(dut, res, si, seen, cycle, last_beat_cycle)
            await FallingEdge(dut.clk)
            cycle += 1
        assert seen == tokens, f"stream {si}: {seen} results for {tokens} tokens"
    save_result(**res)
