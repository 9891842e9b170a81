"""Checkpoint loading: safetensors only, explicit key rules, every error path named."""

import json
import shutil

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

from focus_jax.errors import InputError
from focus_jax.models.checkpoint import CheckpointError
from focus_jax.models.llava_onevision import LlavaOnevision
from focus_jax.models.llava_onevision import params as llava_params
from focus_jax.models.safetensors_io import read_checkpoint, read_safetensors, write_checkpoint, write_safetensors

import llava_tiny as tiny


@pytest.fixture
def ckpt(tmp_path):
    """A writable copy of the tiny checkpoint: ``(directory, tensors)``."""
    _, src = tiny.checkpoint()
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    return dst, {k: np.array(v) for k, v in read_checkpoint(dst).items()}


def _rewrite(directory, tensors):
    (directory / "model.safetensors").unlink()
    write_checkpoint(directory, tensors)


def test_missing_tensor_is_named(ckpt):
    directory, tensors = ckpt
    del tensors["language_model.model.layers.2.mlp.up_proj.weight"]
    _rewrite(directory, tensors)
    with pytest.raises(
        CheckpointError, match=r"missing tensor 'language_model\.model\.layers\.2\.mlp\.up_proj\.weight'"
    ):
        LlavaOnevision.from_pretrained(directory)


def test_unknown_tensor_is_named(ckpt):
    directory, tensors = ckpt
    tensors["language_model.model.layers.0.mlp.extra.weight"] = np.zeros(3, np.float32)
    _rewrite(directory, tensors)
    with pytest.raises(CheckpointError, match=r"does not use: 'language_model\.model\.layers\.0\.mlp\.extra\.weight'"):
        LlavaOnevision.from_pretrained(directory)


def test_shape_mismatch_is_named(ckpt):
    directory, tensors = ckpt
    tensors["multi_modal_projector.linear_1.weight"] = np.zeros((64, 31), np.float32)
    _rewrite(directory, tensors)
    with pytest.raises(
        CheckpointError,
        match=r"'multi_modal_projector\.linear_1\.weight' has shape \(64, 31\), the config implies \(64, 32\)",
    ):
        LlavaOnevision.from_pretrained(directory)


def test_config_that_disagrees_with_weights(ckpt):
    directory, _ = ckpt
    config = json.loads((directory / "config.json").read_text())
    config["text_config"]["intermediate_size"] = 96
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"mlp\.(gate|up|down)_proj\.weight' has shape"):
        LlavaOnevision.from_pretrained(directory)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(model_type="llava"), "model_type 'llava'"),
        (lambda c: c["text_config"].update(use_sliding_window=True), "sliding-window"),
        (
            lambda c: c["text_config"].update(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4}),
            "rope_type 'yarn'",
        ),
        (lambda c: c["vision_config"].update(model_type="clip_vision_model"), "siglip_vision_model"),
        (lambda c: c.update(vision_feature_select_strategy="cls"), "vision_feature_select_strategy"),
    ],
    ids=["model_type", "sliding_window", "rope", "vision_tower", "feature_strategy"],
)
def test_unsupported_config_is_refused(ckpt, edit, message):
    directory, _ = ckpt
    config = json.loads((directory / "config.json").read_text())
    edit(config)
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        LlavaOnevision.from_pretrained(directory)


def test_pickled_weights_are_refused(tmp_path):
    _, src = tiny.checkpoint()
    shutil.copy(src / "config.json", tmp_path / "config.json")
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin.*arbitrary code"):
        LlavaOnevision.from_pretrained(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        LlavaOnevision.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(InputError, match="config.json"):
        LlavaOnevision.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(llava_params.config_to_hf(tiny.jax_model().config)))
    with pytest.raises(CheckpointError, match="no model weights"):
        LlavaOnevision.from_pretrained(tmp_path)


def test_sharded_checkpoint_round_trip(ckpt):
    directory, tensors = ckpt
    (directory / "model.safetensors").unlink()
    files = write_checkpoint(directory, tensors, max_shard_bytes=200_000)
    shards = [f for f in files if f.suffix == ".safetensors"]
    assert len(shards) > 2 and (directory / "model.safetensors.index.json").is_file()
    loaded = LlavaOnevision.from_pretrained(directory)
    reference = tiny.jax_model()
    ids, mask, _, videos = tiny.video_prompts(1, seed=1)
    np.testing.assert_array_equal(
        np.asarray(loaded.params["language"]["layers"]["down"]["w"]),
        np.asarray(reference.params["language"]["layers"]["down"]["w"]),
    )
    shards[1].unlink()
    with pytest.raises(CheckpointError, match=f"names shard '{shards[1].name}', which is missing"):
        LlavaOnevision.from_pretrained(directory)


def test_bfloat16_checkpoints_without_torch(tmp_path):
    """transformers writes bfloat16 safetensors; our reader (no torch) loads them, our writer
    writes files safetensors' own torch loader reads back identically."""
    from safetensors.torch import load_file, save_file

    ref = {
        "a": torch.randn(3, 5, dtype=torch.bfloat16),
        "b": torch.randn(4, dtype=torch.float16),
        "c": torch.arange(6, dtype=torch.int64),
    }
    save_file(ref, tmp_path / "ref.safetensors")
    ours = read_safetensors(tmp_path / "ref.safetensors")
    assert ours["a"].dtype == np.dtype(ml_dtypes.bfloat16)
    for k, v in ref.items():
        np.testing.assert_array_equal(np.asarray(ours[k], np.float64), v.to(torch.float64).numpy())
    write_safetensors(tmp_path / "ours.safetensors", ours)
    back = load_file(tmp_path / "ours.safetensors")
    for k, v in ref.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)


def test_bfloat16_model_directory_loads(tmp_path):
    hf, _ = tiny.checkpoint()
    hf.to(torch.bfloat16).save_pretrained(tmp_path)
    hf.to(torch.float32)
    model = LlavaOnevision.from_pretrained(tmp_path, dtype=jnp.bfloat16)
    w = hf.model.language_model.layers[1].self_attn.q_proj.weight.detach().to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(np.asarray(model.params["language"]["layers"]["q"]["w"][1], np.float32), w.T)


def test_canonical_key_layouts():
    canon = llava_params.canonical_key
    assert (
        canon("vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight")
        == "vision_tower.encoder.layers.0.mlp.fc1.weight"
    )
    assert (
        canon("model.vision_tower.embeddings.patch_embedding.weight")
        == "vision_tower.embeddings.patch_embedding.weight"
    )
    assert (
        canon("model.language_model.layers.3.self_attn.q_proj.bias")
        == "language_model.model.layers.3.self_attn.q_proj.bias"
    )
    assert canon("lm_head.weight") == "language_model.lm_head.weight"
    assert canon("model.image_newline") == "image_newline"
    assert canon("model.multi_modal_projector.linear_2.bias") == "multi_modal_projector.linear_2.bias"
    assert canon("language_model.model.norm.weight") == "language_model.model.norm.weight"


def test_in_memory_key_layout_loads(ckpt):
    """transformers 5's module names (``model.language_model.*``, ``lm_head.weight``) load too."""
    directory, tensors = ckpt
    renamed = {}
    for k, v in tensors.items():
        k = k.replace("vision_tower.vision_model.", "vision_tower.")
        if k.startswith("language_model.model."):
            k = "model.language_model." + k[len("language_model.model.") :]
        elif k == "language_model.lm_head.weight":
            k = "lm_head.weight"
        elif not k.startswith("language_model"):
            k = "model." + k
        renamed[k] = v
    _rewrite(directory, renamed)
    loaded = LlavaOnevision.from_pretrained(directory)
    np.testing.assert_array_equal(
        np.asarray(loaded.params["image_newline"]), np.asarray(tiny.jax_model().params["image_newline"])
    )


def test_package_level_from_pretrained():
    import focus_jax
    from focus_jax import paper_config

    _, directory = tiny.checkpoint()
    focus = paper_config("llava_onevision").replace(sec_layers=(0,), sec_alphas=(0.5,))
    model = focus_jax.from_pretrained(directory, focus=focus, dtype=jnp.bfloat16)
    assert isinstance(model, LlavaOnevision) and model.focus == focus
    assert model.params["language"]["embed"].dtype == jnp.bfloat16
    with pytest.raises(TypeError, match="FocusConfig"):
        focus_jax.from_pretrained(directory, focus={"similarity_threshold": 0.9})
