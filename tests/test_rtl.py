"""rtlgen: the generated RTL simulated (cocotb + Icarus) against numpy, the integer JAX
golden model (focus_jax.quant) and costmodel.gemm_cycles; Verilator lint; Yosys synthesis;
the ``focus-jax rtl`` command."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import costmodel
from focus_jax.config import FocusConfig, VisualGeometry
from rtlgen import checks, generate, resource_table
from rtlgen.config import RtlConfig
from rtlgen.lint import lint
from rtlgen.sec import sec_cycles
from rtlgen.synth import synthesize

needs_iverilog = pytest.mark.skipif(
    shutil.which("iverilog") is None, reason="Icarus Verilog not installed (.ci/run installs it)"
)
needs_verilator = pytest.mark.skipif(
    shutil.which("verilator") is None, reason="Verilator not installed (.ci/run installs it)"
)

SIM = RtlConfig(rows=4, cols=4, vector_size=8, threshold=0.9, sic_tokens=256, sec_tokens=64, scatter_vectors=2)
DEMO = RtlConfig(rows=4, cols=4, vector_size=32, threshold=0.975, sic_tokens=128, sec_tokens=128)  # demo_model's Focus
TINY = RtlConfig(rows=2, cols=2, vector_size=4, sic_tokens=16, sec_tokens=16)


@pytest.fixture(scope="module")
def sim_rtl(tmp_path_factory):
    return generate(SIM, tmp_path_factory.mktemp("rtl_sim"))


@needs_iverilog
def test_systolic_gemm_equals_numpy_and_fold_cycles_equal_cost_model(sim_rtl, tmp_path):
    shapes = [(5, 7, 6), (9, 4, 3), (1, 9, 9), (6, 1, 4)]  # partial folds in every dimension, one-column GEMM
    res = checks.check_systolic(sim_rtl, SIM, shapes, tmp_path, seed=1)
    assert res["exact"], res
    for case in res["cases"]:
        model = costmodel.gemm_cycles(case["m"], case["n"], case["k"], SIM.rows, SIM.cols, "ws")
        assert case["gemm_cycles_measured"] == model
        assert case["fold_cycles_measured"] == case["m"] + 2 * SIM.rows + SIM.cols - 2


@needs_iverilog
def test_sic_matches_integer_golden_on_1024_random_vectors(sim_rtl, tmp_path):
    geom = checks.sic_geometry(SIM, 256)
    x = checks.random_sic_tokens(SIM, geom, streams=4, seed=3)
    res = checks.check_sic(sim_rtl, SIM, x, geom, tmp_path)
    assert res["vectors"] >= 1000
    assert res["exact"], res["mismatches"]
    assert res["latency_ok"]
    # every branch exercised: similar, not similar, zero vectors, non-trivial groups
    gold = checks.sic_golden(x, SIM, geom)
    roots = np.asarray(gold.group_index)[..., 0]
    assert 100 < res["similar"] < res["vectors"] - 100 and res["zero"] > 50
    assert np.sum(roots != np.arange(geom.num_tokens)) > np.sum(np.asarray(gold.mask_similar)) // 2


def _demo_traces(path, count):
    """The first ``count`` SIC inputs and the first SEC attention map of the demo model's
    prefill (``FocusPlan.capture``), captured in a fresh process (keeps this one's memory small)."""
    code = (
        "import numpy as np, focus_jax\n"
        "from focus_jax.demo_model import demo_model_dir, demo_task_config\n"
        "from focus_jax.inference import model_focus_config\n"
        "from focus_jax.data import generate_samples, build_tokenizer, make_batch\n"
        "from focus_jax.quant_demo import Recorder\n"
        "d = demo_model_dir(); rec = Recorder()\n"
        "m = focus_jax.from_pretrained(d).with_focus(model_focus_config(d), capture=rec)\n"
        "s = generate_samples(demo_task_config(), 7, 1)\n"
        "b = make_batch(s, build_tokenizer(), num_video_tokens=m.config.video_token_count(8),"
        " image_size=m.config.vision.image_size, with_answers=False)\n"
        "m.forward(b['input_ids'], pixel_values_videos=b['pixel_values_videos'], attention_mask=b['attention_mask'])\n"
        "g = rec.sic[0].geometry\n"
        f"np.savez({str(path)!r}, geom=np.array([g.frames, g.height, g.width]), probs=rec.sec[0].probs,"
        f" k=rec.sec[0].k, **{{f'x{{i}}': r.x for i, r in enumerate(rec.sic[:{count}])}})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
    with np.load(path) as data:
        return (VisualGeometry(*map(int, data["geom"])), [data[f"x{i}"] for i in range(count)], data["probs"],
                int(data["k"]))


@pytest.fixture(scope="module")
def demo_traces(tmp_path_factory):
    return _demo_traces(tmp_path_factory.mktemp("demo") / "demo.npz", 1)


@needs_iverilog
def test_sic_matches_integer_golden_on_demo_model_traces(demo_traces, tmp_path):
    from focus_jax.demo_model import DEMO_FOCUS
    from focus_jax.quant import quantize_symmetric, quantized_block_match, split_int_vectors

    assert (DEMO.threshold, DEMO.vector_size) == (DEMO_FOCUS.similarity_threshold, DEMO_FOCUS.vector_size)
    geom, inputs, _, _ = demo_traces
    files = generate(DEMO, tmp_path / "rtl")
    streams, full = [], []
    for x in inputs:  # the q_proj input of layer 0 (128 tokens x 128 channels): one stream per vector slot
        q, _ = quantize_symmetric(x)
        slots = np.asarray(split_int_vectors(q, DEMO.vector_size))  # (N, V, 32)
        streams += [slots[:, s] for s in range(slots.shape[1])]
        full.append(quantized_block_match(q, geom, DEMO_FOCUS, DEMO.tau_q))
    x = np.stack(streams)
    res = checks.check_sic(files, DEMO, x, geom, tmp_path / "sim")
    assert res["exact"], res["mismatches"]
    assert res["vectors"] == 512 and 0 < res["similar"] < 512
    # the per-slot streams decide as the whole-tensor golden model does
    per_slot = np.concatenate([np.asarray(f.mask_similar).T for f in full])
    assert np.array_equal(per_slot, np.asarray(checks.sic_golden(x, DEMO, geom).mask_similar)[..., 0])


@needs_iverilog
def test_sec_kept_indices_equal_jax_top_k(sim_rtl, tmp_path):
    rng = np.random.default_rng(5)
    probs = np.round(rng.random((3, 4, 48)) * 12) / 12  # coarse values: ties at the k-th importance
    res = checks.check_sec(sim_rtl, SIM, probs, 13, tmp_path)
    assert res["exact"], res
    assert len(res["kept"]) == 13
    assert res["cycles"] == sec_cycles(SIM, 48)


@needs_iverilog
def test_sec_kept_indices_equal_integer_golden_on_demo_model_trace(demo_traces, tmp_path):
    from focus_jax.concentration import select_tokens
    from focus_jax.quant import quantize_importance

    _, _, probs, k = demo_traces  # the last layer's SEC: (heads, query rows, 128 visual tokens)
    assert probs.shape[-1] == 128 and 1 <= k < 128
    res = checks.check_sec(generate(DEMO, tmp_path / "rtl"), DEMO, probs, k, tmp_path / "sim")
    assert res["exact"], res
    assert res["cycles"] == sec_cycles(DEMO, 128)
    # quantisation is monotone: the integer top-k differs from the float one only at ties it creates
    kept_float = set(np.asarray(select_tokens(np.max(probs, axis=(0, 1)), k)).tolist())
    imp_q = np.max(np.asarray(quantize_importance(probs)), axis=(0, 1))
    kth = np.sort(imp_q)[-k]
    assert all(imp_q[t] == kth for t in kept_float ^ set(res["kept"]))


TOP = RtlConfig(rows=4, cols=4, vector_size=4, threshold=0.9, sic_tokens=64, sec_tokens=16, scatter_vectors=2)


@needs_iverilog
def test_top_tile_scatters_the_unique_rows_products_to_every_member_as_the_golden_model(tmp_path):
    from focus_jax.concentration import window_offsets
    from rtlgen.ctrl import tile_cycles

    files = generate(TOP, tmp_path / "rtl")
    geom = VisualGeometry(4, 4, 4)
    rng = np.random.default_rng(4)
    w = rng.integers(-127, 128, (TOP.rows, TOP.cols))
    # planted near-duplicates, exact copies, negations and zero vectors (random_sic_tokens)
    x = checks.random_sic_tokens(TOP, geom, 1, seed=4)[0]
    res = checks.check_top(files, TOP, x, w, geom, tmp_path / "sim")
    assert res["exact"] and res["issued_ok"] and res["writes_ok"], res
    assert res["similar"] > 10 and res["zero"] > 0 and max(res["rounds"]) > 1  # groups wider than the lanes
    assert res["unique"] + res["similar"] + res["zero"] == geom.num_tokens
    assert res["cycles"] == res["cycles_model"] == tile_cycles(TOP, geom.num_tokens, res["rounds"])
    # a tile whose groups fit the lanes: the array's busy cycles are the cost model's fold over the unique rows
    y = np.zeros((geom.num_tokens, TOP.rows), np.int64)
    offsets = [o for o in window_offsets(geom, TOP.window[1], TOP.window[0]) if o < geom.num_tokens]
    for p in range(geom.num_tokens):
        if p % 3 == 1:  # token 3i+1 copies token 3i (offset 1: a window candidate); others match nothing
            y[p] = y[p - 1]
            continue
        while True:
            y[p] = rng.integers(-127, 128, TOP.rows)
            cands = [y[p - o] for o in offsets if o <= p]
            if all(c @ y[p] <= 0.5 * np.linalg.norm(c) * np.linalg.norm(y[p]) for c in cands):
                break
    res = checks.check_top(files, TOP, y, w, geom, tmp_path / "sim2")
    assert res["exact"] and res["issued_ok"] and res["writes_ok"], res
    assert res["similar"] >= 21 and max(res["rounds"]) == 1
    assert res["cycles"] == res["cycles_model"]
    model = costmodel.gemm_cycles(res["unique"], TOP.cols, TOP.rows, TOP.rows, TOP.cols, "ws")
    assert res["cycles"]["array_busy"] == model + 1


@needs_iverilog
def test_scatter_accumulators_equal_numpy(sim_rtl, tmp_path):
    res = checks.check_scatter(sim_rtl, SIM, 24, tmp_path, seed=2)
    assert res["exact"] and res["rows"] > 0


@needs_verilator
def test_verilator_lint_wall_clean(sim_rtl):
    res = lint(sim_rtl)
    assert res["clean"], res["warnings"]


def test_synthesis_reports_cells_and_flip_flops_per_module(tmp_path):
    files = generate(TINY, tmp_path)
    res = synthesize(files, tmp_path / "synth")
    # a PE holds exactly its weight, activation and partial-sum registers
    assert res["focus_pe"]["flip_flops"] == 2 * TINY.data_width + TINY.acc_width
    array = res["focus_systolic_array"]
    assert array["cells"] > TINY.rows * TINY.cols * res["focus_pe"]["cells"]
    parts = ("focus_systolic_array", "focus_sic", "focus_sec", "focus_scatter", "focus_ctrl")
    assert res["focus_top"]["cells"] == sum(res[p]["cells"] for p in parts) + res["focus_top"]["own_cells"]
    # the SEC importance buffer alone is sec_tokens x importance_bits flip-flops
    assert res["focus_sec"]["flip_flops"] >= TINY.sec_tokens * TINY.importance_bits
    # with the tables kept as macros: their bits are exactly the tables the generators declare
    macros = synthesize(files, tmp_path / "synth_macros", tables_as_macros=True)
    pw, lanes = TINY.pointer_width, TINY.scatter_vectors
    ctrl_entry = pw + (pw + 1) + max(1, (lanes - 1).bit_length()) + pw + lanes * pw + (lanes - 1) * pw
    assert macros["focus_sic"]["table_bits"] == TINY.sic_tokens * pw
    assert macros["focus_sec"]["table_bits"] == TINY.sec_tokens * TINY.importance_bits
    assert macros["focus_ctrl"]["table_bits"] == TINY.sic_tokens * ctrl_entry
    assert macros["focus_top"]["table_bits"] == sum(macros[m]["table_bits"] for m in ("focus_sic", "focus_sec",
                                                                                       "focus_ctrl"))
    assert macros["focus_systolic_array"] == res["focus_systolic_array"] | {"table_bits": 0, "tables": {}}
    for unit in ("focus_sic", "focus_sec", "focus_ctrl"):
        assert macros[unit]["cells"] < res[unit]["cells"]
    table = resource_table(res, macros)
    assert table["tables_as_macros"]["focus_share_of_whole"] < table["focus_share_of_whole"]


def test_integer_sic_disagrees_with_float_only_near_the_threshold():
    import jax.numpy as jnp

    from focus_jax.concentration import similarity_concentration
    from focus_jax.quant import quantize_symmetric, quantized_block_match, tau_fixed

    rng = np.random.default_rng(0)
    geom = VisualGeometry(4, 6, 6)
    x = rng.normal(size=(geom.num_tokens, 64)).astype(np.float32)
    for p in range(1, geom.num_tokens):
        if rng.random() < 0.7:
            x[p] = x[p - 1] + rng.uniform(0.02, 0.3) * rng.normal(size=64)
    cfg = FocusConfig(similarity_threshold=0.97)
    ref = similarity_concentration(jnp.asarray(x), geom, cfg)
    q, scale = quantize_symmetric(x)
    qm = quantized_block_match(q, geom, cfg, tau_fixed(0.97))
    deq = similarity_concentration((q * scale).astype(jnp.float32), geom, cfg)
    sim, sim_q = np.asarray(ref.similarity), np.asarray(deq.similarity)
    differ = np.asarray(qm.mask_similar) != np.asarray(ref.mask_similar)
    assert 0 < np.asarray(ref.mask_similar).sum() < differ.size
    # integer decisions = the float test on the dequantised vectors (up to the threshold's 2^-12 rounding) ...
    tau_err = abs(tau_fixed(0.97) / 4096 - 0.97)
    assert np.all(
        np.asarray(qm.mask_similar)[np.abs(sim_q - 0.97) > 2e-6 + tau_err]
        == (sim_q > 0.97)[np.abs(sim_q - 0.97) > 2e-6 + tau_err]
    )
    # ... so they differ from float only within the quantisation error of the threshold
    err = np.abs(sim - sim_q)[sim > -1.5].max()
    assert np.all(np.abs(sim[differ] - 0.97) <= err + tau_err)


def test_rtl_cli_default_design_json(tmp_path):
    out = tmp_path / "rtl"
    proc = subprocess.run(
        [sys.executable, "-m", "focus_jax.cli", "rtl", "--design", "default", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["rows"] == 32 and manifest["parameters"]["candidates"] == 7
    assert {p["name"] for p in manifest["ports"]["focus_sic"]} >= {
        "in_valid",
        "in_a",
        "in_b",
        "out_similar",
        "out_root",
    }
    assert report["verified"] is None and report["modules"] is None
    if shutil.which("verilator"):
        assert report["lint_clean"] is True


def test_rtl_cli_bad_design_is_one_line_error(tmp_path):
    bad = tmp_path / "d.json"
    bad.write_text(json.dumps({"format": "focus-design", "version": 1, "hardware": {"dataflow": "os"}}))
    proc = subprocess.run(
        [sys.executable, "-m", "focus_jax.cli", "rtl", "--design", str(bad), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "weight-stationary" in proc.stderr and "Traceback" not in proc.stderr
