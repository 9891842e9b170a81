"""cocotb testbench of ``focus_sec``: importance accumulation, then top-k selection.

Stimulus: ``index``/``value`` (B,) accumulation beats, ``n``, ``k``, ``index_width``.
One ``clear`` cycle, the beats back to back, then ``sel_start``. Result: ``kept`` (the
``out_index`` of every ``out_valid`` beat, in order), ``cycles`` (from the ``sel_start``
cycle to the cycle ``done`` is seen).
"""

import cocotb
import numpy as np
from _common import load_stimulus, save_result, start, value
from cocotb.triggers import FallingEdge


@cocotb.test()
async def sec_select(dut):
    s = load_stimulus()
    n, k = int(s["n"]), int(s["k"])
    await start(dut)
    for sig in (dut.acc_valid, dut.sel_start):
        sig.value = 0
    dut.clear.value = 1
    await FallingEdge(dut.clk)
    dut.clear.value = 0
    for idx, val in zip(s["index"], s["value"]):
        dut.acc_valid.value = 1
        dut.acc_index.value = int(idx)
        dut.acc_value.value = int(val)
        await FallingEdge(dut.clk)
    dut.acc_valid.value = 0
    dut.sel_start.value = 1
    dut.sel_k.value = k
    dut.sel_n.value = n
    await FallingEdge(dut.clk)
    dut.sel_start.value = 0
    kept, cycles = [], 1
    limit = (int(s["importance_bits"]) + 2) * n + 8
    while cycles < limit:
        if value(dut.out_valid):
            kept.append(value(dut.out_index))
        if value(dut.done):
            break
        await FallingEdge(dut.clk)
        cycles += 1
    assert value(dut.done), "done never rose"
    save_result(kept=np.asarray(kept, np.int64), cycles=cycles)
