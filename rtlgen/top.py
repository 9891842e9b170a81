"""Top level and emission: ``generate(cfg, out_dir)`` writes one Verilog file per module and
``manifest.json`` (parameters, ports, handshakes, latencies).

``focus_top`` holds the systolic array, the SIC unit, the SEC unit and the scatter
accumulators; the array's output rows feed the scatter accumulators' partial-sum input
(the unique vectors' partial sums scattered to their group members); every other port of
a unit is a top-level port with the unit's prefix (``sa_``, ``sic_``, ``sec_``, ``sc_``).
The buffers (input, weight, output, layouter, similarity table) stay outside, as SRAM macros.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from veriloggen import Module

from rtlgen.config import RtlConfig
from rtlgen.scatter import scatter_module
from rtlgen.sec import sec_module
from rtlgen.sic import SIC_LATENCY, sic_module
from rtlgen.systolic import SYSTOLIC_LATENCY, pe_module, systolic_module

__all__ = ["FOCUS_UNITS", "MODULES", "Generated", "build_modules", "generate"]

#: Emitted modules, leaves first.
MODULES = ("focus_pe", "focus_systolic_array", "focus_sic", "focus_sec", "focus_scatter", "focus_top")
#: The Focus additions to a plain systolic array.
FOCUS_UNITS = ("focus_sic", "focus_sec", "focus_scatter")
_PREFIX = {"focus_systolic_array": "sa", "focus_sic": "sic", "focus_sec": "sec", "focus_scatter": "sc"}


class Generated(dict):
    """``{module name: Path of its .v}`` plus ``manifest`` (dict) and ``manifest_path``."""

    manifest: dict
    manifest_path: Path


def build_modules(cfg: RtlConfig) -> dict[str, Module]:
    """The veriloggen modules of ``cfg``, by name (``MODULES``)."""
    pe = pe_module(cfg)
    units = {"focus_systolic_array": systolic_module(cfg, pe), "focus_sic": sic_module(cfg),
             "focus_sec": sec_module(cfg), "focus_scatter": scatter_module(cfg)}
    top = Module("focus_top")
    clk, rst = top.Input("clk"), top.Input("rst")
    sa_out = top.Wire("sa_to_scatter", cfg.cols * cfg.acc_width)
    for name, unit in units.items():
        ports = [("clk", clk), ("rst", rst)]
        for pname, port in unit.get_ports().items():
            if pname in ("clk", "rst"):
                continue
            if name == "focus_scatter" and pname == "in_psum":  # fed by the array, not a top port
                ports.append((pname, sa_out))
                continue
            make = top.Input if type(port).__name__ == "Input" else top.Output
            ext = make(f"{_PREFIX[name]}_{pname}", port.width)
            if name == "focus_systolic_array" and pname == "out_data":
                ext.assign(sa_out)
                ports.append((pname, sa_out))
            else:
                ports.append((pname, ext))
        top.Instance(unit, f"u_{_PREFIX[name]}", ports=ports)
    return {"focus_pe": pe, **units, "focus_top": top}


def _split_modules(text: str) -> dict[str, str]:
    """Verilog text of several modules -> ``{name: text}`` (veriloggen emits submodules inline)."""
    found = {}
    for match in re.finditer(r"^module\s+(\w+).*?^endmodule\s*$", text, re.DOTALL | re.MULTILINE):
        found.setdefault(match.group(1), match.group(0) + "\n")
    return found


def _ports(module: Module) -> list[dict]:
    return [{"name": n, "direction": type(p).__name__.lower(), "width": int(p.width or 1)}
            for n, p in module.get_ports().items()]


def interface(cfg: RtlConfig) -> dict:
    """The streaming interface of every unit: handshakes and latencies (manifest)."""
    r, c = cfg.rows, cfg.cols
    return {
        "clock_reset": "one clock `clk`, synchronous active-high reset `rst`; "
        "no unit back-pressures (valid-only streams)",
        "focus_systolic_array": {
            "fold": f"{r} cycles w_valid (weight rows, bottom row first), then M cycles a_valid (one activation row of "
            f"{r} lanes per cycle), then {r + c - 2} drain cycles before the next fold's weights",
            "fold_cycles": "M + 2*rows + cols - 2 "
            "(busy_cycles counts them; last busy cycle index = costmodel.gemm_cycles)",
            "output_latency_cycles": SYSTOLIC_LATENCY(cfg),
            "lanes": "lane i of a bus occupies bits [i*w, (i+1)*w)",
        },
        "focus_sic": {
            "beats_per_vector": cfg.candidates + 1,
            "beat_0": "in_b = in_a (the vector itself: |a|^2)",
            "beat_j": "in_b = window candidate j (window_offsets order; zero vector if absent)",
            "cand_offsets": f"{cfg.candidates} x {cfg.pointer_width}-bit token offsets, candidate 1 in the low bits",
            "output_latency_cycles": SIC_LATENCY,
            "start": "one cycle before a stream: token counter to 0",
        },
        "focus_sec": {
            "clear": "one cycle: importances to 0",
            "accumulate": "acc_valid/acc_index/acc_value: imp[index] = max(imp[index], value), one beat per cycle",
            "select": "sel_start with sel_k, sel_n: k beats of out_valid/out_index ascending, done with the last pass",
            "select_cycles": f"({cfg.importance_bits} + 1) * n + 1 from sel_start to done",
        },
        "focus_scatter": {
            "lanes": cfg.scatter_vectors,
            "beat": "lane_valid[l] with lane_addr[l], lane_acc[l] (output-buffer row), in_psum = the array's out_data",
            "output_latency_cycles": 1,
        },
    }


def generate(cfg: RtlConfig, out_dir) -> Generated:
    """Write ``<module>.v`` for every module of ``cfg`` and ``manifest.json`` into ``out_dir``.

    Returns:
        ``Generated``: module name -> path, with the manifest attached.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    modules = build_modules(cfg)
    texts = _split_modules(modules["focus_top"].to_verilog())
    files = Generated()
    for name in MODULES:
        path = out / f"{name}.v"
        path.write_text("// generated by focus-jax rtlgen; do not edit\n" + texts[name])
        files[name] = path
    manifest = {
        "format": "focus-rtl",
        "version": 1,
        "parameters": cfg.to_dict(),
        "datapath": f"INT{cfg.data_width} x INT{cfg.data_width} -> INT{cfg.acc_width}",
        "files": {name: path.name for name, path in files.items()},
        "top": "focus_top",
        "ports": {name: _ports(modules[name]) for name in MODULES},
        "interface": interface(cfg),
    }
    files.manifest = manifest
    files.manifest_path = out / "manifest.json"
    files.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return files
