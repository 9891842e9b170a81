"""CACTI 7 SRAM figures: the shipped table (a leaf module: it imports nothing of costmodel).

The paper's simulator calls CACTI (HewlettPackard/cacti, commit 1ffd8df, the Focus
repository's submodule) for every buffer whenever it cannot use its memory-compiler
figures: in the design-space runs and in the SEC-only runs (spec "Energy"). CACTI cannot
run inside a jitted function, so ``costmodel`` ships its answers as a table,
``costmodel/data/cacti_sram.csv``, generated with ``python tools/regenerate_cacti.py --binary
PATH/TO/cacti`` (outside the package). Every row is one CACTI run with the reference's settings:
``sram_config.json`` updated with the buffer's size and block (bytes), technology 0.028 um
and the buffer's extra read ports, and ``output/input bus width = 8 * block``.

Columns: ``size_bytes``, ``block_bytes``, ``extra_read_ports`` (the key), then CACTI's
printed ``read_nJ`` and ``write_nJ`` (dynamic energy per access, nJ), ``leakage_mW``
(leakage power of a bank, mW) and ``height_mm``, ``width_mm`` (area = height x width,
mm^2, as the reference computes it). Values are CACTI's printed strings, so arithmetic on
them matches the reference bit for bit.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources
from typing import NamedTuple

__all__ = [
    "CactiEntry",
    "cacti_table",
    "lookup",
    "FIELDS",
    "TABLE_M_TILES",
    "TABLE_SCATTER_VECTORS",
    "TABLE_ARRAY_SIZES",
]

#: m-tile sizes (tokens) at which the Focus buffers are tabulated (11648 is the DSE's "no tiling").
TABLE_M_TILES = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 11648, 16384)
#: scatter-vector counts at which the concentrate_out / output buffers are tabulated.
TABLE_SCATTER_VECTORS = (1, 2, 3, 4, 5, 6)
#: array sizes (rows = cols) whose buffer widths are tabulated; any rows x cols mix of them works.
TABLE_ARRAY_SIZES = (8, 16, 32, 64, 128)

#: Columns of ``cacti_sram.csv``.
FIELDS = ("size_bytes", "block_bytes", "extra_read_ports", "read_nJ", "write_nJ", "leakage_mW", "height_mm", "width_mm")


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
            ``tools/regenerate_cacti.py`` after adding it to its ``required_configs``).
    """
    key = (int(size_bytes), int(block_bytes), int(extra_read_ports))
    try:
        return cacti_table()[key]
    except KeyError:
        raise KeyError(
            f"no CACTI figures for a {key[0]} B SRAM with {key[1]} B blocks and {key[2]} extra read ports; "
            "add it to required_configs in tools/regenerate_cacti.py and regenerate the table"
        ) from None
