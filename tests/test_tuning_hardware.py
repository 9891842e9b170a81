"""Hardware-only tuning: the paper's DSE stand-ins, the DOSA-style tuner against a brute-force
grid, the baselines' counting, the design file and ``focus-jax tune --hardware-only``.

References: the published DSE CSVs (paper simulator), ``costmodel.simulate`` (the exact
cost model, called independently of the tuner's batched pricing), exhaustive enumeration.
"""

import csv
import json
import math
from importlib import resources

import numpy as np
import pytest
from typer.testing import CliRunner

import costmodel as cm
from focus_jax.cli import app
from focus_jax.design import Design, HardwareDesign
from focus_jax.errors import InputError
from focus_jax.tuning import dse
from focus_jax.tuning.hardware import HardwareSpace, Pricer, grid_search, random_search, tune_hardware

SMALL = HardwareSpace(m_tile=(256, 4096), scatter_vectors=(1, 4), gather_block=(4, 8))


def _rows(name):
    return list(csv.DictReader(resources.files("costmodel.data").joinpath(name).read_text().splitlines()))


@pytest.fixture(scope="module")
def candidates():
    return dse.dse_candidates(vector_sizes=(32, 8), blocks=("2x2x2", "3x3x3", "1x1x1"))


def test_block_stand_ins_reproduce_the_published_dse_c_cycles(candidates):
    published = {r["block_size"]: float(r["total_cycles"]) for r in _rows("dse_c_block_size.csv")}
    for c in candidates:
        if c.label["vector_size"] != 32:
            continue
        got = cm.simulate(cm.focus(), c.workload, mode="paper").total_cycles
        assert abs(got / published[c.label["block"]] - 1) < 2e-3, (c.label, got)


def test_vector_size_scales_similarity_like_the_published_layer(candidates):
    by = {(c.label["vector_size"], c.label["block"]): c.label["similar_fraction"] for c in candidates}
    f_block, g_vector = dse._calibrated_fractions(*dse.DSE_POINT)
    # smaller vectors find more similar vectors (dse_b's compute cycles fall with the vector size)
    assert g_vector[8] > g_vector[32] > g_vector[128] > g_vector[4096] > 0
    assert math.isclose(by[(8, "2x2x2")], f_block["2x2x2"] * g_vector[8] / g_vector[32], rel_tol=1e-5)


def test_space_rounding_and_neighbours():
    assert SMALL.values() == ((256, 512, 1024, 2048, 4096), (1, 2, 3, 4), (4, 5, 6, 7, 8))
    assert SMALL.round([9.6, 2.4, math.log2(6.6)]) == (1024, 2, 7)
    assert SMALL.round([20.0, 0.0, 0.0]) == (4096, 1, 4)  # clipped into the bounds
    assert sorted(SMALL.neighbours((256, 1, 8))) == [(256, 1, 7), (256, 2, 8), (512, 1, 8)]
    with pytest.raises(ValueError, match="power of two"):
        HardwareSpace(m_tile=(33, 60))
    with pytest.raises(ValueError, match="CACTI"):
        HardwareSpace(scatter_vectors=(1, 8))


def test_pricer_equals_simulate_and_counts_each_design_once(candidates):
    pricer = Pricer(candidates, "edp")
    designs = [(0, 512, 3, 5), (len(candidates) - 1, 2048, 1, 8), (0, 512, 3, 5)]
    priced = pricer.price(designs)
    assert pricer.evaluations == 2
    for (i, m, s, g), (t, e, o) in zip(designs, priced):
        ref = cm.simulate(
            candidates[i].hardware(float(m), float(s), float(g)), candidates[i].workload, mode="corrected"
        )
        assert math.isclose(t, ref.time_s, rel_tol=1e-12) and math.isclose(e, ref.energy_total_mJ, rel_tol=1e-12)
        assert math.isclose(o, ref.time_s * ref.energy_total_mJ, rel_tol=1e-12)


def test_tuner_finds_the_grid_optimum_with_a_tenth_of_the_evaluations(candidates):
    tuned = tune_hardware(candidates, SMALL, "edp", steps=12, top_k=2, round_every=6)
    grid, values = grid_search(candidates, SMALL, "edp")
    assert grid.evaluations == len(candidates) * SMALL.size() == len(values)
    assert tuned.objective <= grid.objective * (1 + 1e-12)
    assert tuned.evaluations <= grid.evaluations / 10
    paper = cm.simulate(candidates[0].hardware(), candidates[0].workload, mode="corrected")
    assert tuned.edp < paper.time_s * paper.energy_total_mJ
    # the trajectory logs every relaxed step and prices every rounding exactly
    assert len(tuned.trajectory) == 2 * 12 and sum("exact" in e for e in tuned.trajectory) == 4
    again = tune_hardware(candidates, SMALL, "edp", steps=12, top_k=2, round_every=6)
    assert again.design == tuned.design and again.evaluations == tuned.evaluations  # deterministic
    best, reach = random_search(candidates, values, tuned.evaluations, seed=3, space=SMALL, target=tuned.objective)
    assert best.objective >= grid.objective and best.evaluations == tuned.evaluations
    order = np.random.default_rng(3).permutation(len(values))
    assert reach == int(np.flatnonzero(values[order] <= tuned.objective * (1 + 1e-12))[0]) + 1


def test_hardware_design_from_costmodel_round_trips(tmp_path):
    hw = cm.focus(m_tile=512, scatter_vectors=3, gather_block=4)
    design = Design(hardware=HardwareDesign.from_costmodel(hw))
    loaded = Design.load(design.save(tmp_path / "d.json"))
    back = loaded.hardware.to_costmodel()
    assert (back.m_tile, back.scatter_vectors, back.gather_block) == (512, 3, 4)
    with pytest.raises(InputError, match="whole number"):
        HardwareDesign.from_costmodel(hw.replace(m_tile=700.5))


def test_cli_hardware_only_json_and_design(tmp_path):
    out = tmp_path / "design.json"
    result = CliRunner().invoke(
        app,
        [
            "tune",
            "--hardware-only",
            "--model",
            "qwen2-0.5b",
            "--seq-len",
            "2000",
            "--sparsity",
            "0.4",
            "--steps",
            "4",
            "--objective",
            "latency",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"evaluations", "grid_evaluations", "random_evaluations", "tuned", "baseline", "design"} <= set(report)
    assert report["tuned"]["latency_s"] <= report["baseline"]["latency_s"]
    assert report["grid"]["latency_s"] <= report["tuned"]["latency_s"] * (1 + 1e-12)
    design = Design.load(out)
    assert [design.hardware.m_tile, design.hardware.scatter_vectors, design.hardware.gather_block] == report["tuned"][
        "design"
    ]
    assert math.isclose(design.objective["latency_s"], report["tuned"]["latency_s"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--objective", "speed"], "--objective must be one of"),
        (["--sparsity", "1.5"], "--sparsity must lie in"),
        (["--model", "qwen2-0.5b"], "the paper's DSE is on llava_vid"),
    ],
)
def test_cli_bad_input_is_one_line(args, message):
    result = CliRunner().invoke(app, ["tune", "--hardware-only", "--no-baselines", *args])
    assert result.exit_code == 1
    assert "error:" in result.output and message in result.output and "Traceback" not in result.output


def test_tunable_focus_starts_at_the_config_and_stays_in_bounds():
    import jax.numpy as jnp
    from flax import nnx

    from focus_jax.config import FocusConfig
    from focus_jax.tuning.hardware import adam
    from focus_jax.tuning.knobs import TunableFocus, train_step

    cfg = FocusConfig(similarity_threshold=0.95, sec_layers=(1, 3), sec_alphas=(0.5, 0.25))
    shapes = {}
    for granularity in ("global", "layer", "layer_gemm"):
        knobs = TunableFocus(cfg, 4, granularity, threshold_bounds=(0.8, 1.0), keep_bounds=(0.05, 1.0))
        out = knobs()
        np.testing.assert_allclose(out["similarity_threshold"], np.full((4, 5), 0.95), atol=1e-5)
        np.testing.assert_allclose(out["sec_keep"], [0.5, 0.25], atol=1e-5)
        shapes[granularity] = knobs.threshold_logit[...].shape
    assert shapes == {"global": (), "layer": (4, 1), "layer_gemm": (4, 5)}
    # ordinary Flax training: push every threshold down and every keep ratio up, far past the bounds
    opt = nnx.Optimizer(knobs, adam(1.0), wrt=nnx.Param)
    for _ in range(50):
        train_step(opt, knobs, lambda k: jnp.sum(k()["similarity_threshold"]) - jnp.sum(k()["sec_keep"]))
    t, keep = np.asarray(knobs()["similarity_threshold"]), np.asarray(knobs()["sec_keep"])
    assert np.all(t >= 0.8) and np.all(t < 0.81) and np.all(keep <= 1.0) and np.all(keep > 0.99)
    with pytest.raises(ValueError, match="outside the bounds"):
        TunableFocus(cfg, 4, threshold_bounds=(0.96, 1.0))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sparsity", "0.4"], "need --hardware-only"),
        (["--lambda", "-1"], "every --lambda >= 0"),
        (["--calibration", "0"], "--calibration must be >= 1"),
    ],
)
def test_cli_model_path_bad_input_is_one_line(args, message):
    result = CliRunner().invoke(app, ["tune", *args])
    assert result.exit_code == 1
    assert "error:" in result.output and message in result.output and "Traceback" not in result.output
