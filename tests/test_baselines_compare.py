"""``focus-jax eval --method/--compare`` and the comparison library: rows, work and pricing
agree with independent computations; bad input is a one-line error."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import costmodel as cm
from focus_jax.baselines.compare import price
from focus_jax.baselines.trace import MethodTrace
from focus_jax.cli import app
from focus_jax.config import VisualGeometry
from focus_jax.models.qwen2.modeling import Qwen2Config

from task_model import random_model_dir

runner = CliRunner()
TEXT = Qwen2Config(
    vocab_size=48, hidden_size=128, intermediate_size=384, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=32
)
MODEL = {
    "num_layers": 4,
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 32,
}


def _fastv_work(kept, n=128):
    """Visual-token GEMM work by hand for the demo dimensions: per token q/k/v 128*8*32,
    o 128*128, gate/up 128*768, down 384*128 MACs; Q.K^T and A.V 2 * r^2 * 128."""
    linear = 128 * 8 * 32 + 128 * 128 + 128 * 768 + 384 * 128
    done = sum(r * linear + 2 * r * r * 128 for r in kept)
    return done / (len(kept) * (n * linear + 2 * n * n * 128))


def test_eval_method_json_and_plot(tmp_path):
    plot = tmp_path / "cmp.png"
    # 6 questions in one batch, as test_eval_cli asks: the dense programs compile once for both
    args = [
        "eval",
        "--model",
        str(random_model_dir()),
        "--questions",
        "6",
        "--batch-size",
        "6",
        "--method",
        "fastv",
        "--json",
        "--plot",
        str(plot),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    dense, fastv = out["methods"]
    assert (dense["label"], dense["accelerator"], dense["work_fraction"]) == ("dense", "dense", 1.0)
    assert fastv["config"] == {"method": "fastv", "k": 2, "r": 0.5}
    assert fastv["work_fraction"] == pytest.approx(_fastv_work([128, 128, 64, 64]), rel=1e-12)
    assert fastv["accelerator"] == "dense" and fastv["latency_s"] < dense["latency_s"]
    assert out["questions"] == 6 and plot.stat().st_size > 1000


def _one_line_error(result, fragment):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1 and fragment in result.output, (
        result.output
    )


def test_eval_method_errors(tmp_path):
    model = ["eval", "--model", str(random_model_dir()), "--questions", "2"]
    _one_line_error(runner.invoke(app, [*model, "--method", "[red]x"]), "--method must be one of")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    _one_line_error(runner.invoke(app, [*model, "--method-config", str(bad)]), "--method-config")
    other = tmp_path / "cmc.json"
    other.write_text(json.dumps({"method": "cmc", "threshold": 0.3}))
    _one_line_error(
        runner.invoke(app, [*model, "--method", "fastv", "--method-config", str(other)]), "holds a cmc config"
    )
    other.write_text(json.dumps({"method": "cmc", "threshold": -1}))
    _one_line_error(runner.invoke(app, [*model, "--method-config", str(other)]), "CMC threshold")
    _one_line_error(runner.invoke(app, ["run", "--demo", "--method", "focus"]), "--method must be one of cmc")


def test_token_methods_priced_layer_by_layer_on_the_dense_array():
    geom = VisualGeometry(8, 4, 4)
    full = MethodTrace("fastv", {}, geom, MODEL, 20, np.full((4, 2), 128))
    _, t, e = price(TEXT, full, 128, 8, 20, 2)
    shape = cm.ModelShape(
        name="m", hidden_size=128, intermediate_size=384, num_heads=4, num_kv_heads=2, num_layers=4, head_dim=32
    )
    dense = cm.simulate(
        cm.dense(), cm.Workload(shape, 128.0, frames=8.0, text_tokens=20.0, decode_tokens=2), mode="corrected"
    )
    assert t == pytest.approx(dense.time_s, rel=1e-9) and e == pytest.approx(dense.energy_total_mJ, rel=1e-9)
    pruned = MethodTrace("fastv", {}, geom, MODEL, 20, np.array([[128, 128], [128, 128], [64, 64], [64, 64]]))
    kind, t_p, e_p = price(TEXT, pruned, 128, 8, 20, 2)
    assert kind == "dense" and t_p < t and e_p < e
    assert pruned.work_fraction() == pytest.approx(_fastv_work([128, 128, 64, 64]), rel=1e-12)


def test_cmc_and_adaptiv_priced_on_their_accelerators_with_measured_sparsity():
    geom = VisualGeometry(8, 4, 4)
    sparsity = np.tile([[0.8, 0.6, 0.1]], (4, 1))
    cmc = MethodTrace("cmc", {}, geom, MODEL, 20, np.full((4, 2), 128), sparsity)
    shape = cm.ModelShape(
        name="m", hidden_size=128, intermediate_size=384, num_heads=4, num_kv_heads=2, num_layers=4, head_dim=32
    )
    wl = cm.Workload(shape, 128.0, frames=8.0, text_tokens=20.0, decode_tokens=2)
    ref = cm.simulate(cm.cmc(), wl.replace(cmc_sparsity=(0.8, 0.6, 0.1)), mode="corrected")
    assert price(TEXT, cmc, 128, 8, 20, 2) == ("cmc", pytest.approx(ref.time_s), pytest.approx(ref.energy_total_mJ))
    assert cmc.work_fraction() == pytest.approx((0.2 * 196608 + 0.4 * 16384 + 0.9 * 16384) / (196608 + 32768))
    adaptiv = MethodTrace("adaptiv", {}, geom, MODEL, 20, np.full((4, 2), 96))
    ref = cm.simulate(cm.adaptiv(), wl.replace(adaptiv_sparsity=0.25), mode="corrected")
    assert price(TEXT, adaptiv, 128, 8, 20, 2) == (
        "adaptiv",
        pytest.approx(ref.time_s),
        pytest.approx(ref.energy_total_mJ),
    )
