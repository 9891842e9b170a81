"""``focus-jax simulate``: JSON output, the paper reproduction, and one-line errors."""

import csv
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import costmodel as cm
from costmodel import paper
from focus_jax.cli import app
from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.trace import GEMM_NAMES, FocusTrace, GemmTrace

runner = CliRunner()
FIELDS = {
    "total_cycles",
    "compute_cycles",
    "stall_cycles",
    "time_s",
    "dram_bytes",
    "energy_mJ",
    "area_mm2",
    "onchip_power_mW",
}


def _run(*args):
    return runner.invoke(app, ["simulate", *args])


def test_json_matches_the_published_cmc_row():
    result = _run("--accelerator", "cmc", "--model", "llava_vid", "--seq-len", "11648", "--frames", "64",
                  "--sparsity", "0.5787517040967941,0.6745603175035545,0.580766528348128", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert FIELDS <= set(out) and set(out["energy_mJ"]) == {"dram", "sram", "core", "total"}
    row = paper.published("cmc")[("llava_vid", "videomme")]
    assert math.isclose(out["total_cycles"], float(row["total_cycles"]), rel_tol=1e-12)
    assert math.isclose(out["energy_mJ"]["total"], float(row["total_energy"]), rel_tol=1e-12)
    assert math.isclose(out["area_mm2"], 3.5789920772, rel_tol=1e-12)


def test_sec_only_defaults_to_the_paper_schedule():
    result = _run("--accelerator", "sec-only", "--model", "llava_vid", "--seq-len", "11648",
                  "--sec-layers", "3,6,9,18,26", "--sec-alphas", "0.4,0.3,0.2,0.15,0.1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    row = paper.published("sec-only")[("llava_vid", "videomme")]
    assert out["compute_cycles"] == float(row["total_compute_cycles"]) == 29_612_072_112
    assert out["dram_bytes"] == 626_711_450_688


def test_table_output_and_corrected_mode():
    result = _run("--accelerator", "focus", "--seq-len", "2048", "--sparsity", "0.4", "--mode", "corrected",
                  "--text-tokens", "64", "--decode-tokens", "2")
    assert result.exit_code == 0, result.output
    assert "energy: total" in result.output and "corrected mode" in result.output


def test_trace_input(tmp_path):
    rng = np.random.default_rng(1)
    layers, tokens = 24, 36
    gemms = {}
    widths = {"q_proj": 896, "query": 896, "o_proj": 896, "gate_proj": 896, "down_proj": 4864}
    for layer in range(layers):
        for name in GEMM_NAMES:
            v = -(-widths[name] // 32)
            zero = np.zeros((tokens, v), bool)
            similar = rng.random((tokens, v)) < 0.5
            gemms[(layer, name)] = GemmTrace(zero, similar, np.zeros((tokens, v), np.int32))
    model = {
        "num_layers": layers,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_heads": 14,
        "num_kv_heads": 2,
        "head_dim": 64,
    }
    trace = FocusTrace(VisualGeometry(1, 6, 6), FocusConfig(), model, 5, np.zeros((layers, 2), np.int32), gemms)
    path = trace.save(tmp_path / "trace.npz")
    result = _run("--accelerator", "focus", "--trace", str(path), "--mode", "corrected", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["seq_len"], out["text_tokens"]) == (36, 5) and out["total_cycles"] > 0


@pytest.mark.parametrize(
    "args,message",
    [
        (("--model", "llama-9", "--seq-len", "100", "--accelerator", "dense"), "unknown model 'llama-9'"),
        (("--seq-len", "-5", "--accelerator", "dense"), "--seq-len must be a positive integer"),
        (
            ("--seq-len", "100", "--sparsity", "0.3", "--sec-layers", "1,2", "--sec-alphas", "0.4,oops"),
            "--sec-alphas must be a comma-separated list of numbers",
        ),
        (("--trace", "/no/such/trace.npz"), "trace file not found"),
        (("--accelerator", "tpu", "--seq-len", "100"), "unknown accelerator 'tpu'"),
        (("--accelerator", "focus", "--seq-len", "100"), "focus needs --trace FILE or --sparsity"),
        (("--accelerator", "adaptiv", "--seq-len", "100", "--sparsity", "1.5"), "--sparsity values must lie in [0, 1)"),
        (
            ("--accelerator", "cmc", "--seq-len", "100", "--sparsity", "0.1,0.2"),
            "cmc needs --sparsity linear,query,score",
        ),
        (
            ("--accelerator", "dense", "--seq-len", "100", "--text-tokens", "8"),
            "text and decode tokens need mode='corrected'",
        ),
        (
            ("--accelerator", "sec-only", "--seq-len", "100", "--sec-layers", "3,40", "--sec-alphas", "0.4,0.2"),
            "exceed the model's 28 layers",
        ),
        (("--accelerator", "dense", "--seq-len", "100", "--mode", "fast"), "unknown mode 'fast'"),
    ],
)
def test_bad_input_gives_one_line_error(args, message):
    result = _run(*args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0]


def test_reproduce_paper_writes_table_csv_and_png(tmp_path):
    result = _run("--reproduce-paper", "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "2.350" in result.output and "3.292" in result.output
    rows = list(csv.DictReader(open(tmp_path / "out" / "paper_comparison.csv")))
    assert len(rows) == 10 and rows[-1]["model"] == "geomean"
    assert round(float(rows[-1]["focus_vs_cmc_speedup"]), 3) == 2.350
    assert round(float(rows[-1]["speedup_sec-only"]), 3) == 3.254
    png = (tmp_path / "out" / "paper_comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_simulate_prices_a_design_file(tmp_path):
    """``simulate --design``: the design's accelerator (kind, m-tile, scatter vectors) and
    its SEC schedule, equal to costmodel on the same hardware and workload."""
    from focus_jax.config import FocusConfig
    from focus_jax.design import Design, HardwareDesign

    focus = FocusConfig(sec_layers=(3, 6, 9, 18, 26), sec_alphas=(0.4, 0.3, 0.2, 0.15, 0.1))
    path = Design(focus, HardwareDesign(m_tile=512, scatter_vectors=3)).save(tmp_path / "design.json")
    args = ["simulate", "--design", str(path), "--model", "llava_vid", "--seq-len", "11648", "--sparsity", "0.4"]
    result = runner.invoke(app, [*args, "--mode", "corrected", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    shape = cm.ModelShape.load("llava_vid")
    stats = cm.FocusStats.from_schedule(shape, 11648, focus.sec_layers, focus.sec_alphas, similar_fraction=0.4)
    workload = cm.Workload(shape, 11648.0, focus=stats)
    want = cm.simulate(cm.focus(m_tile=512, scatter_vectors=3), workload, mode="corrected")
    assert got["accelerator"] == "focus"
    assert got["total_cycles"] == pytest.approx(want.total_cycles, rel=1e-12)
    assert got["energy_mJ"]["total"] == pytest.approx(want.energy_total_mJ, rel=1e-12)
    other = cm.simulate(cm.focus(), workload, mode="corrected")
    assert got["total_cycles"] != pytest.approx(other.total_cycles, rel=1e-6)  # the design's m-tile is used
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    failed = runner.invoke(app, ["simulate", "--design", str(bad), "--seq-len", "100"])
    assert failed.exit_code == 1 and "design file" in failed.output and "Traceback" not in failed.output
