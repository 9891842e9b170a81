"""Top level and emission: ``generate(cfg, out_dir)`` writes one Verilog file per module and
``manifest.json`` (parameters, ports, handshakes, latencies).

``focus_top`` is the streaming datapath of one GEMM tile (``rtlgen.ctrl``): the layouter
streams the tile's tokens through the SIC unit (``sic_*`` ports); its decisions drive the
controller, which, on ``run``, reads only the unique tokens' rows from the input buffer
(``ib_*``) into the systolic array (weights loaded before through ``sa_w_*``) and programs
the scatter accumulators so each output row of the array is added to every group member's
output-buffer row (reads ``ob_rd_*``, writes ``ob_wr_*``); ``done`` ends the tile. The SEC
unit sits beside it with its own ``sec_*`` ports (it ranks tokens from attention
probabilities, another stream). The buffers (input, weight, output, layouter) stay
outside, as SRAM macros.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from veriloggen import Module

from rtlgen.config import RtlConfig
from rtlgen.ctrl import ctrl_module
from rtlgen.scatter import scatter_module
from rtlgen.sec import sec_module
from rtlgen.sic import SIC_LATENCY, sic_module
from rtlgen.systolic import SYSTOLIC_LATENCY, pe_module, systolic_module

__all__ = ["FOCUS_UNITS", "MODULES", "Generated", "build_modules", "generate"]

#: Emitted modules, leaves first.
MODULES = ("focus_pe", "focus_systolic_array", "focus_sic", "focus_sec", "focus_scatter", "focus_ctrl", "focus_top")
#: The Focus additions to a plain systolic array.
FOCUS_UNITS = ("focus_sic", "focus_sec", "focus_scatter", "focus_ctrl")
_PREFIX = {"focus_systolic_array": "sa", "focus_sic": "sic", "focus_sec": "sec", "focus_scatter": "sc",
           "focus_ctrl": "ctrl"}


class Generated(dict):
    """``{module name: Path of its .v}`` plus ``manifest`` (dict) and ``manifest_path``."""

    manifest: dict
    manifest_path: Path


def build_modules(cfg: RtlConfig) -> dict[str, Module]:
    """The veriloggen modules of ``cfg``, by name (``MODULES``).

    ``focus_top`` wires the tile datapath (``rtlgen.ctrl``): the SIC unit's results drive
    the controller, which feeds the array's activations from the input buffer and the
    scatter accumulators' lanes; the array's output rows reach the scatter accumulators
    through the controller's ``psum`` register. The SEC unit sits beside it (it acts on
    attention probabilities, not on this GEMM): its ports are top ports with ``sec_``.
    """
    pe = pe_module(cfg)
    units = {"focus_systolic_array": systolic_module(cfg, pe), "focus_sic": sic_module(cfg),
             "focus_sec": sec_module(cfg), "focus_scatter": scatter_module(cfg), "focus_ctrl": ctrl_module(cfg)}
    top = Module("focus_top")
    clk, rst = top.Input("clk"), top.Input("rst")
    pw, lanes = cfg.pointer_width, cfg.scatter_vectors
    row_in, row_out = cfg.rows * cfg.data_width, cfg.cols * cfg.acc_width
    wires = {name: top.Wire(name, width) for name, width in (
        ("sic_valid", 1), ("sic_token", pw), ("sic_zero", 1), ("sic_similar", 1), ("sic_root", pw),
        ("a_valid", 1), ("a_data", row_in), ("sa_valid", 1), ("sa_data", row_out), ("psum", row_out),
        ("lane_valid", lanes), ("lane_addr", lanes * pw))}
    # unit port -> top wire (internal) or top port name (external); unlisted ports are top
    # ports named with the unit's prefix
    internal = {
        "focus_sic": {"out_valid": "sic_valid", "out_token": "sic_token", "out_zero": "sic_zero",
                      "out_similar": "sic_similar", "out_root": "sic_root"},
        "focus_systolic_array": {"a_valid": "a_valid", "a_data": "a_data", "out_valid": "sa_valid",
                                 "out_data": "sa_data"},
        "focus_scatter": {"in_psum": "psum", "lane_valid": "lane_valid", "lane_addr": "lane_addr",
                          "lane_acc": "ob_rd_data", "out_valid": "ob_wr_valid", "out_addr": "ob_wr_addr",
                          "out_sum": "ob_wr_data"},
        "focus_ctrl": {**{k: k for k in ("sic_valid", "sic_token", "sic_zero", "sic_similar", "sic_root",
                                         "a_valid", "a_data", "sa_valid", "sa_data", "psum", "lane_valid",
                                         "lane_addr")},
                       "tile_start": "sic_start", "run": "run", "ib_rd_en": "ib_rd_en", "ib_rd_addr": "ib_rd_addr",
                       "ib_rd_data": "ib_rd_data", "busy": "busy", "done": "done"},
    }
    ports_made: dict = {}

    def external(name, port):
        if name not in ports_made:
            make = top.Input if type(port).__name__ == "Input" else top.Output
            ports_made[name] = make(name, port.width)
        return ports_made[name]

    for name, unit in units.items():
        ports = [("clk", clk), ("rst", rst)]
        for pname, port in unit.get_ports().items():
            if pname in ("clk", "rst"):
                continue
            target = internal.get(name, {}).get(pname)
            if target in wires:
                ports.append((pname, wires[target]))
            else:
                ports.append((pname, external(target or f"{_PREFIX[name]}_{pname}", port)))
        top.Instance(unit, f"u_{_PREFIX[name]}", ports=ports)
    # the SIC results stay observable (the layouter's view of the decisions); the lanes are
    # the output buffer's read ports (its rows come back on ob_rd_data in the same cycle)
    for pname in ("valid", "token", "zero", "similar", "root"):
        top.Output(f"sic_out_{pname}", wires[f"sic_{pname}"].width).assign(wires[f"sic_{pname}"])
    top.Output("ob_rd_valid", lanes).assign(wires["lane_valid"])
    top.Output("ob_rd_addr", lanes * pw).assign(wires["lane_addr"])
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
            "beat": "lane_valid[l] with lane_addr[l], lane_acc[l] (output-buffer row), in_psum = the held array row",
            "output_latency_cycles": 1,
        },
        "focus_top": {
            "tile": f"M <= {cfg.sic_tokens} tokens x {cfg.rows} channels (one SIC vector: vector_size = rows) "
            f"x {cfg.cols} outputs",
            "1_weights": f"{r} cycles sa_w_valid/sa_w_data, bottom weight row first (as focus_systolic_array)",
            "2_decide": f"sic_start (one cycle; clears the controller's unique list), then M x {cfg.candidates + 1} "
            "beats sic_in_valid/sic_in_a/sic_in_b (as focus_sic); every result (sic_out_*) updates the group tables",
            "3_compute": "run (one cycle, after the last sic_out_valid): the controller reads each unique token's row "
            "(ib_rd_en/ib_rd_addr; the input buffer answers on ib_rd_data the next cycle) into the array, one row "
            "every ceil(group size / lanes) cycles, and scatters each output row to its group: ob_rd_valid/"
            "ob_rd_addr lanes (the output buffer answers on ob_rd_data in the same cycle), "
            "ob_wr_valid/ob_wr_addr/ob_wr_data one cycle later; zero vectors are neither computed nor written",
            "done": "one cycle, the cycle after the last output-buffer write; busy from run to done",
            "cycles": "decide = M*(candidates+1) + SIC latency; compute = sum(rounds) + rows + cols + 4; array busy = "
            "rows + sum(min(r, rows+cols-1) for r in rounds[:-1]) + rows + cols - 1 "
            "(rtlgen.ctrl.tile_cycles; all rounds 1: the cost model's fold over the unique rows)",
            "golden_model": "focus_jax.quant.quantized_focus_gemm (each row replaced by its group root's row, @ W)",
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
