"""Accelerator descriptions: array, tiles, buffers, components, DRAM (frozen dataclasses).

``Hardware`` is a JAX pytree: its numeric fields (array size, clock, tiles, scatter
vectors, gather block, DRAM figures) are leaves, so a batch of designs is one ``Hardware``
whose leaves are arrays (``jax.vmap``) and ``jax.grad`` of a cost returns a ``Hardware`` of
derivatives. Structural fields (kind, dataflow, buffer and component lists, SRAM energy
method) are static.

The five accelerators of the paper (spec "Common settings", "Focus buffers", "Adaptiv and
CMC baselines"; reference ``simulator/arch/accelerator.py``) are built by ``dense``,
``focus``, ``sec_only``, ``adaptiv`` and ``cmc``. Component area (mm^2) and power (mW)
come from the synthesis tables shipped in ``costmodel/data`` (``focus_rtl.csv``,
``adaptiv_rtl.csv``, ``cmc_rtl.csv``); buffer figures from the memory compiler
(``buffer_model_spec.csv``) or CACTI (``cacti_sram.csv``), see ``sram_figures``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
from importlib import resources
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from costmodel import cacti
from costmodel.fold import DATAFLOWS

__all__ = [
    "KINDS",
    "SRAM_METHODS",
    "Component",
    "Buffer",
    "Hardware",
    "dense",
    "focus",
    "sec_only",
    "adaptiv",
    "cmc",
    "accelerator",
    "SramFigures",
    "sram_figures",
]

#: Accelerator kinds.
KINDS = ("dense", "focus", "sec-only", "adaptiv", "cmc")
#: How SRAM energy is priced: "compiler" (peak power x time, the paper's main runs),
#: "cacti" (accesses x CACTI energy + leakage x time, the paper's DSE and SEC-only runs),
#: "auto" (paper mode: the paper's rule, CACTI for a Focus design with m-tile != 1024 or
#: scatter vectors != 2 and the compiler otherwise; corrected mode: CACTI).
SRAM_METHODS = ("auto", "compiler", "cacti")

_FP16_BYTES = 2
_SFU = (
    ("FP16 Exp (SFU)", 32 * 3 * 2),
    ("FP16 Sqrt (SFU)", 1 * 3 * 2),
    ("FP16 Reciprocal (SFU)", 1 * 3 * 2),
    ("FP16 Mul (SFU)", 32 * 3 * 2),
    ("FP16 Add (SFU)", 32 * 3 * 2),
)


@dataclasses.dataclass(frozen=True)
class Component:
    """A logic block: ``count`` instances of ``area_mm2`` (mm^2) and ``power_mW`` (mW) each.

    ``per_scatter_vector``: the count is multiplied by the number of scatter vectors (the
    SIC accumulators).
    """

    name: str
    count: int
    area_mm2: float
    power_mW: float
    per_scatter_vector: bool = False


@dataclasses.dataclass(frozen=True)
class Buffer:
    """An on-chip SRAM buffer.

    Size in bytes is ``bytes_per_m_tile * m_tile + fixed_bytes``; the access block is
    ``block_bytes`` (times the scatter-vector count when ``block_per_scatter_vector``); the
    SRAM has ``scatter_vectors - 1`` extra read ports when ``ports_per_scatter_vector``.
    ``count`` identical instances. ``macros``: the memory-compiler realisation, a tuple of
    ``(macro name in buffer_model_spec.csv, macros per instance, instances)``.
    """

    name: str
    bytes_per_m_tile: int
    fixed_bytes: int
    block_bytes: int
    macros: tuple
    count: int = 1
    block_per_scatter_vector: bool = False
    ports_per_scatter_vector: bool = False

    def size_bytes(self, m_tile: int) -> int:
        return int(self.bytes_per_m_tile * m_tile + self.fixed_bytes)

    def cacti_key(self, m_tile: int, scatter_vectors: int) -> tuple[int, int, int]:
        """``(size bytes, block bytes, extra read ports)`` of one instance, as CACTI is asked."""
        block = self.block_bytes * (scatter_vectors if self.block_per_scatter_vector else 1)
        ports = scatter_vectors - 1 if self.ports_per_scatter_vector else 0
        return self.size_bytes(m_tile), int(block), int(ports)


_LEAVES = (
    "rows",
    "cols",
    "clock_hz",
    "m_tile",
    "n_tile",
    "k_tile",
    "scatter_vectors",
    "gather_block",
    "dram_energy_mJ_per_byte",
    "dram_bandwidth_Bps",
)


@dataclasses.dataclass(frozen=True)
class Hardware:
    """One accelerator design.

    Attributes (leaves; numbers or arrays):
        rows, cols: systolic array height (the K tile) and width (the N tile), in PEs.
            For Adaptiv: MAC-line width (64) and number of MAC lines (16).
        clock_hz: clock frequency (Hz).
        m_tile: GEMM m-tile in tokens (Focus partitions; the buffers scale with it).
        n_tile, k_tile: buffer n- and k-tiles in elements (DRAM re-reads are counted per tile).
        scatter_vectors: SIC scatter vectors (accumulator groups of 32) per cycle.
        gather_block: SIC gather cycles per token and n-subtile (the paper's ``bs``).
        dram_energy_mJ_per_byte: DRAM access energy (mJ per byte; 99.98e-9 = 12.5 pJ/bit).
        dram_bandwidth_Bps: DRAM bandwidth (bytes per second); only the corrected mode
            enforces it.

    Attributes (static):
        kind: one of ``KINDS``.
        dataflow: ``"ws"``, ``"os"`` or ``"is"``.
        buffers: ``Buffer`` tuple; components: ``Component`` tuple.
        sram_energy: one of ``SRAM_METHODS``.
        frames_per_partition: CMC codec partition in frames.

    Raises:
        ValueError: unknown kind, dataflow or SRAM method (at construction); numeric fields
            are checked by ``validate`` (``simulate`` calls it on concrete values).
    """

    kind: str
    rows: float = 32.0
    cols: float = 32.0
    clock_hz: float = 500e6
    m_tile: float = 1024.0
    n_tile: float = 96.0
    k_tile: float = 32.0
    scatter_vectors: float = 2.0
    gather_block: float = 8.0
    dram_energy_mJ_per_byte: float = 99.98e-9
    dram_bandwidth_Bps: float = 64.0 * 1024**3
    dataflow: str = "ws"
    buffers: tuple = ()
    components: tuple = ()
    sram_energy: str = "auto"
    frames_per_partition: int = 8

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown accelerator kind {self.kind!r}; choose one of {KINDS}")
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"unknown dataflow {self.dataflow!r}; choose one of {DATAFLOWS}")
        if self.sram_energy not in SRAM_METHODS:
            raise ValueError(f"unknown SRAM energy method {self.sram_energy!r}; choose one of {SRAM_METHODS}")

    def replace(self, **changes) -> "Hardware":
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Check the concrete numeric fields (tracers are skipped).

        Raises:
            ValueError: naming the field, for a non-positive or non-finite value, or a
                scatter-vector count / gather block below 1.
        """
        for name in _LEAVES:
            value = getattr(self, name)
            if isinstance(value, jax.core.Tracer):
                continue
            arr = np.asarray(value, dtype=float)
            if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise ValueError(f"Hardware.{name} must be positive and finite, got {value!r}")
        for name in ("scatter_vectors", "gather_block", "rows", "cols"):
            value = getattr(self, name)
            if not isinstance(value, jax.core.Tracer) and np.any(np.asarray(value, dtype=float) < 1):
                raise ValueError(f"Hardware.{name} must be >= 1, got {value!r}")

    def core_power_mW(self):
        """Sum of component powers times counts (mW) -- the paper's constant core power."""
        nsv = self.scatter_vectors
        return sum(c.power_mW * c.count * (nsv if c.per_scatter_vector else 1) for c in self.components)

    def array_power_mW(self) -> float:
        """Power of the MAC array component alone (mW), as synthesised (32x32 or 64x16)."""
        return sum(c.power_mW * c.count for c in self.components if c.name in ("Systolic Array", "MAC Array"))

    def array_area_mm2(self) -> float:
        """Area of the MAC array component alone (mm^2)."""
        return sum(c.area_mm2 * c.count for c in self.components if c.name in ("Systolic Array", "MAC Array"))

    def uses_cacti(self, m_tile=None, scatter_vectors=None):
        """Whether SRAM is priced with CACTI (a bool, or a bool array for traced fields)."""
        if self.sram_energy != "auto":
            return self.sram_energy == "cacti"
        if self.kind not in ("focus", "sec-only"):
            return False
        m = self.m_tile if m_tile is None else m_tile
        nsv = self.scatter_vectors if scatter_vectors is None else scatter_vectors
        return jnp.logical_or(jnp.asarray(m) != 1024, jnp.asarray(nsv) != 2)


jax.tree_util.register_dataclass(
    Hardware,
    data_fields=list(_LEAVES),
    meta_fields=["kind", "dataflow", "buffers", "components", "sram_energy", "frames_per_partition"],
)


def _build(fields: dict) -> Hardware:
    """``Hardware(**fields)`` with integer numbers stored as floats (so ``jax.grad`` accepts them), validated."""
    fields = {
        k: float(v) if k in _LEAVES and isinstance(v, int) and not isinstance(v, bool) else v for k, v in fields.items()
    }
    hw = Hardware(**fields)
    hw.validate()
    return hw


@functools.cache
def _rtl_table(filename: str) -> dict[str, tuple[float, float]]:
    text = resources.files("costmodel.data").joinpath(filename).read_text()
    return {row["Module"]: (float(row["Area"]), float(row["Power"])) for row in csv.DictReader(text.splitlines())}


def _components(filename: str, counts) -> tuple[Component, ...]:
    table = _rtl_table(filename)
    out = []
    for name, count, *flag in counts:
        area, power = table[name]
        out.append(Component(name, count, area, power, per_scatter_vector=bool(flag and flag[0])))
    return tuple(out)


def _focus_buffers(rows: int, cols: int, n_tile: int, k_tile: int) -> tuple[Buffer, ...]:
    b = _FP16_BYTES
    return (
        Buffer("input", k_tile * b * 2, 0, rows * b, (("1024x128", 4, 2),)),
        Buffer("wgt", 0, k_tile * n_tile * b * 2, b, (("2048x16", 1, 3), ("1024x16", 1, 2))),
        Buffer("concentrate_out", cols * b * 2, 0, cols * b, (("1024x128", 4, 2),), ports_per_scatter_vector=True),
        Buffer(
            "output",
            n_tile * b * 2,
            0,
            cols * b,
            (("1024x128", 8, 2), ("512x128", 8, 2)),
            block_per_scatter_vector=True,
        ),
        Buffer("layouter", 0, 32 * 32 * b, 32 * b, (("32x256", 2, 8),), count=8),
        Buffer("similarity_map", b, 0, b, (("1024x16", 1, 1),)),
        Buffer("similarity_table", 32 * b, 0, 32 * b, (("1024x128", 4, 1),)),
    )


_FOCUS_COMPONENTS = (
    ("Systolic Array", 1),
    ("Cosine Similarity (SIC)", 1),
    ("L2 Norm (SIC)", 1),
    ("Max Unit (SIC)", 1),
    ("Average Update (SIC)", 1),
    ("Accumulator (SIC)", 1, True),
    ("Max Unit (SEC)", 32),
    ("Importance Vector Buffer (SEC)", 1),
) + _SFU


def focus(
    m_tile: int = 1024, scatter_vectors: int = 2, gather_block: int = 8, *, kind: str = "focus", **overrides
) -> Hardware:
    """The Focus accelerator: 32x32 weight-stationary array, SEC and SIC units, 734 KB of buffers.

    Args:
        m_tile: GEMM m-tile in tokens (buffers scale with it).
        scatter_vectors: SIC scatter vectors (accumulator groups).
        gather_block: SIC gather block ``bs``.
        kind: ``"focus"`` or ``"sec-only"``.
        **overrides: any other ``Hardware`` field.
    """
    fields = dict(kind=kind, m_tile=m_tile, scatter_vectors=scatter_vectors, gather_block=gather_block) | overrides
    fields.setdefault("buffers", _focus_buffers(int(fields.get("rows", 32)), int(fields.get("cols", 32)), 96, 32))
    fields.setdefault("components", _components("focus_rtl.csv", _FOCUS_COMPONENTS))
    return _build(fields)


def sec_only(**overrides) -> Hardware:
    """Focus with SIC off (the paper's ablation): m-tile 512, SRAM priced with CACTI."""
    return focus(**({"m_tile": 512} | overrides), kind="sec-only")


def dense(**overrides) -> Hardware:
    """The dense systolic-array baseline ("SA"): Focus' array and buffers without SEC/SIC units."""
    counts = tuple(c for c in _FOCUS_COMPONENTS if not c[0].endswith(("(SIC)", "(SEC)")))
    fields = dict(kind="dense") | overrides
    fields.setdefault("buffers", _focus_buffers(int(fields.get("rows", 32)), int(fields.get("cols", 32)), 96, 32))
    fields.setdefault("components", _components("focus_rtl.csv", counts))
    return _build(fields)


def adaptiv(**overrides) -> Hardware:
    """Adaptiv (MICRO 2024): 64x16 output-stationary broadcast MAC array, 3 x 256 KB buffers.

    ``rows`` is the MAC-line width (64, the M tile of the array), ``cols`` the number of
    MAC lines (16, the N tile); buffer tiles are 256 in M, N and K.
    """
    size = 256 * 256 * _FP16_BYTES * 2
    buffers = tuple(Buffer(name, 0, size, 64, (("512x128", 16, 2),)) for name in ("input", "wgt", "output"))
    fields = dict(kind="adaptiv", rows=64, cols=16, m_tile=256, n_tile=256, k_tile=256, dataflow="os") | overrides
    fields.setdefault("buffers", buffers)
    fields.setdefault("components", _components("adaptiv_rtl.csv", (("MAC Array", 1), ("AdapTME", 1)) + _SFU))
    return _build(fields)


def cmc(**overrides) -> Hardware:
    """CMC (ASPLOS 2024): 32x32 systolic array with a video codec front end, 907 KB of buffers."""
    b = _FP16_BYTES
    buffers = (
        Buffer("input", 0, 96 * 1024 * b, 32 * b, (("1024x128", 6, 2),)),
        Buffer("wgt", 0, 96 * 1024 * b, 32 * b, (("1024x128", 6, 2),)),
        Buffer("output", 0, 12 * 1024 * b, 16 * b, (("512x16", 25, 1),)),
        Buffer("qs_buffer", 0, 75 * 1024 * b, 32 * b, (("1024x128", 10, 1),)),
        Buffer("kv_buffer", 0, 49 * 512 * b, 32 * b, (("512x16", 50, 1),)),
        Buffer("frame_buffer", 0, 150 * 1024 * b, 32 * b, (("1024x128", 20, 1),)),
    )
    counts = (("Systolic Array", 1), ("Codec PE", 16), ("Codec Adder Tree", 4)) + _SFU
    fields = dict(kind="cmc", m_tile=768, n_tile=64, k_tile=64) | overrides
    fields.setdefault("buffers", buffers)
    fields.setdefault("components", _components("cmc_rtl.csv", counts))
    return _build(fields)


def accelerator(kind: str, **overrides) -> Hardware:
    """The paper's design of ``kind`` (one of ``KINDS``), with ``overrides`` applied.

    Raises:
        ValueError: unknown kind.
    """
    builders = {"dense": dense, "focus": focus, "sec-only": sec_only, "adaptiv": adaptiv, "cmc": cmc}
    if kind not in builders:
        raise ValueError(f"unknown accelerator {kind!r}; choose one of {KINDS}")
    return builders[kind](**overrides)


# ----------------------------------------------------------------------------------------
# SRAM figures


@functools.cache
def _macro_spec() -> dict[str, dict[str, float]]:
    text = resources.files("costmodel.data").joinpath("buffer_model_spec.csv").read_text()
    return {
        row["Model"]: {k: float(v) for k, v in row.items() if k != "Model"} for row in csv.DictReader(text.splitlines())
    }


def compiler_figures(buffer: Buffer) -> tuple[float, float]:
    """Memory-compiler ``(area mm^2, peak power mW)`` of ``buffer`` (reference ``memory/buffer.py``).

    Peak power per macro is ``I_leak V + (I_read + I_write)/2 f V`` (uA, uA/MHz, V, MHz ->
    mW) at the paper's f = 500 MHz.
    """
    clock_hz = 500e6
    spec = _macro_spec()
    area = 0.0
    power = 0.0
    for macro, number, count in buffer.macros:
        s = spec[macro]
        leak = s["Leakage(uA)"] * s["Voltage(V)"] / 1000
        dynamic = (s["Readc(uA/MHz)"] + s["Writec(uA/MHz)"]) / 2 * (clock_hz / 1e6) * s["Voltage(V)"] / 1000
        area += s["Area(mm2)"] * number * count
        power += (leak + dynamic) * number * count
    return area, power


class SramFigures(NamedTuple):
    """Per-buffer SRAM figures, each a ``{buffer name: number or array}`` dict.

    ``read_mJ_per_byte``, ``write_mJ_per_byte``: dynamic energy per byte accessed (mJ/B);
    ``power_mW``: static power counted for the whole run (leakage for CACTI, peak power for
    the memory compiler) (mW); ``area_mm2``: area of all instances (mm^2).
    """

    read_mJ_per_byte: dict
    write_mJ_per_byte: dict
    power_mW: dict
    area_mm2: dict


@functools.cache
def _cacti_grid(buffer: Buffer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CACTI figures of ``buffer`` on the (m-tile, scatter-vector) grid: ``(log m, nsv, values)``.

    ``values[i, j] = (read mJ/B, write mJ/B, leakage mW, area mm^2)`` of all instances. Axes
    the buffer does not depend on are collapsed to one point; m-tiles at which CACTI found
    no organisation for some scatter-vector count (very small SRAMs with very wide blocks)
    are left out, so lookups there clamp to the nearest tabulated m-tile.

    Raises:
        KeyError: the table has no usable m-tile for this buffer.
    """
    ms = cacti.TABLE_M_TILES if buffer.bytes_per_m_tile else (1024,)
    depends_on_nsv = buffer.block_per_scatter_vector or buffer.ports_per_scatter_vector
    nsvs = cacti.TABLE_SCATTER_VECTORS if depends_on_nsv else (2,)
    values = np.full((len(ms), len(nsvs), 4), np.nan)
    for i, m in enumerate(ms):
        for j, nsv in enumerate(nsvs):
            key = buffer.cacti_key(m, nsv)
            entry = cacti.cacti_table().get(key)
            if entry is not None:
                block = key[1]
                values[i, j] = (
                    entry.read_nJ / block * 1e-6,
                    entry.write_nJ / block * 1e-6,
                    entry.leakage_mW * buffer.count,
                    entry.area_mm2 * buffer.count,
                )
    complete = ~np.isnan(values).any(axis=(1, 2))
    if not complete.any():
        raise KeyError(
            f"the CACTI table has no figures for buffer {buffer.name!r} ({buffer.cacti_key(1024, 2)[1]} B blocks); "
            "add its configuration to required_configs in tools/regenerate_cacti.py and regenerate the table"
        )
    return np.log(np.asarray(ms, float)[complete]), np.asarray(nsvs, float), values[complete]


def _interp_axis(grid: np.ndarray, x, values):
    """Piecewise-linear interpolation of ``values`` (axis 0 over ``grid``), clamped at the ends.

    Exact (bitwise) at the grid points; numpy float64 for concrete ``x``, jax otherwise.
    """
    if len(grid) == 1:
        return values[0]
    xp = jnp if isinstance(x, jax.core.Tracer) else np
    if xp is jnp:  # in jax's default float (float32 unless x64 is on)
        grid, values = (jnp.asarray(a, dtype=jnp.result_type(float)) for a in (grid, values))
    x = xp.clip(x, grid[0], grid[-1])
    i = xp.clip(xp.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    t = (x - grid[i]) / (grid[i + 1] - grid[i])
    t = xp.reshape(t, xp.shape(t) + (1,) * (values.ndim - 1))  # broadcast over the figures
    return (1 - t) * values[i] + t * values[i + 1]


def cacti_figures(buffer: Buffer, m_tile, scatter_vectors):
    """CACTI ``(read mJ/B, write mJ/B, leakage mW, area mm^2)`` of ``buffer`` (all instances).

    ``m_tile`` (tokens) and ``scatter_vectors`` are scalars (use ``jax.vmap`` for batches).

    Looked up in the shipped CACTI table; between tabulated m-tiles (powers of two and
    11648) and scatter-vector counts (1..6) the figures are interpolated linearly in
    ``log m`` and in the count, and clamped outside. Differentiable in both arguments.
    """
    log_ms, nsvs, values = _cacti_grid(buffer)
    log = jnp.log if isinstance(m_tile, jax.core.Tracer) else np.log
    by_m = _interp_axis(log_ms, log(m_tile), values)
    return _interp_axis(nsvs, scatter_vectors, by_m)


def sram_figures(hw: Hardware, method: str) -> SramFigures:
    """SRAM energy, power and area of ``hw``'s buffers under ``method`` ("compiler" or "cacti").

    Compiler: no per-access energy, peak power (mW) counted for the whole run, compiler
    area. CACTI: per-byte read/write energy (block energy / block bytes), leakage (mW) and
    area from ``cacti_figures``.
    """
    read, write, power, area = {}, {}, {}, {}
    for b in hw.buffers:
        if method == "compiler":
            a, p = compiler_figures(b)
            read[b.name] = write[b.name] = 0.0
            power[b.name], area[b.name] = p, a
        else:
            f = cacti_figures(b, hw.m_tile, hw.scatter_vectors)
            read[b.name], write[b.name], power[b.name], area[b.name] = f[0], f[1], f[2], f[3]
    return SramFigures(read, write, power, area)


def area_power(hw: Hardware, method: str) -> tuple:
    """``(area mm^2, on-chip power mW)`` of ``hw`` with its buffers priced by ``method``.

    Summed in the reference's order (buffers, then components; core power, then buffer
    power), so the paper's table (``accelerator_area_power_buffer.csv``) is reproduced bit
    for bit. Buffer power is peak power (compiler) or leakage (CACTI).
    """
    figures = sram_figures(hw, method)
    area = 0.0
    for b in hw.buffers:
        area = area + figures.area_mm2[b.name]
    nsv = hw.scatter_vectors
    for c in hw.components:
        area = area + c.area_mm2 * c.count * (nsv if c.per_scatter_vector else 1)
    buffer_power = 0.0
    for b in hw.buffers:
        buffer_power = buffer_power + figures.power_mW[b.name]
    return area, hw.core_power_mW() + buffer_power


def buffer_capacity_bytes(hw: Hardware) -> int:
    """Total buffer capacity in bytes (all instances) at ``hw.m_tile`` (a concrete number)."""
    return sum(b.size_bytes(hw.m_tile) * b.count for b in hw.buffers)


def array_scale(hw: Hardware):
    """``rows * cols`` relative to the synthesised array (32x32; Adaptiv 64x16: also 1024 MACs)."""
    return hw.rows * hw.cols / 1024.0

