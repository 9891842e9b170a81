"""Running a cocotb testbench on generated RTL with Icarus Verilog (cocotb's Python runner).

A testbench (``rtlgen/tb/tb_<unit>.py``) reads its stimulus from the ``.npz`` named by
``RTLGEN_IN`` and writes what the RTL produced to the ``.npz`` named by ``RTLGEN_OUT``;
comparing with the golden models is the caller's job (``rtlgen.checks``), so a mismatch
is reported with the numbers, not as a simulator log.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

__all__ = ["TIMESCALE", "simulate", "simulator_available"]

#: Timescale given to Icarus (cocotb 2.x needs one for its clock).
TIMESCALE = ("1ns", "1ps")
_TB_DIR = Path(__file__).parent / "tb"


def simulator_available() -> bool:
    """Whether ``iverilog`` and ``vvp`` are on PATH."""
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def simulate(sources, toplevel: str, testbench: str, stimulus: dict, work_dir, waves: bool = False) -> dict:
    """Build ``sources`` with Icarus and run ``testbench`` on ``toplevel``.

    Args:
        sources: Verilog files (the generated modules; extra ones are harmless).
        toplevel: module to simulate.
        testbench: module name under ``rtlgen/tb`` (e.g. ``"tb_sic"``).
        stimulus: arrays for the testbench (saved as ``.npz``).
        work_dir: build and run directory (created); with ``waves`` it holds
            ``<toplevel>.vcd`` afterwards (every signal of ``toplevel``).

    Returns:
        The arrays the testbench wrote.

    Raises:
        RuntimeError: Icarus is missing or the simulation failed (the log's path is named).
    """
    if not simulator_available():
        raise RuntimeError("Icarus Verilog (iverilog, vvp) is not installed: apt-get install iverilog")
    from cocotb_tools.runner import Icarus, get_results

    class IcarusVcd(Icarus):
        """cocotb's Icarus runner, with ``vvp -vcd`` instead of ``-none`` when waves are asked for
        (its own waves are FST, which nothing here reads)."""

        def _test_command(self):
            cmds = super()._test_command()
            return [[("-vcd" if waves and arg == "-none" else arg) for arg in cmd] for cmd in cmds]

    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    stim, out = work / "stimulus.npz", work / "result.npz"
    np.savez(stim, **{k: np.asarray(v) for k, v in stimulus.items()})
    out.unlink(missing_ok=True)
    runner = IcarusVcd()
    sources = [Path(s).resolve() for s in sources]
    build_args = []
    if waves:  # a second root module dumps a VCD (cocotb's own Icarus waves are FST)
        dump = work / "rtlgen_dump.v"
        dump.write_text(f'module rtlgen_dump; initial begin $dumpfile("{work / (toplevel + ".vcd")}"); '
                        f"$dumpvars(0, {toplevel}); end endmodule\n")
        sources.append(dump)
        build_args = ["-s", "rtlgen_dump"]
    runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=work, always=True, build_args=build_args,
                 timescale=TIMESCALE, log_file=work / "build.log")
    env = {"RTLGEN_IN": str(stim), "RTLGEN_OUT": str(out)}
    log = work / "sim.log"
    results = runner.test(test_module=testbench, hdl_toplevel=toplevel, build_dir=work, test_dir=_TB_DIR, extra_env=env,
                          results_xml=str(work / "results.xml"),
                          timescale=TIMESCALE, log_file=log)
    tests, failed = get_results(Path(results))
    if tests == 0 or failed or not out.is_file():
        raise RuntimeError(f"simulation of {toplevel} with {testbench} failed; see {log}")
    with np.load(out) as data:
        return {k: data[k] for k in data.files}
