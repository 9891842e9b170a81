"""cocotb testbench of ``focus_systolic_array``: folds of a GEMM, output rows and busy cycles.

Stimulus: ``a`` (M, K) and ``w`` (K, N) integers, ``rows``/``cols``. Driven as the array's
docstring says, folds back to back (K-folds outer, N-folds inner). Inputs are driven and
outputs sampled at falling edges (cycle ``t`` = the t-th falling edge after reset).
Result: ``rows_out`` (folds, M, cols) raw output rows, ``busy_cycles`` (counter),
``first_busy``/``last_busy``: indices of the first and last cycle the counter counted, ``out_cycles``.
"""

import cocotb
import numpy as np
from _common import load_stimulus, pack, save_result, start, unpack, value
from cocotb.triggers import FallingEdge


@cocotb.test()
async def systolic_gemm(dut):
    s = load_stimulus()
    a, w, r, c = s["a"], s["w"], int(s["rows"]), int(s["cols"])
    m, k = a.shape
    n = w.shape[1]
    dw, aw = int(s["data_width"]), int(s["acc_width"])
    kf, nf = -(-k // r), -(-n // c)
    ap = np.zeros((m, kf * r), np.int64)
    ap[:, :k] = a
    wp = np.zeros((kf * r, nf * c), np.int64)
    wp[:k, :n] = w
    schedule = []  # per cycle: (w_row or None, a_row or None)
    for i in range(kf):
        for j in range(nf):
            tile = wp[i * r:(i + 1) * r, j * c:(j + 1) * c]
            schedule += [(tile[row], None) for row in reversed(range(r))]
            schedule += [(None, ap[t, i * r:(i + 1) * r]) for t in range(m)]
            schedule += [(None, None)] * (r + c - 2)
    schedule += [(None, None)] * (r + c + 2)  # let the last rows leave
    await start(dut)
    dut.clear.value = 0
    rows_out, busy = [], []
    for w_row, a_row in schedule:
        if value(dut.out_valid):
            rows_out.append(unpack(value(dut.out_data), c, aw))
        busy.append(value(dut.busy_cycles))
        dut.w_valid.value = int(w_row is not None)
        dut.w_data.value = pack(w_row if w_row is not None else [0] * c, dw)
        dut.a_valid.value = int(a_row is not None)
        dut.a_data.value = pack(a_row if a_row is not None else [0] * r, dw)
        await FallingEdge(dut.clk)
    busy.append(value(dut.busy_cycles))
    # cycle t was busy when the counter rose across the rising edge that ends it
    busy_idx = np.flatnonzero(np.diff(busy) > 0)
    save_result(rows_out=np.asarray(rows_out, np.int64).reshape(kf * nf, m, c), busy_cycles=value(dut.busy_cycles),
                first_busy=int(busy_idx[0]), last_busy=int(busy_idx[-1]), busy_count=len(busy_idx))
