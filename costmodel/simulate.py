"""Latency, energy, area and power of a workload on an accelerator.

``evaluate(hw, workload, mode=...)`` is a pure ``jax.numpy`` function: it jits, vmaps over
batched ``Hardware`` / ``Workload`` leaves, and differentiates (``mode="relaxed"``).
``simulate`` is the convenient front end: it validates the inputs, runs a cached jitted
``evaluate`` in 64-bit floats and returns plain Python numbers.

Modes (one code path, ``costmodel.accelerators``):

- ``"paper"``: the published simulator bit for bit, defects included (spec
  ``../shared/spec/cost-model.md``). Visual-token prefill only.
- ``"corrected"``: the listed defects fixed, a DRAM-bandwidth roofline with compute/transfer
  overlap per GEMM, text tokens, the decode phase with its KV cache, one SRAM energy method
  (CACTI access counts), array power and area scaled with the array size, optional per-MAC
  core energy (``costmodel/CORRECTIONS.md`` lists each change and its effect).
- ``"relaxed"``: the corrected model with every ``floor``/``ceil``/``max`` replaced by a
  smooth stand-in of the given temperature (``costmodel.ops``); tends to ``"corrected"``
  as the temperature goes to 0.

Energy (mJ) = DRAM bytes x DRAM energy per byte + SRAM energy + core energy, where SRAM
energy is either peak power x time (memory compiler) or accesses x CACTI energy per byte +
leakage x time, and core energy is constant core power x time or, with
``core_energy="per_mac"``, the non-array power x time plus MACs x the array's energy per
MAC at full activity.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from costmodel.accelerators import decode_costs, prefill_costs
from costmodel.corrections import ALL, PAPER, Corrections
from costmodel.hardware import Hardware, area_power, array_scale, sram_figures
from costmodel.ops import EXACT, Ops
from costmodel.workload import Workload

__all__ = ["MODES", "CORE_ENERGY", "DEFAULT_TEMPERATURE", "Report", "evaluate", "simulate"]

MODES = ("paper", "corrected", "relaxed")
CORE_ENERGY = ("constant", "per_mac")
#: Temperature used by ``mode="relaxed"`` when none is given.
DEFAULT_TEMPERATURE = 0.05


class Report(NamedTuple):
    """Result of one simulation (arrays inside ``evaluate``, floats from ``simulate``).

    Attributes:
        total_cycles, compute_cycles, stall_cycles: accelerator clock cycles (stall =
            total - compute: scatter/gather stalls, and DRAM stalls in corrected mode).
        time_s: seconds.
        dram_bytes: DRAM bytes read plus written.
        energy_dram_mJ, energy_sram_mJ, energy_core_mJ, energy_total_mJ: energy (mJ).
        area_mm2: on-chip area (mm^2).
        onchip_power_mW: core plus buffer power (mW; buffer power is peak power for the
            memory compiler, leakage for CACTI).
        macs: multiply-accumulates executed by the array.
    """

    total_cycles: jax.Array
    compute_cycles: jax.Array
    stall_cycles: jax.Array
    time_s: jax.Array
    dram_bytes: jax.Array
    energy_dram_mJ: jax.Array
    energy_sram_mJ: jax.Array
    energy_core_mJ: jax.Array
    energy_total_mJ: jax.Array
    area_mm2: jax.Array
    onchip_power_mW: jax.Array
    macs: jax.Array

    def to_dict(self) -> dict:
        """The ``focus-jax simulate --json`` layout (floats)."""
        return {
            "total_cycles": float(self.total_cycles),
            "compute_cycles": float(self.compute_cycles),
            "stall_cycles": float(self.stall_cycles),
            "time_s": float(self.time_s),
            "dram_bytes": float(self.dram_bytes),
            "energy_mJ": {
                "dram": float(self.energy_dram_mJ),
                "sram": float(self.energy_sram_mJ),
                "core": float(self.energy_core_mJ),
                "total": float(self.energy_total_mJ),
            },
            "area_mm2": float(self.area_mm2),
            "onchip_power_mW": float(self.onchip_power_mW),
        }


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _select(cond, if_true, if_false):
    """``if_true if cond else if_false`` for a Python or traced boolean (dict-aware)."""
    if isinstance(cond, bool):
        return if_true if cond else if_false
    if isinstance(if_true, dict):
        return {k: jnp.where(cond, if_true[k], if_false[k]) for k in if_true}
    return jnp.where(cond, if_true, if_false)


def _check_mode(mode: str, temperature, core_energy: str) -> Ops:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if core_energy not in CORE_ENERGY:
        raise ValueError(f"unknown core energy model {core_energy!r}; choose one of {CORE_ENERGY}")
    if mode == "relaxed":
        return Ops(DEFAULT_TEMPERATURE if temperature is None else temperature)
    if temperature is not None:
        raise ValueError(f"a temperature only applies to mode='relaxed', not {mode!r}")
    if not jax.config.jax_enable_x64:
        raise ValueError(
            f"mode={mode!r} needs 64-bit floats (cycle counts exceed float32's exact range): "
            "call it inside `with jax.enable_x64(True):` or use costmodel.simulate"
        )
    if core_energy != "constant":
        if mode == "paper":
            raise ValueError("the paper's core energy is constant power x time; per-MAC energy needs mode='corrected'")
    return EXACT


def _check_inputs(hw: Hardware, workload: Workload, paper: bool) -> None:
    hw.validate()
    workload.validate()
    if paper and (workload.decode_tokens or (_is_concrete(workload.text_tokens) and workload.text_tokens)):
        raise ValueError("the paper models the visual-token prefill only; text and decode tokens need mode='corrected'")


def evaluate(
    hw: Hardware,
    workload: Workload,
    *,
    mode: str = "paper",
    temperature: float | None = None,
    core_energy: str = "constant",
    corrections: Corrections | None = None,
) -> Report:
    """Cost of ``workload`` on ``hw`` as ``jax.numpy`` scalars (pure; jit/vmap/grad friendly).

    Args:
        hw: the accelerator (``costmodel.hardware``).
        workload: model, token counts and sparsity inputs (``costmodel.workload``).
        mode: ``"paper"``, ``"corrected"`` or ``"relaxed"``.
        temperature: smoothing of ``"relaxed"`` (default ``DEFAULT_TEMPERATURE``).
        core_energy: ``"constant"`` or ``"per_mac"`` (corrected and relaxed modes).
        corrections: which corrections the corrected and relaxed modes apply (default:
            all, ``costmodel.corrections.ALL``); lets one isolate a single correction.

    Returns:
        ``Report`` of scalars (or arrays under vmap).

    Raises:
        ValueError: unknown mode or core-energy model, exact modes without 64-bit floats,
            text or decode tokens in paper mode, invalid hardware or workload values.
    """
    ops = _check_mode(mode, temperature, core_energy)
    paper = mode == "paper"
    if paper and corrections is not None:
        raise ValueError("corrections apply to mode='corrected' or 'relaxed', not 'paper'")
    fix = PAPER if paper else (ALL if corrections is None else corrections)
    _check_inputs(hw, workload, paper)

    costs = prefill_costs(hw, workload, ops, fix)
    if workload.decode_tokens:
        costs = costs + decode_costs(hw, workload, ops)
    totals = _sum_costs(hw, costs, ops, fix)
    total = totals.compute + totals.stall
    time_s = total / hw.clock_hz
    energy_sram, area, onchip_power = _sram(hw, workload, totals, time_s, ops, fix)
    energy_dram = totals.dram * hw.dram_energy_mJ_per_byte
    energy_core, area, onchip_power = _core(hw, totals.macs, time_s, area, onchip_power, fix, core_energy)
    return Report(
        total_cycles=total,
        compute_cycles=totals.compute,
        stall_cycles=totals.stall,
        time_s=time_s,
        dram_bytes=totals.dram,
        energy_dram_mJ=energy_dram,
        energy_sram_mJ=energy_sram,
        energy_core_mJ=energy_core,
        energy_total_mJ=energy_dram + energy_sram + energy_core,
        area_mm2=area,
        onchip_power_mW=onchip_power,
        macs=totals.macs,
    )


class _Totals(NamedTuple):
    """Sums over every GEMM: cycles, DRAM bytes, MACs, SRAM bytes per buffer."""

    compute: jax.Array
    stall: jax.Array
    dram: jax.Array
    macs: jax.Array
    sram_read: dict
    sram_write: dict


def _sum_costs(hw: Hardware, costs, ops: Ops, fix: Corrections) -> _Totals:
    """Add up the per-GEMM costs; with the roofline, each GEMM takes the longer of its
    compute (+ on-chip stalls) and its DRAM transfer (overlapped, double-buffered)."""
    bytes_per_cycle = hw.dram_bandwidth_Bps / hw.clock_hz
    compute = stall = dram = macs = 0.0
    sram_read: dict = {}
    sram_write: dict = {}
    for c in costs:
        busy = c.compute + c.stall
        if fix.roofline:
            busy = ops.maximum(busy, c.traffic.dram / bytes_per_cycle)
        compute = compute + jnp.sum(c.compute)
        stall = stall + jnp.sum(busy - c.compute)
        dram = dram + jnp.sum(c.traffic.dram)
        macs = macs + jnp.sum(c.macs)
        for k, v in c.traffic.sram_read.items():
            sram_read[k] = sram_read.get(k, 0.0) + jnp.sum(v)
        for k, v in c.traffic.sram_write.items():
            sram_write[k] = sram_write.get(k, 0.0) + jnp.sum(v)
    unknown = (set(sram_read) | set(sram_write)) - {b.name for b in hw.buffers}
    if unknown:
        raise ValueError(f"{hw.kind} has no buffer named {sorted(unknown)}")
    return _Totals(compute, stall, dram, macs, sram_read, sram_write)


def _sram(hw: Hardware, workload: Workload, totals: _Totals, time_s, ops: Ops, fix: Corrections):
    """``(SRAM energy mJ, area mm^2, on-chip power mW)``: accesses x energy per byte + static
    power x time. With ``fix.tile_rows`` the energy figures are those of the buffers at the
    size the largest tile fills (``min(m_tile, T)`` rows); area and on-chip power stay those
    of the buffers as built."""
    use_cacti = True if (hw.sram_energy == "auto" and fix.cacti_sram) else hw.uses_cacti()
    if not isinstance(use_cacti, bool) and _is_concrete(use_cacti):
        use_cacti = bool(use_cacti)
    filled = hw
    if fix.tile_rows:
        filled = hw.replace(m_tile=ops.minimum(hw.m_tile, workload.visual_tokens + workload.text_tokens))
    if isinstance(use_cacti, bool):
        method = "cacti" if use_cacti else "compiler"
        read_e, write_e, power, _ = sram_figures(filled, method)
        area, onchip_power = area_power(hw, method)
    else:  # traced m-tile or scatter vectors: the paper's rule picks per design
        both = zip(sram_figures(filled, "cacti"), sram_figures(filled, "compiler"))
        read_e, write_e, power, _ = (_select(use_cacti, a, b) for a, b in both)
        area, onchip_power = (
            _select(use_cacti, a, b) for a, b in zip(area_power(hw, "cacti"), area_power(hw, "compiler"))
        )
    reads, writes = totals.sram_read, totals.sram_write
    energy = sum(reads.get(b, 0.0) * read_e[b] + writes.get(b, 0.0) * write_e[b] for b in read_e)
    return energy + sum(power.values()) * time_s, area, onchip_power


def _core(hw: Hardware, macs, time_s, area, onchip_power, fix: Corrections, core_energy: str):
    """``(core energy mJ, area, on-chip power)``, the array scaled with its size (defect 4)."""
    core_power = hw.core_power_mW()
    array_power = hw.array_power_mW()
    if fix.array_scaling:
        extra = array_scale(hw) - 1
        core_power = core_power + array_power * extra
        onchip_power = onchip_power + array_power * extra
        area = area + hw.array_area_mm2() * extra
        array_power = array_power * array_scale(hw)
    if core_energy == "per_mac":
        # energy per MAC of the synthesised 1024-MAC array at full activity and 500 MHz
        mac_energy_mJ = hw.array_power_mW() / (1024 * 500e6)
        return (core_power - array_power) * time_s + macs * mac_energy_mJ, area, onchip_power
    return core_power * time_s, area, onchip_power


@functools.cache
def _jitted(mode: str, temperature, core_energy: str, corrections):
    return jax.jit(
        functools.partial(
            evaluate, mode=mode, temperature=temperature, core_energy=core_energy, corrections=corrections
        )
    )


def simulate(
    hw: Hardware,
    workload: Workload,
    *,
    mode: str = "paper",
    temperature: float | None = None,
    core_energy: str = "constant",
    corrections: Corrections | None = None,
) -> Report:
    """Evaluate ``workload`` on ``hw`` and return a ``Report`` of Python floats.

    Runs a jitted ``evaluate`` (compiled once per mode, hardware kind and workload
    structure) with 64-bit floats enabled for the call. Same arguments and errors as
    ``evaluate``.
    """
    _check_inputs(hw, workload, mode == "paper")
    with jax.enable_x64(True):
        hw, workload = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), (hw, workload))
        report = _jitted(mode, temperature, core_energy, corrections)(hw, workload)
        return Report(*(float(x) for x in report))
