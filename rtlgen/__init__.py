"""Parameterised RTL of the Focus accelerator for a design file (veriloggen).

``build(design, out_dir, verify=..., synth=...)`` is the library entry point behind
``focus-jax rtl``: it derives the generator parameters (``RtlConfig.from_design``), writes
one Verilog file per module and ``manifest.json`` (``rtlgen.top.generate``), lints with
Verilator, and optionally proves the RTL in simulation (``rtlgen.checks``: cocotb +
Icarus against numpy, the integer JAX golden model ``focus_jax.quant`` and
``costmodel.gemm_cycles``) and synthesises it with Yosys (``rtlgen.synth``).

Modules: ``focus_pe`` / ``focus_systolic_array`` (weight-stationary, INT8 x INT8 -> INT32),
``focus_sic`` (similarity test, best candidate, group-pointer table), ``focus_sec``
(importance max, top-k), ``focus_scatter`` (scatter accumulators), ``focus_ctrl`` (the tile
controller: unique rows to the array, group members to the scatter lanes), ``focus_top``
(the streaming datapath of one GEMM tile).
"""

from __future__ import annotations

import json
from pathlib import Path

from rtlgen.config import RtlConfig
from rtlgen.top import FOCUS_UNITS, MODULES, generate

__all__ = ["FOCUS_UNITS", "MODULES", "PAPER_AREA_MM2", "RtlConfig", "build", "generate", "resource_table", "verify"]

#: Accelerator area of the paper (``accelerator_area_power_buffer.csv``): Focus vs the plain systolic array.
PAPER_AREA_MM2 = {"systolic array": 3.1191549172, "focus": 3.2054806629}


def verify(cfg: RtlConfig, files: dict, work_dir, seed: int = 0, sic_vectors: int = 1024) -> dict:
    """Run every unit's testbench on ``cfg`` (``rtlgen.checks``) with random stimulus.

    The systolic array gets three random GEMM shapes around the array size, the SIC unit
    at least ``sic_vectors`` random vectors (streams of up to ``sic_tokens`` tokens), the
    SEC unit a random attention map with ties, the scatter accumulators 32 random cycles,
    and, when ``vector_size == rows``, ``focus_top`` one random tile of up to 64 tokens
    (``check_top``; None otherwise).

    Returns:
        ``{"verified": bool, "systolic": ..., "sic": ..., "sec": ..., "scatter": ..., "top": ...,
        "fold_cycles_measured": [...], "fold_cycles_model": [...]}``.
    """
    import numpy as np

    from rtlgen import checks as v

    rng = np.random.default_rng(seed)
    work = Path(work_dir)
    r, c = cfg.rows, cfg.cols
    shapes = [(int(rng.integers(1, 2 * r + 1)), int(rng.integers(1, 2 * c + 2)), int(rng.integers(1, 2 * r + 2)))
              for _ in range(3)]
    systolic = v.check_systolic(files, cfg, shapes, work / "systolic", seed)
    tokens = min(cfg.sic_tokens - cfg.sic_tokens % 16, 256) if cfg.sic_tokens >= 16 else cfg.sic_tokens
    geom = v.sic_geometry(cfg, tokens)
    streams = -(-sic_vectors // tokens)
    sic = v.check_sic(files, cfg, v.random_sic_tokens(cfg, geom, streams, seed), geom, work / "sic")
    n = min(cfg.sec_tokens, 128)
    probs = np.round(rng.random((2, 3, n)) * 16) / 16  # coarse values: ties at the k-th importance
    sec = v.check_sec(files, cfg, probs, max(1, n // 4), work / "sec")
    scatter = v.check_scatter(files, cfg, 32, work / "scatter", seed)
    top = None
    if cfg.vector_size == cfg.rows:  # the tile datapath: one SIC vector per array row
        tile = v.sic_geometry(cfg, min(tokens, 64))
        x = v.random_sic_tokens(cfg, tile, 1, seed)[0]
        w = rng.integers(-127, 128, (cfg.rows, cfg.cols))
        top = v.check_top(files, cfg, x, w, tile, work / "top")
    ok = (systolic["exact"] and systolic["cycles_match"] and sic["exact"] and sic["latency_ok"] and sec["exact"]
          and sec["cycles"] == sec["cycles_model"] and scatter["exact"]
          and (top is None or (top["exact"] and top["issued_ok"] and top["writes_ok"]
                               and top["cycles"] == top["cycles_model"])))
    return {"verified": bool(ok), "systolic": systolic, "sic": sic, "sec": sec, "scatter": scatter, "top": top,
            "fold_cycles_measured": [case["fold_cycles_measured"] for case in systolic["cases"]],
            "fold_cycles_model": [case["fold_cycles_model"] for case in systolic["cases"]]}


def resource_table(resources: dict, macros: dict | None = None) -> dict:
    """Cells and flip-flops per module plus the Focus units' share of the whole, next to
    the paper's area overhead (+2.8 %: Focus 3.205 vs systolic array 3.119 mm^2).

    Args:
        resources: ``synthesize`` with the tables mapped to flip-flops.
        macros: optionally ``synthesize(..., tables_as_macros=True)``: adds
            ``tables_as_macros``, the same table with every memory (SIC group-pointer
            table, SEC importance buffer, controller group tables) left out as an SRAM
            macro / register file, its bits listed per module. The paper's area counts the
            Focus logic and reports its buffers separately, so this split is the closer
            comparison.
    """
    whole = resources["focus_top"]["cells"]
    focus = sum(resources[u]["cells"] for u in FOCUS_UNITS)
    paper = PAPER_AREA_MM2["focus"] / PAPER_AREA_MM2["systolic array"] - 1.0
    table = {"modules": {m: {"cells": resources[m]["cells"], "flip_flops": resources[m]["flip_flops"]}
                         for m in MODULES},
             "focus_units_cells": focus, "focus_share_of_whole": focus / whole,
             "focus_overhead_vs_array": focus / resources["focus_systolic_array"]["cells"],
             "paper_overhead_vs_array": paper}
    if macros is not None:
        logic = sum(macros[u]["cells"] for u in FOCUS_UNITS)
        table["tables_as_macros"] = {
            "modules": {m: {k: macros[m][k] for k in ("cells", "flip_flops", "table_bits")} for m in MODULES},
            "tables": {m: macros[m]["tables"] for m in MODULES if macros[m]["tables"]},
            "focus_units_cells": logic, "focus_share_of_whole": logic / macros["focus_top"]["cells"],
            "focus_overhead_vs_array": logic / macros["focus_systolic_array"]["cells"],
        }
    return table


def build(design, out_dir, *, verify_rtl: bool = False, synth: bool = False, lint_rtl: bool = True,
          config_overrides: dict | None = None, seed: int = 0) -> dict:
    """Generate (and optionally lint, verify, synthesise) the RTL of ``design``.

    Args:
        design: a ``focus_jax.design.Design``.
        out_dir: where the Verilog, ``manifest.json`` and the work directories go.
        verify_rtl: run the testbenches on this exact configuration (``verify``).
        synth: synthesise with Yosys and add the resource table to the manifest.
        lint_rtl: run ``verilator --lint-only -Wall`` when Verilator is installed.
        config_overrides: ``RtlConfig.from_design`` keyword overrides (rows, cols,
            sic_tokens, sec_tokens), for small test configurations.
        seed: random stimulus seed.

    Returns:
        The report: ``config``, ``files``, ``manifest``, ``lint``, ``verified`` (None when
        not run) and the checks, ``resources`` (None when not synthesised).

    Raises:
        InputError: the design cannot be built (``RtlConfig.from_design``).
        RuntimeError: a tool is missing or a simulation / synthesis failed to run.
    """
    import shutil

    from rtlgen.lint import lint
    from rtlgen.synth import synthesize

    cfg = RtlConfig.from_design(design, **(config_overrides or {}))
    out = Path(out_dir)
    files = generate(cfg, out)
    report = {"config": cfg.to_dict(), "out_dir": str(out), "files": {k: str(p) for k, p in files.items()},
              "manifest": str(files.manifest_path), "lint": None, "verified": None, "resources": None}
    if lint_rtl and shutil.which("verilator"):
        report["lint"] = lint(files)
    if verify_rtl:
        checks = verify(cfg, files, out / "verify", seed)
        report.update(checks)
    if synth:
        resources = synthesize(files, out / "synth")
        macros = synthesize(files, out / "synth_macros", tables_as_macros=True)
        report["resources"] = resource_table(resources, macros)
    manifest = dict(files.manifest, lint=report["lint"], verified=report["verified"], resources=report["resources"])
    if verify_rtl:
        manifest["fold_cycles_measured"] = report["fold_cycles_measured"]
        manifest["fold_cycles_model"] = report["fold_cycles_model"]
    files.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return report
