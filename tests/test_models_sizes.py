"""Full-size configs (0.5B, 7B) checked without weights: jax.eval_shape, parameter counts."""

import json

import jax.numpy as jnp
import pytest
from typer.testing import CliRunner

from focus_jax import paper_config
from focus_jax.cli import app
from focus_jax.models.llava_onevision import sizes


def _formula_count(cfg) -> int:
    """Parameters from the architecture's dimensions, written out independently of the code."""
    v, t = cfg.vision, cfg.text
    d, f = v.hidden_size, v.intermediate_size
    vision = (
        3 * 14 * 14 * d
        + d
        + v.num_patches * d
        + v.num_layers * (4 * (d * d + d) + 2 * 2 * d + d * f + f + f * d + d)
        + 2 * d
    )
    projector = d * t.hidden_size + t.hidden_size + t.hidden_size**2 + t.hidden_size
    h, kv, i = t.hidden_size, t.kv_size, t.intermediate_size
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    language = t.vocab_size * h + t.num_layers * layer + h + (0 if t.tie_word_embeddings else h * t.vocab_size)
    return vision + projector + t.hidden_size + language


@pytest.mark.parametrize("name, published", [("0.5b", 0.89e9), ("7b", 8.03e9)])
def test_parameter_counts(name, published):
    cfg = sizes.load_config(name)
    counts = sizes.parameter_count(cfg)
    print(name, counts)
    assert counts["total"] == _formula_count(cfg)
    assert abs(counts["total"] - published) / published < 0.01  # the model cards' sizes


@pytest.mark.parametrize("name", ["0.5b", "7b"])
def test_full_size_forward_traces_with_eval_shape(name):
    cfg = sizes.load_config(name)
    dense = sizes.check_shapes(cfg, frames=8)
    focus = sizes.check_shapes(cfg, frames=8, focus=paper_config("llava_onevision"))
    assert dense.shape == focus.shape == (1, 1, cfg.text.vocab_size) and dense.dtype == jnp.bfloat16


def test_activation_memory_estimate():
    cfg = sizes.load_config("7b")
    m8, m32 = sizes.activation_memory(cfg, 8), sizes.activation_memory(cfg, 32)
    assert m32.tokens == 32 * 196 + 1 + 64
    assert m32.kv_cache == 28 * m32.tokens * 2 * 4 * 128 * 2  # layers x tokens x (k, v) x kv heads x head_dim x bf16
    assert m32.total > m8.total
    focus = sizes.activation_memory(cfg, 32, focus=paper_config("llava_onevision"))
    assert focus.kv_cache < 0.35 * m32.kv_cache  # later layers cache the kept tokens only


def test_model_info_command():
    result = CliRunner().invoke(app, ["model-info", "0.5b", "--frames", "4", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["parameters"]["total"] == sizes.parameter_count(sizes.load_config("0.5b"))["total"]
    assert info["tokens"] == 4 * 196 + 1 + 64
    bad = CliRunner().invoke(app, ["model-info", "13b"])
    assert bad.exit_code == 1 and "unknown model config" in bad.output
