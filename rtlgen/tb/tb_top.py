"""cocotb testbench of ``focus_top``: one GEMM tile through SIC, the controller, the array and
the scatter accumulators, with the input and output buffers modelled here.

Stimulus: ``x`` (M, rows) INT8 tokens (one vector each), ``w`` (rows, cols) weights,
``offsets`` (NC,) candidate token offsets, widths, ``lanes``. The weights are loaded
(``rows`` cycles, bottom row first), the tokens streamed through the SIC unit as
``tb_sic`` does, then ``run`` is pulsed; the input buffer answers ``ib_rd_en`` with
``x[ib_rd_addr]`` the next cycle, the output buffer (zeros at start) answers the lanes'
reads in the same cycle and takes the scatter accumulators' writes.
Result: ``out`` (M, cols) output buffer, ``writes`` (M,) writes per row, ``issued`` the
rows read from the input buffer in order, ``decide_cycles`` (``sic_start`` cycle to the
last SIC result), ``compute_cycles`` (``run`` cycle to ``done``), ``array_busy``.
"""

import cocotb
import numpy as np
from _common import load_stimulus, pack, save_result, start, unpack, value
from cocotb.triggers import FallingEdge


class Buffers:
    """Input buffer (synchronous read) and output buffer (same-cycle read) of the tile."""

    def __init__(self, dut, x, cols, lanes, s):
        self.dut, self.x, self.lanes = dut, x, lanes
        self.dw, self.aw, self.pw = int(s["data_width"]), int(s["acc_width"]), int(s["pointer_width"])
        self.out = np.zeros((x.shape[0], cols), np.int64)
        self.writes = np.zeros(x.shape[0], np.int64)
        self.issued, self.pending = [], None
        self.cols = cols

    def tick(self):
        """At a falling edge: apply last cycle's writes, answer reads."""
        dut = self.dut
        flags = value(dut.ob_wr_valid)
        if flags:
            sums = unpack(value(dut.ob_wr_data, True), self.lanes * self.cols, self.aw)
            addrs = unpack(value(dut.ob_wr_addr, True), self.lanes, self.pw, signed=False)
            for lane in range(self.lanes):
                if flags >> lane & 1:
                    self.out[addrs[lane]] = sums[lane * self.cols:(lane + 1) * self.cols]
                    self.writes[addrs[lane]] += 1
        dut.ib_rd_data.value = pack(self.x[self.pending], self.dw) if self.pending is not None else 0
        self.pending = None
        if value(dut.ib_rd_en):
            self.pending = value(dut.ib_rd_addr)
            self.issued.append(self.pending)
        reads = value(dut.ob_rd_valid)
        addrs = unpack(value(dut.ob_rd_addr, True), self.lanes, self.pw, signed=False)
        rows = [self.out[addrs[lane]] if reads >> lane & 1 else np.zeros(self.cols) for lane in range(self.lanes)]
        dut.ob_rd_data.value = pack(np.concatenate(rows), self.aw)


@cocotb.test()
async def top_tile(dut):
    s = load_stimulus()
    x, w, offsets = s["x"], s["w"], [int(o) for o in s["offsets"]]
    tokens, rows = x.shape
    cols = w.shape[1]
    dw = int(s["data_width"])
    pw = int(s["pointer_width"])
    await start(dut)
    for sig in (dut.sa_clear, dut.sa_w_valid, dut.sic_start, dut.sic_in_valid, dut.run, dut.sec_clear,
                dut.sec_acc_valid, dut.sec_sel_start, dut.ib_rd_data, dut.ob_rd_data):
        sig.value = 0
    buffers = Buffers(dut, x, cols, int(s["lanes"]), s)
    for k in reversed(range(rows)):  # weights: bottom row first
        dut.sa_w_valid.value = 1
        dut.sa_w_data.value = pack(w[k], dw)
        await FallingEdge(dut.clk)
    dut.sa_w_valid.value = 0
    dut.sic_cand_offsets.value = pack(offsets, pw)
    cycle, seen, last_result = 0, 0, None
    dut.sic_start.value = 1
    await FallingEdge(dut.clk)
    dut.sic_start.value = 0
    start_cycle = cycle
    beats = []
    for p in range(tokens):
        beats.append((x[p], x[p]))
        beats += [(x[p], x[p - off] if 0 < off <= p else np.zeros_like(x[p])) for off in offsets]
    beats += [None] * 8
    for beat in beats:
        cycle += 1
        if value(dut.sic_out_valid):
            seen, last_result = seen + 1, cycle
        dut.sic_in_valid.value = int(beat is not None)
        if beat is not None:
            dut.sic_in_a.value = pack(beat[0], dw)
            dut.sic_in_b.value = pack(beat[1], dw)
        buffers.tick()
        await FallingEdge(dut.clk)
    assert seen == tokens, f"{seen} SIC results for {tokens} tokens"
    cycle += 1
    run_cycle = cycle
    dut.run.value = 1
    buffers.tick()
    await FallingEdge(dut.clk)
    dut.run.value = 0
    limit = 4 * tokens * (rows + cols) + 64
    while cycle - run_cycle < limit:
        cycle += 1
        buffers.tick()
        if value(dut.done):
            break
        await FallingEdge(dut.clk)
    assert value(dut.done), "done never rose"
    save_result(out=buffers.out, writes=buffers.writes, issued=np.asarray(buffers.issued, np.int64),
                decide_cycles=last_result - start_cycle, compute_cycles=cycle - run_cycle,
                array_busy=value(dut.sa_busy_cycles))
