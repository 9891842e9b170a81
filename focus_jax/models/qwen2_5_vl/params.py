"""Qwen2.5-VL checkpoints: ``config.json`` + safetensors <-> config and pytree.

Tensor names: the Hub layout (``visual.X``, ``model.X`` for the decoder, ``lm_head.weight``),
which transformers 5 also writes, is canonical; transformers' in-memory names
(``model.visual.X``, ``model.language_model.X``) are accepted too. ``config.json`` may
keep the decoder fields at the top level (the Hub's Qwen2.5-VL files, ``rope_scaling``
``{"type": "mrope", ...}``) or in ``text_config`` (transformers 5).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.models import checkpoint
from focus_jax.models.checkpoint import CheckpointError, KeyRule
from focus_jax.models.qwen2 import params as qwen2_params
from focus_jax.models.qwen2_5_vl.modeling import Qwen2_5_VLConfig, VisionConfig, init_params
from focus_jax.models.safetensors_io import read_checkpoint, write_checkpoint

__all__ = [
    "abstract_params",
    "canonical_key",
    "config_from_hf",
    "config_to_hf",
    "key_rules",
    "load",
    "read_config",
    "save",
]

_CANONICAL = [
    (re.compile(r"^model\.visual\."), "visual."),
    (re.compile(r"^model\.language_model\."), "model."),
]
_BLOCK = {  # HF submodule -> pytree name (all linears have a bias)
    "attn.qkv": "qkv",
    "attn.proj": "proj",
    "mlp.gate_proj": "gate",
    "mlp.up_proj": "up",
    "mlp.down_proj": "down",
}
_TEXT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "rope_theta",
    "rope_parameters",
    "rope_scaling",
    "rms_norm_eps",
    "max_position_embeddings",
    "hidden_act",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "use_sliding_window",
    "tie_word_embeddings",
)


def canonical_key(key: str) -> str:
    """The canonical (Hub) name of a checkpoint tensor."""
    for pattern, replacement in _CANONICAL:
        if pattern.search(key):
            return pattern.sub(replacement, key, count=1)
    return key


def _text_dict(d: dict) -> tuple[dict, tuple[int, ...]]:
    """The decoder fields as a ``qwen2`` text config, and the ``mrope_section``."""
    text = dict(d.get("text_config") or {k: d[k] for k in _TEXT_FIELDS if k in d})
    rope = dict(text.pop("rope_parameters", None) or text.pop("rope_scaling", None) or {})
    section = rope.pop("mrope_section", None)
    if section is None:
        raise CheckpointError("config.json: the decoder's rope parameters have no mrope_section")
    if rope.pop("type", rope.get("rope_type", "default")) in ("mrope", "default"):
        rope["rope_type"] = "default"
    rope.setdefault("rope_theta", text.pop("rope_theta", 1_000_000.0))
    text.update(model_type="qwen2", rope_parameters=rope)
    return text, tuple(int(v) for v in section)


def config_from_hf(d: dict) -> Qwen2_5_VLConfig:
    """``Qwen2_5_VLConfig`` from a transformers / Hub ``config.json`` dict.

    Raises:
        CheckpointError: not a Qwen2.5-VL config, or unsupported values (named).
    """
    if d.get("model_type") != "qwen2_5_vl":
        raise CheckpointError(f"config.json has model_type {d.get('model_type')!r}; expected 'qwen2_5_vl'")
    text, section = _text_dict(d)
    tie = bool(d.get("tie_word_embeddings", False) or text.get("tie_word_embeddings", False))
    v = d.get("vision_config") or {}
    vrope = v.get("rope_parameters") or {}
    try:
        vision = VisionConfig(
            depth=v.get("depth", 32),
            hidden_size=v.get("hidden_size", 3584),
            intermediate_size=v.get("intermediate_size", 3420),
            num_heads=v.get("num_heads", 16),
            in_channels=v.get("in_channels", v.get("in_chans", 3)),
            patch_size=v.get("patch_size", 14),
            temporal_patch_size=v.get("temporal_patch_size", 2),
            spatial_merge_size=v.get("spatial_merge_size", 2),
            window_size=v.get("window_size", 112),
            out_hidden_size=v.get("out_hidden_size", 3584),
            fullatt_block_indexes=tuple(v.get("fullatt_block_indexes", (7, 15, 23, 31))),
            tokens_per_second=v.get("tokens_per_second", 4),
            hidden_act=v.get("hidden_act", "silu"),
            rope_theta=float(vrope.get("rope_theta", 10000.0)),
        )
        lm = dataclasses.replace(qwen2_params.config_from_hf(text, tie_word_embeddings=tie), mrope_section=section)
        return Qwen2_5_VLConfig(
            vision=vision,
            text=lm,
            image_token_id=d.get("image_token_id", 151655),
            video_token_id=d.get("video_token_id", 151656),
            vision_start_token_id=d.get("vision_start_token_id", 151652),
            vision_end_token_id=d.get("vision_end_token_id", 151653),
        )
    except ValueError as exc:
        raise CheckpointError(f"config.json: {exc}") from None


def config_to_hf(cfg: Qwen2_5_VLConfig) -> dict:
    """transformers ``config.json`` dict for ``cfg`` (the layout transformers 5 writes)."""
    text = qwen2_params.config_to_hf(cfg.text)
    text.update(model_type="qwen2_5_vl_text")
    text["rope_parameters"] = dict(text["rope_parameters"], mrope_section=list(cfg.text.mrope_section))
    v = cfg.vision
    vision = {
        "model_type": "qwen2_5_vl_vision",
        "depth": v.depth,
        "hidden_size": v.hidden_size,
        "intermediate_size": v.intermediate_size,
        "num_heads": v.num_heads,
        "in_channels": v.in_channels,
        "patch_size": v.patch_size,
        "temporal_patch_size": v.temporal_patch_size,
        "spatial_merge_size": v.spatial_merge_size,
        "window_size": v.window_size,
        "out_hidden_size": v.out_hidden_size,
        "fullatt_block_indexes": list(v.fullatt_block_indexes),
        "tokens_per_second": v.tokens_per_second,
        "hidden_act": v.hidden_act,
        "rope_parameters": {"rope_type": "axial", "rope_theta": v.rope_theta},
    }
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "text_config": text,
        "vision_config": vision,
        "image_token_id": cfg.image_token_id,
        "video_token_id": cfg.video_token_id,
        "vision_start_token_id": cfg.vision_start_token_id,
        "vision_end_token_id": cfg.vision_end_token_id,
        "tie_word_embeddings": cfg.text.tie_word_embeddings,
    }


def key_rules(cfg: Qwen2_5_VLConfig) -> list[KeyRule]:
    """Every tensor of a Qwen2.5-VL checkpoint (canonical names)."""
    v = cfg.vision
    shape = (v.hidden_size, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size)
    rules = [KeyRule("visual.patch_embed.proj.weight", ("vision", "patch_embed", "w"), kind="conv", shape=shape)]
    for i in range(v.depth):
        pre, path = f"visual.blocks.{i}.", ("vision", "blocks")
        rules += [
            KeyRule(pre + "norm1.weight", path + ("norm1",), i),
            KeyRule(pre + "norm2.weight", path + ("norm2",), i),
        ]
        for hf, name in _BLOCK.items():
            rules += [
                KeyRule(f"{pre}{hf}.weight", path + (name, "w"), i, "linear"),
                KeyRule(f"{pre}{hf}.bias", path + (name, "b"), i),
            ]
    merger = ("vision", "merger")
    rules.append(KeyRule("visual.merger.ln_q.weight", merger + ("norm",)))
    for hf, name in (("mlp.0", "fc1"), ("mlp.2", "fc2")):
        rules += [
            KeyRule(f"visual.merger.{hf}.weight", merger + (name, "w"), kind="linear"),
            KeyRule(f"visual.merger.{hf}.bias", merger + (name, "b")),
        ]
    return rules + qwen2_params.key_rules(cfg.text, "", ("language",))


def abstract_params(cfg: Qwen2_5_VLConfig, dtype=jnp.float32) -> dict:
    """Shapes and dtypes of the parameter pytree (``jax.eval_shape``; no memory)."""
    return jax.eval_shape(lambda: init_params(cfg, jax.random.key(0), dtype))


def read_config(directory: str | Path) -> Qwen2_5_VLConfig:
    """Parse ``directory/config.json``.

    Raises:
        FileNotFoundError: no such directory or no ``config.json``.
        CheckpointError: unreadable or unsupported config.
    """
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no config.json")
    try:
        return config_from_hf(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None


def load(directory: str | Path, dtype=jnp.float32) -> tuple[Qwen2_5_VLConfig, dict]:
    """Config and parameters (numpy arrays in ``dtype``) of a Hugging Face directory.

    Raises:
        FileNotFoundError: missing directory or ``config.json``.
        CheckpointError: pickled weights, unknown/missing/mis-shaped tensors (named),
            unsupported config.
    """
    cfg = read_config(directory)
    tensors: dict[str, np.ndarray] = {}
    for key, array in read_checkpoint(directory).items():
        name = canonical_key(key)
        if name in tensors:
            raise CheckpointError(f"tensors {key!r} and another name both map to {name!r}")
        tensors[name] = array
    if cfg.text.tie_word_embeddings and "lm_head.weight" in tensors:
        embed = tensors.get("model.embed_tokens.weight")
        if embed is None or not np.array_equal(np.asarray(tensors["lm_head.weight"]), np.asarray(embed)):
            raise CheckpointError(
                "'lm_head.weight' differs from the embeddings, but the config ties them (tie_word_embeddings)"
            )
        del tensors["lm_head.weight"]
    return cfg, checkpoint.load_tensors(tensors, key_rules(cfg), abstract_params(cfg, dtype), dtype)


def save(directory: str | Path, cfg: Qwen2_5_VLConfig, params: dict, max_shard_bytes: int = 4 << 30) -> list[Path]:
    """Write ``config.json`` and safetensors weights in the Hub layout (transformers loads them)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = checkpoint.export_tensors(params, key_rules(cfg))
    config = directory / "config.json"
    config.write_text(json.dumps(config_to_hf(cfg), indent=2))
    return write_checkpoint(directory, tensors, max_shard_bytes) + [config]
