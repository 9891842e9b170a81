"""cocotb testbench of ``focus_scatter``: random partial-sum rows into random output rows.

Stimulus: ``psum`` (T, C), ``acc`` (T, L, C), ``addr`` (T, L), ``valid`` (T, L), widths.
Result: ``sums`` (T, L, C), ``addrs`` (T, L), ``valids`` (T, L) as seen one cycle later.
"""

import cocotb
import numpy as np
from _common import load_stimulus, pack, save_result, start, unpack, value
from cocotb.triggers import FallingEdge


@cocotb.test()
async def scatter_rows(dut):
    s = load_stimulus()
    psum, acc, addr, valid = s["psum"], s["acc"], s["addr"], s["valid"]
    steps, lanes, c = acc.shape
    aw, adw = int(s["acc_width"]), int(s["addr_width"])
    await start(dut)
    sums = np.zeros((steps, lanes, c), np.int64)
    addrs = np.zeros((steps, lanes), np.int64)
    valids = np.zeros((steps, lanes), np.int64)
    for t in range(steps + 1):
        if t:
            flags = value(dut.out_valid)
            got = unpack(value(dut.out_sum, True), lanes * c, aw)
            got_addr = unpack(value(dut.out_addr, True), lanes, adw, signed=False)
            for lane in range(lanes):
                valids[t - 1, lane] = (flags >> lane) & 1
                sums[t - 1, lane] = got[lane * c:(lane + 1) * c]
                addrs[t - 1, lane] = got_addr[lane]
        if t < steps:
            dut.in_psum.value = pack(psum[t], aw)
            dut.lane_acc.value = pack(acc[t].reshape(-1), aw)
            dut.lane_addr.value = pack(addr[t], adw)
            dut.lane_valid.value = pack(valid[t], 1)
        await FallingEdge(dut.clk)
    save_result(sums=sums, addrs=addrs, valids=valids)
