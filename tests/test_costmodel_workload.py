"""Workloads and hardware descriptions, and the corrected mode's additions (roofline, text,
decode, array scaling, per-MAC energy)."""

import json
import math

import jax
import numpy as np
import pytest
import transformers

import costmodel as cm
from costmodel.accelerators import prefill_costs
from costmodel.corrections import ALL
from costmodel.hardware import sram_figures
from costmodel.ops import EXACT
from costmodel.workload import KNOWN_MODELS, FocusStats, SparsityCurve
from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.trace import GEMM_NAMES, FocusTrace, GemmTrace

QWEN2_0_5B = dict(
    hidden_size=896, intermediate_size=4864, num_attention_heads=14, num_key_value_heads=2, num_hidden_layers=24
)


def test_model_shape_from_transformers_configs(tmp_path):
    small = transformers.Qwen2Config(**QWEN2_0_5B).to_dict()
    assert cm.ModelShape.from_config(small, name="qwen2-0.5b") == KNOWN_MODELS["qwen2-0.5b"]
    big = transformers.Qwen2Config(
        hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4, num_hidden_layers=28
    ).to_dict()
    assert cm.ModelShape.from_config(big, name="qwen2-7b") == KNOWN_MODELS["qwen2-7b"]
    # a VLM config: the language model's text_config is used
    vlm = transformers.LlavaConfig(text_config=small).to_dict()
    assert cm.ModelShape.from_config(vlm).hidden_size == 896
    path = tmp_path / "config.json"
    path.write_text(json.dumps(small))
    assert cm.ModelShape.load(path).num_layers == 24


def test_gqa_projection_shapes():
    gemms = {g.name: (g.in_features, g.out_features) for g in KNOWN_MODELS["qwen2-0.5b"].linear_gemms()}
    assert gemms == {"q_proj": (896, 896), "k_proj": (896, 128), "v_proj": (896, 128), "o_proj": (896, 896),
                     "gate_proj": (896, 4864), "up_proj": (896, 4864), "down_proj": (4864, 896)}
    # the paper's hard-coded shapes are Qwen2-7B's (spec "Common settings")
    gemms7 = {g.name: (g.in_features, g.out_features) for g in KNOWN_MODELS["llava_vid"].linear_gemms()}
    assert gemms7["k_proj"] == (3584, 512) and gemms7["down_proj"] == (18944, 3584)


def test_model_config_errors(tmp_path):
    with pytest.raises(ValueError, match="lacks intermediate_size"):
        cm.ModelShape.from_config({"hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1})
    with pytest.raises(ValueError, match="not a multiple"):
        cm.ModelShape.from_config(dict(QWEN2_0_5B, num_key_value_heads=3))
    with pytest.raises(ValueError, match="unknown model"):
        cm.ModelShape.load("gpt-5")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read model config"):
        cm.ModelShape.load(bad)


def _trace(tmp_path, rng):
    tokens, layers = 48, 3
    model = {
        "num_layers": layers,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_heads": 2,
        "num_kv_heads": 1,
        "head_dim": 32,
    }
    shape = cm.ModelShape("t", 64, 96, 2, 1, layers, 32)
    gemms = {}
    for layer in range(layers):
        for name, width in zip(GEMM_NAMES, shape.input_features()):
            v = math.ceil(width / 32)
            zero = np.zeros((tokens, v), bool)
            zero[: 4 * layer] = True
            similar = (rng.random((tokens, v)) < 0.3) & ~zero
            gemms[(layer, name)] = GemmTrace(zero, similar, np.zeros((tokens, v), np.int32))
    trace = FocusTrace(VisualGeometry(3, 4, 4), FocusConfig(), model, 7, np.zeros((layers, 2), np.int32), gemms)
    return FocusTrace.load(trace.save(tmp_path / "t.npz"))


def test_workload_from_trace(tmp_path, rng):
    trace = _trace(tmp_path, rng)
    wl = cm.Workload.from_trace(trace, decode_tokens=2)
    assert (wl.visual_tokens, wl.frames, wl.text_tokens, wl.decode_tokens) == (48.0, 3.0, 7.0, 2)
    st = wl.focus
    for (layer, name), g in trace.gemms.items():
        j = GEMM_NAMES.index(name)
        assert st.kept_tokens[layer, j] == 48 - 4 * layer
        assert st.zero_vectors[layer, j] == g.mask_zero.sum()
        assert st.similar_vectors[layer, j] == g.mask_similar.sum()
    assert st.vectors_per_token == (2, 2, 2, 2, 3)
    report = cm.simulate(cm.focus(), wl, mode="corrected")
    assert report.total_cycles > 0 and report.energy_total_mJ > 0


def test_from_schedule_counts():
    model = KNOWN_MODELS["qwen2-7b"]
    st = FocusStats.from_schedule(model, 11648, (3, 6), (0.4, 0.3), similar_fraction=[0.1, 0.2, 0.3, 0.4, 0.5])
    kept = np.asarray(st.kept_tokens)
    # layer 3: attention (q_proj, query, o_proj) sees 11648, the MLP the 4659 SEC keeps
    assert kept[3].tolist() == [11648, 11648, 11648, 4659, 4659]
    assert kept[27].tolist() == [3494] * 5
    assert np.asarray(st.zero_vectors)[27, 4] == (11648 - 3494) * 592
    assert np.isclose(np.asarray(st.similar_vectors)[27, 1], 0.2 * 3494 * 112)
    with pytest.raises(ValueError, match="strictly increasing"):
        FocusStats.from_schedule(model, 100, (5, 3), (0.5, 0.4))
    with pytest.raises(ValueError, match="different lengths"):
        FocusStats.from_schedule(model, 100, (5,), (0.5, 0.4))


def test_sparsity_curve():
    curve = SparsityCurve((0.8, 0.9, 1.0), (0.6, 0.4, 0.0))
    assert float(curve(0.85)) == pytest.approx(0.5)
    assert float(curve(0.5)) == pytest.approx(0.6)  # constant outside
    assert float(jax.grad(curve)(0.95)) == pytest.approx(-4.0)
    with pytest.raises(ValueError, match="increase"):
        SparsityCurve((0.9, 0.8), (0.1, 0.2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SparsityCurve((0.8, 0.9), (0.1, 1.2))


def test_validation_errors():
    model = KNOWN_MODELS["qwen2-7b"]
    with pytest.raises(ValueError, match="adaptiv_sparsity"):
        cm.simulate(cm.adaptiv(), cm.Workload(model, 100.0, adaptiv_sparsity=1.5))
    with pytest.raises(ValueError, match="visual_tokens"):
        cm.simulate(cm.dense(), cm.Workload(model, 0.0))
    with pytest.raises(ValueError, match="needs Focus statistics"):
        cm.simulate(cm.focus(), cm.Workload(model, 100.0))
    with pytest.raises(ValueError, match="m_tile"):
        cm.focus(m_tile=-4)
    with pytest.raises(ValueError, match="unknown accelerator kind"):
        cm.Hardware(kind="tpu")
    with pytest.raises(ValueError, match="dataflow"):
        cm.dense(dataflow="xy")
    with pytest.raises(ValueError, match="weight-stationary"):
        cm.simulate(cm.dense(dataflow="os"), cm.Workload(model, 100.0), mode="paper")
    with pytest.raises(ValueError, match="kept_tokens"):
        bad = FocusStats(np.full((28, 5), 200.0), np.zeros((28, 5)), np.zeros((28, 5)), (112, 112, 112, 112, 592))
        cm.simulate(cm.focus(), cm.Workload(model, 100.0, focus=bad))


# ------------------------------------------------------------------------------------------
# corrected-mode additions

MODEL = KNOWN_MODELS["qwen2-7b"]


def test_other_dataflows_run_in_corrected_mode():
    wl = cm.Workload(MODEL, 2048.0)
    reports = {df: cm.simulate(cm.dense(dataflow=df), wl, mode="corrected") for df in cm.DATAFLOWS}
    # same work, different mapping: within a factor of 2 of each other
    times = [r.time_s for r in reports.values()]
    assert max(times) / min(times) < 2


def test_roofline_binds_when_bandwidth_is_scarce():
    wl = cm.Workload(MODEL, 2048.0)
    slow = cm.dense(dram_bandwidth_Bps=1e9)
    report = cm.simulate(slow, wl, mode="corrected")
    assert report.stall_cycles > 0
    assert report.time_s >= report.dram_bytes / 1e9 * (1 - 1e-12)
    fast = cm.simulate(cm.dense(), wl, mode="corrected")
    assert fast.stall_cycles == 0  # the paper's prefill is compute-bound at 64 GiB/s


def test_text_and_decode_tokens():
    base = cm.Workload(MODEL, 1024.0)
    prefill = cm.simulate(cm.dense(), base, mode="corrected")
    text = cm.simulate(cm.dense(), base.replace(text_tokens=128.0), mode="corrected")
    assert text.total_cycles > prefill.total_cycles
    decode = cm.simulate(cm.dense(), base.replace(decode_tokens=4), mode="corrected")
    weight_bytes = sum(g.in_features * g.out_features for g in MODEL.linear_gemms()) * 2 * MODEL.num_layers
    # every step streams every weight once and reads the KV cache
    assert decode.dram_bytes - prefill.dram_bytes >= 4 * weight_bytes
    kv_read = 2 * MODEL.num_kv_heads * MODEL.head_dim * 2 * MODEL.num_layers * sum(1024 + i + 1 for i in range(4))
    assert decode.dram_bytes - prefill.dram_bytes >= 4 * weight_bytes + kv_read


def test_sec_shrinks_the_kv_cache_in_decode():
    stats = FocusStats.from_schedule(MODEL, 4096.0, (3,), (0.25,), similar_fraction=0.0)
    wl = cm.Workload(MODEL, 4096.0, focus=stats, decode_tokens=8)
    hw = cm.sec_only()
    with_decode = cm.simulate(hw, wl, mode="corrected")
    without = cm.simulate(hw, wl.replace(decode_tokens=0), mode="corrected")
    dense_decode = cm.simulate(cm.dense(), cm.Workload(MODEL, 4096.0, decode_tokens=8), mode="corrected")
    dense_prefill = cm.simulate(cm.dense(), cm.Workload(MODEL, 4096.0), mode="corrected")
    assert with_decode.dram_bytes - without.dram_bytes < dense_decode.dram_bytes - dense_prefill.dram_bytes


def test_array_scaling_and_per_mac_energy():
    wl = cm.Workload(MODEL, 1024.0)
    small = cm.simulate(cm.dense(), wl, mode="corrected")
    big = cm.simulate(cm.dense(rows=64, cols=64), wl, mode="corrected")
    sa = cm.dense().array_power_mW()
    # core power grows with the array (4x the PEs); buffer leakage with the wider blocks
    leak = {
        n: sum(sram_figures(hw, "cacti").power_mW.values())
        for n, hw in (("small", cm.dense()), ("big", cm.dense(rows=64, cols=64)))
    }
    assert math.isclose(
        big.onchip_power_mW - small.onchip_power_mW, 3 * sa + leak["big"] - leak["small"], rel_tol=1e-12
    )
    assert big.compute_cycles < small.compute_cycles
    per_mac = cm.simulate(cm.dense(), wl, mode="corrected", core_energy="per_mac")
    other = cm.dense().core_power_mW() - sa
    expected = other * per_mac.time_s + per_mac.macs * sa / (1024 * 500e6)
    assert math.isclose(per_mac.energy_core_mJ, expected, rel_tol=1e-12)
    assert per_mac.energy_core_mJ < small.energy_core_mJ  # an array idle in fill/drain costs less


def test_corrected_attention_traffic_uses_kept_tokens():
    stats = FocusStats.from_schedule(MODEL, 4096.0, (3,), (0.25,), similar_fraction=0.3)
    wl = cm.Workload(MODEL, 4096.0, focus=stats)
    with jax.enable_x64(True):
        _, attention = prefill_costs(cm.focus(), wl, EXACT, ALL)
    dram = np.asarray(attention.traffic.dram)
    # every layer after the SEC layer moves less attention traffic than before it
    assert np.all(dram[4:] < dram[0]) and np.all(dram > 0)
