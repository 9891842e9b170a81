"""``verilator --lint-only -Wall`` on the generated modules.

The generated RTL is clean under ``-Wall`` with one scoped waiver: the systolic array's
chain ends (the bottom PEs' weight outputs and the right-most PEs' activation outputs) are
wires no one reads, enclosed in ``/* verilator lint_off UNUSEDSIGNAL */`` ... ``lint_on``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["lint"]


def lint(files: dict, top: str = "focus_top") -> dict:
    """Lint every module under ``top``.

    Returns:
        ``{"clean": bool, "warnings": [line, ...]}`` (Verilator's ``%Warning``/``%Error`` lines).

    Raises:
        RuntimeError: Verilator is not installed.
    """
    exe = shutil.which("verilator")
    if exe is None:
        raise RuntimeError("Verilator is not installed: apt-get install verilator")
    cmd = [exe, "--lint-only", "-Wall", "--top-module", top] + [str(Path(p)) for p in files.values()]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith(("%Warning", "%Error"))]
    return {"clean": proc.returncode == 0 and not lines, "warnings": lines}
