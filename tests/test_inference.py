"""The library behind ``run``/``eval`` without a model: ``FocusConfig.load`` (Focus and
design files), ``FocusStats.project`` (the full-size projection) and ``patch_fates`` /
``plot_patch_fates`` on a hand-built trace."""

import json

import numpy as np
import pytest

import costmodel as cm
from focus_jax import FocusConfig, FocusTrace, GemmTrace, VisualGeometry
from focus_jax.design import Design, HardwareDesign
from focus_jax.errors import InputError
from focus_jax.trace import GEMM_NAMES
from focus_jax.viz import patch_fates, plot_patch_fates

CFG = FocusConfig(similarity_threshold=0.95, sec_layers=(1,), sec_alphas=(0.5,))


def test_focus_config_load_reads_focus_and_design_files(tmp_path):
    plain = tmp_path / "focus.json"
    plain.write_text(json.dumps(CFG.to_dict()))
    assert FocusConfig.load(plain) == CFG
    design = Design(CFG, HardwareDesign(m_tile=256)).save(tmp_path / "design.json")
    assert FocusConfig.load(design) == CFG
    for text, message in (("{", "is not a valid Focus configuration"), ("[1]", "must hold a JSON object, got a list"),
                          ('{"alpha": 1}', "unknown FocusConfig fields: alpha"),
                          ('{"format": "focus-design", "version": 7}', "not a focus-jax design file")):  # fmt: skip
        plain.write_text(text)
        with pytest.raises(InputError, match=message):
            FocusConfig.load(plain, label="--focus-config")
    with pytest.raises(InputError, match="^--focus-config file not found"):
        FocusConfig.load(tmp_path / "missing.json", label="--focus-config")


def test_projection_keeps_every_fraction():
    small = cm.ModelShape(
        "small", hidden_size=128, intermediate_size=384, num_heads=4, num_kv_heads=2, num_layers=4, head_dim=32
    )
    big = cm.KNOWN_MODELS["llava_onevision"]
    rng = np.random.default_rng(0)
    stats = cm.FocusStats.from_schedule(small, 128.0, (1, 3), (0.5, 0.25), similar_fraction=rng.uniform(0, 0.5, (4, 5)))
    same = stats.project(small, 128.0, 128.0)
    for name in ("kept_tokens", "zero_vectors", "similar_vectors"):
        np.testing.assert_allclose(getattr(same, name), getattr(stats, name))
    out = stats.project(big, 1568.0, 128.0)
    assert np.shape(out.kept_tokens) == (28, 5)
    v_small, v_big = np.asarray(stats.vectors_per_token, float), np.asarray(out.vectors_per_token, float)
    for layer in range(28):  # big layer l reads small layer l * 4 // 28 (same relative depth)
        src = layer * 4 // 28
        np.testing.assert_allclose(out.kept_tokens[layer] / 1568, stats.kept_tokens[src] / 128)
        np.testing.assert_allclose(
            out.similar_vectors[layer] / (1568 * v_big), stats.similar_vectors[src] / (128 * v_small)
        )
        np.testing.assert_allclose(out.zero_vectors[layer] / (1568 * v_big), stats.zero_vectors[src] / (128 * v_small))
    out.validate(big, 1568.0)


def _trace():
    """2 frames of 2 x 2 patches, 3 layers, V = 4; token 1 pruned at layer 1, token 6 at layer 2."""
    geo, layers, n, v = VisualGeometry(2, 2, 2), 3, 8, 4
    rng = np.random.default_rng(1)
    gemms = {}
    for layer in range(layers):
        for g in GEMM_NAMES:
            zero = np.zeros((n, v), bool)
            mlp = g in ("gate_proj", "down_proj")
            for token, cut in ((1, 1), (6, 2)):  # SEC after layer `cut`'s attention
                if layer > cut or (layer == cut and mlp):
                    zero[token] = True
            similar = rng.random((n, v)) < 0.4
            similar &= ~zero
            gemms[(layer, g)] = GemmTrace(zero, similar, np.zeros((n, v), np.int32))
    model = dict(num_layers=layers, hidden_size=128, intermediate_size=128, num_heads=4, num_kv_heads=2, head_dim=32)
    kept = np.array([[8, 8], [8, 7], [7, 6]])
    return FocusTrace(geo, CFG.replace(sec_layers=(1, 2), sec_alphas=(0.875, 0.75)), model, 5, kept, gemms)


def test_patch_fates_against_a_direct_count(tmp_path):
    trace = _trace()
    fates = patch_fates(trace)
    assert fates.pruned_at.tolist() == [-1, 1, -1, -1, -1, -1, 2, -1]
    for g in GEMM_NAMES:
        for token in range(8):
            gemms = [trace.gemms[(layer, g)] for layer in range(3)]
            fractions = [t.mask_similar[token].mean() for t in gemms if not t.mask_zero[token].all()]
            assert fates.merged[g][token] == pytest.approx(np.mean(fractions))
    path = plot_patch_fates(
        np.zeros((2, 16, 16, 3), np.uint8), trace, tmp_path / "fates.png", gemm="down_proj", title="t"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="gemm must be one of"):
        plot_patch_fates(np.zeros((2, 16, 16, 3), np.uint8), trace, tmp_path / "x.png", gemm="k_proj")
    with pytest.raises(ValueError, match="need 2 frames"):
        plot_patch_fates(np.zeros((3, 16, 16, 3), np.uint8), trace, tmp_path / "x.png")
