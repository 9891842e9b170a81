"""CACTI 7 SRAM figures: the shipped table and the script that regenerates it.

The paper's simulator calls CACTI (HewlettPackard/cacti, commit 1ffd8df, the Focus
repository's submodule) for every buffer whenever it cannot use its memory-compiler
figures: in the design-space runs and in the SEC-only runs (spec "Energy"). CACTI cannot
run inside a jitted function, so ``costmodel`` ships its answers as a table,
``costmodel/data/cacti_sram.csv``, generated with ``python -m costmodel.cacti --binary
PATH/TO/cacti`` (below). Every row is one CACTI run with the reference's settings:
``sram_config.json`` updated with the buffer's size and block (bytes), technology 0.028 um
and the buffer's extra read ports, and ``output/input bus width = 8 * block``.

Columns: ``size_bytes``, ``block_bytes``, ``extra_read_ports`` (the key), then CACTI's
printed ``read_nJ`` and ``write_nJ`` (dynamic energy per access, nJ), ``leakage_mW``
(leakage power of a bank, mW) and ``height_mm``, ``width_mm`` (area = height x width,
mm^2, as the reference computes it). Values are CACTI's printed strings, so arithmetic on
them matches the reference bit for bit.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import re
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import NamedTuple

__all__ = ["CactiEntry", "cacti_table", "lookup", "run_cacti", "TABLE_M_TILES", "TABLE_SCATTER_VECTORS", "TABLE_ARRAY_SIZES"]

#: m-tile sizes (tokens) at which the Focus buffers are tabulated (11648 is the DSE's "no tiling").
TABLE_M_TILES = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 11648, 16384)
#: scatter-vector counts at which the concentrate_out / output buffers are tabulated.
TABLE_SCATTER_VECTORS = (1, 2, 3, 4, 5, 6)
#: array sizes (rows = cols) whose buffer widths are tabulated; any rows x cols mix of them works.
TABLE_ARRAY_SIZES = (8, 16, 32, 64, 128)

_TECHNOLOGY_UM = 0.028
_FIELDS = ("size_bytes", "block_bytes", "extra_read_ports", "read_nJ", "write_nJ", "leakage_mW", "height_mm", "width_mm")


class CactiEntry(NamedTuple):
    """One CACTI result for one SRAM macro: energy per access (nJ), leakage (mW), area (mm^2)."""

    read_nJ: float
    write_nJ: float
    leakage_mW: float
    area_mm2: float


@functools.cache
def cacti_table() -> dict[tuple[int, int, int], CactiEntry]:
    """The shipped table: ``{(size_bytes, block_bytes, extra_read_ports): CactiEntry}``."""
    text = resources.files("costmodel.data").joinpath("cacti_sram.csv").read_text()
    table = {}
    for row in csv.DictReader(text.splitlines()):
        key = (int(row["size_bytes"]), int(row["block_bytes"]), int(row["extra_read_ports"]))
        area = float(row["height_mm"]) * float(row["width_mm"])
        table[key] = CactiEntry(float(row["read_nJ"]), float(row["write_nJ"]), float(row["leakage_mW"]), area)
    return table


def lookup(size_bytes: int, block_bytes: int, extra_read_ports: int = 0) -> CactiEntry:
    """CACTI figures of one SRAM macro.

    Raises:
        KeyError: the configuration is not in the shipped table (regenerate it with
            ``python -m costmodel.cacti`` after adding it to ``required_configs``).
    """
    key = (int(size_bytes), int(block_bytes), int(extra_read_ports))
    try:
        return cacti_table()[key]
    except KeyError:
        raise KeyError(
            f"no CACTI figures for a {key[0]} B SRAM with {key[1]} B blocks and {key[2]} extra read ports; "
            "add it to costmodel.cacti.required_configs and regenerate the table"
        ) from None


def required_configs() -> list[tuple[int, int, int]]:
    """Every ``(size, block, extra_read_ports)`` the accelerators in ``costmodel`` look up."""
    from costmodel.hardware import adaptiv, cmc, focus

    configs = set()
    for size in TABLE_ARRAY_SIZES:
        for m in TABLE_M_TILES:
            for nsv in TABLE_SCATTER_VECTORS:
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
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "cacti_sram.csv")
    args = parser.parse_args()
    rows = []
    for size, block, ports in required_configs():
        res = run_cacti(args.binary.resolve(), size, block, ports)
        if res is None:
            print(f"CACTI found no solution for size={size} block={block} ports={ports}; skipped")
            continue
        rows.append({"size_bytes": size, "block_bytes": block, "extra_read_ports": ports, **res})
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    _main()
