"""Run SCALE-Sim 3.0.0 (PyPI ``scalesim``) on one GEMM: the reference for ``costmodel.fold``.

SCALE-Sim 3.0.0's ``get_total_cycles()`` is broken (it indexes a method), so the cycles are
read from the run's ``COMPUTE_REPORT.csv`` ("Total Cycles", i.e. compute cycles; with the
CALC bandwidth mode used here there are no stalls). Each run writes its configuration,
topology and reports into a fresh temporary directory, so runs never share files (the
paper's simulator rewrote one shared ``gemm.csv``, which its README warns breaks parallel
runs). ``scalesim`` is a test dependency, imported on first use.
"""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from pathlib import Path

__all__ = ["scalesim_cycles"]

_CONFIG = """[general]
run_name = fold

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 64
FilterSramSzkB: 256
OfmapSramSzkB: 256
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : 10
Dataflow : {dataflow}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def scalesim_cycles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str = "ws") -> int:
    """SCALE-Sim's compute cycles of an ``(m x k).(k x n)`` GEMM on a ``rows x cols`` array.

    Args:
        m, n, k: GEMM sizes (elements, >= 1).
        rows, cols: array height and width (PEs).
        dataflow: ``"ws"``, ``"os"`` or ``"is"``.

    Raises:
        ImportError: ``scalesim`` is not installed (``pip install scalesim==3.0.0``).
    """
    from scalesim.scale_sim import scalesim

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "config.cfg").write_text(_CONFIG.format(rows=rows, cols=cols, dataflow=dataflow))
        (d / "gemm.csv").write_text(f"Layer Name,M,N,K,\nGEMM,{m},{n},{k},\n")
        (d / "layout.csv").write_text("Layer name,\n")  # required by 3.0.0 even without custom layouts
        sim = scalesim(
            save_disk_space=True,
            verbose=False,
            config=str(d / "config.cfg"),
            topology=str(d / "gemm.csv"),
            layout=str(d / "layout.csv"),
            input_type_gemm=True,
        )
        with contextlib.redirect_stdout(io.StringIO()):
            sim.run_scale(top_path=str(d / "logs"))
        with open(d / "logs" / "fold" / "COMPUTE_REPORT.csv") as f:
            rows_ = list(csv.reader(f))
        header = [h.strip() for h in rows_[0]]
        return int(rows_[1][header.index("Total Cycles")].strip())
