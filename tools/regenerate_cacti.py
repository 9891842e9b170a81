"""Regenerate ``costmodel/data/cacti_sram.csv`` with a CACTI 7 binary (HewlettPackard/cacti 1ffd8df).

    make -C path/to/cacti && python tools/regenerate_cacti.py --binary path/to/cacti/cacti

Every row is one CACTI run with the reference's settings (``simulator/memory/cacti.py``):
``costmodel/data/sram_config.json`` updated with the buffer's size and block (bytes),
technology 0.028 um and the buffer's extra read ports, and ``output/input bus width =
8 * block``; columns as ``costmodel.cacti`` documents. Kept outside the ``costmodel``
package so that its table reader stays a leaf module (about 4 minutes for the full table).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from costmodel import cacti
from costmodel.hardware import adaptiv, cmc, focus

_TECHNOLOGY_UM = 0.028


def required_configs() -> list[tuple[int, int, int]]:
    """Every ``(size, block, extra_read_ports)`` the accelerators in ``costmodel`` look up."""
    configs = set()
    for size in cacti.TABLE_ARRAY_SIZES:
        for m in cacti.TABLE_M_TILES:
            for nsv in cacti.TABLE_SCATTER_VECTORS:
                hw = focus(m_tile=m, scatter_vectors=nsv, rows=size, cols=size)
                configs.update(b.cacti_key(m, nsv) for b in hw.buffers)
    for hw in (adaptiv(), cmc()):
        configs.update(b.cacti_key(hw.m_tile, hw.scatter_vectors) for b in hw.buffers)
    return sorted(configs)


def run_cacti(binary: Path, size_bytes: int, block_bytes: int, extra_read_ports: int) -> dict | None:
    """Run CACTI once with the reference's configuration; None when CACTI finds no solution."""
    config = json.loads(resources.files("costmodel.data").joinpath("sram_config.json").read_text())
    config.update(
        {
            "block size (bytes)": block_bytes,
            "size (bytes)": size_bytes,
            "technology (u)": _TECHNOLOGY_UM,
            "exclusive read port": extra_read_ports,
        }
    )
    config["output/input bus width"] = block_bytes * 8
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        for key, value in config.items():
            if value is not None:
                f.write(f"-{key} {value}\n")
    out = subprocess.run([str(binary), "-infile", f.name], cwd=binary.parent, capture_output=True, text=True).stdout
    Path(f.name).unlink()
    patterns = {
        "read_nJ": "Total dynamic read energy per access (nJ)",
        "write_nJ": "Total dynamic write energy per access (nJ)",
        "leakage_mW": "Total leakage power of a bank (mW)",
    }
    result = {}
    for line in out.splitlines():
        line = line.strip()
        for key, label in patterns.items():
            m = re.match(re.escape(label) + r"\s*:\s*([\d.]*)", line)
            if m:
                result[key] = m.group(1)
        m = re.match(re.escape("Cache height x width (mm)") + r"\s*:\s*([\d.]*)\s*x\s*([\d.]*)", line)
        if m:
            result["height_mm"], result["width_mm"] = m.groups()
    return result if len(result) == 5 else None


def _main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate costmodel/data/cacti_sram.csv with a CACTI 7 binary.")
    parser.add_argument("--binary", type=Path, required=True, help="compiled CACTI (HewlettPackard/cacti 1ffd8df)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "costmodel" / "data" / "cacti_sram.csv"
    )
    args = parser.parse_args()
    rows = []
    for size, block, ports in required_configs():
        res = run_cacti(args.binary.resolve(), size, block, ports)
        if res is None:
            print(f"CACTI found no solution for size={size} block={block} ports={ports}; skipped")
            continue
        rows.append({"size_bytes": size, "block_bytes": block, "extra_read_ports": ports, **res})
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cacti.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    _main()
