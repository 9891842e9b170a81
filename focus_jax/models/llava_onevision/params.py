"""LLaVA-OneVision checkpoints: ``config.json`` + safetensors <-> config and pytree.

Tensor names come in three layouts, all accepted on load and mapped to one canonical
form before the explicit rules apply:

==============================  ===================================  =====================
Hub checkpoints (llava-hf/*)    written by transformers 5            canonical
==============================  ===================================  =====================
``language_model.model.X``      ``language_model.model.X``           ``language_model.model.X``
``language_model.lm_head.*``    ``language_model.lm_head.*``         ``language_model.lm_head.*``
``vision_tower.vision_model.X`` ``vision_tower.X``                   ``vision_tower.X``
``multi_modal_projector.X``     ``multi_modal_projector.X``          same
``image_newline``               ``image_newline``                    same
==============================  ===================================  =====================

(plus transformers' in-memory names ``model.language_model.X``, ``lm_head.weight``,
``model.vision_tower.X``, ... ). ``save`` writes the Hub layout, which every transformers
version loads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.errors import InputError
from focus_jax.inputs.jsonfile import field, read_json_object
from focus_jax.inputs.model_dir import check_model_dir
from focus_jax.models import checkpoint
from focus_jax.models.checkpoint import CheckpointError, KeyRule
from focus_jax.models.llava_onevision.modeling import LlavaOnevisionConfig, init_params
from focus_jax.models.qwen2 import params as qwen2_params
from focus_jax.models.safetensors_io import read_checkpoint, write_checkpoint
from focus_jax.models.siglip import params as siglip_params

__all__ = ["config_from_hf", "config_to_hf", "key_rules", "canonical_key", "load", "save", "abstract_params"]

_CANONICAL = [  # (pattern, replacement), first match wins
    (re.compile(r"^model\.language_model\."), "language_model.model."),
    (re.compile(r"^lm_head\."), "language_model.lm_head."),
    (re.compile(r"^(model\.)?vision_tower\.vision_model\."), "vision_tower."),
    (re.compile(r"^model\.vision_tower\."), "vision_tower."),
    (re.compile(r"^model\.multi_modal_projector\."), "multi_modal_projector."),
    (re.compile(r"^model\.image_newline$"), "image_newline"),
]
_HUB_VISION_PREFIX = "vision_tower.vision_model."


def canonical_key(key: str) -> str:
    """The canonical name of a checkpoint tensor (see the module docstring)."""
    for pattern, replacement in _CANONICAL:
        if pattern.search(key):
            return pattern.sub(replacement, key, count=1)
    return key


def _pinpoints(d: dict):
    value = d.get("image_grid_pinpoints")
    if not value:
        return LlavaOnevisionConfig.image_grid_pinpoints
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise CheckpointError("config.json: image_grid_pinpoints must be a list of [height, width] pairs")
    what = "config.json: image_grid_pinpoints"
    return tuple(tuple(field({"side": v}, "side", None, what, "int", lo=1, hi=1 << 16) for v in p) for p in value)


def config_from_hf(d: dict) -> LlavaOnevisionConfig:
    """``LlavaOnevisionConfig`` from a transformers ``config.json`` dict, every field
    type- and range-checked (sizes against ``focus_jax.inputs.limits``).

    Raises:
        CheckpointError: not a LLaVA-OneVision config, or a field of the wrong type, out
            of range or unsupported (named).
    """
    what = "config.json"
    if not isinstance(d, dict):
        raise CheckpointError(f"config.json must hold a JSON object, got {type(d).__name__}")
    model_type = d.get("model_type")
    if model_type != "llava_onevision":
        raise CheckpointError(
            f"config.json has model_type {model_type!r}; focus-jax loads 'llava_onevision' checkpoints"
        )
    try:
        text = dict(field(d, "text_config", {}, what, "dict"))
        tie = field(d, "tie_word_embeddings", False, what, "bool") or field(
            text, "tie_word_embeddings", False, "text_config", "bool"
        )
        vision = field(d, "vision_config", {}, what, "dict") or {  # transformers' default tower for this model type
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "patch_size": 14,
            "image_size": 384,
            "num_hidden_layers": 26,
            "num_attention_heads": 16,
            "vision_use_head": False,
        }
        layer = d.get("vision_feature_layer", -1)
        layers = tuple(layer) if isinstance(layer, list) else (layer,)
        for item in layers:
            field({"vision_feature_layer": item}, "vision_feature_layer", None, what, "int", lo=-(1 << 16), hi=1 << 16)
        token = lambda keys, default: field(d, keys[0], d.get(keys[1], default), what, "int", lo=0)
        return LlavaOnevisionConfig(
            vision=siglip_params.config_from_hf(vision),
            text=qwen2_params.config_from_hf(text, tie_word_embeddings=tie),
            image_token_id=token(("image_token_index", "image_token_id"), 151646),
            video_token_id=token(("video_token_index", "video_token_id"), 151647),
            projector_hidden_act=field(d, "projector_hidden_act", "gelu", what, "str"),
            vision_feature_layer=layers,
            vision_feature_select_strategy=field(d, "vision_feature_select_strategy", "full", what, "str"),
            multimodal_projector_bias=field(d, "multimodal_projector_bias", True, what, "bool"),
            image_grid_pinpoints=_pinpoints(d),
            vision_aspect_ratio=field(d, "vision_aspect_ratio", "anyres_max_9", what, "str"),
        )
    except CheckpointError:
        raise
    except InputError as exc:
        raise CheckpointError(str(exc)) from None
    except ValueError as exc:
        raise CheckpointError(f"config.json: {exc}") from None


def config_to_hf(cfg: LlavaOnevisionConfig) -> dict:
    """transformers ``config.json`` dict for ``cfg``."""
    layer = cfg.vision_feature_layer
    return {
        "architectures": ["LlavaOnevisionForConditionalGeneration"],
        "model_type": "llava_onevision",
        "vision_config": siglip_params.config_to_hf(cfg.vision),
        "text_config": qwen2_params.config_to_hf(cfg.text),
        "image_token_index": cfg.image_token_id,
        "video_token_index": cfg.video_token_id,
        "projector_hidden_act": cfg.projector_hidden_act,
        "vision_feature_layer": layer[0] if len(layer) == 1 else list(layer),
        "vision_feature_select_strategy": cfg.vision_feature_select_strategy,
        "multimodal_projector_bias": cfg.multimodal_projector_bias,
        "image_grid_pinpoints": [list(p) for p in cfg.image_grid_pinpoints],
        "vision_aspect_ratio": cfg.vision_aspect_ratio,
        "tie_word_embeddings": cfg.text.tie_word_embeddings,
    }


def key_rules(cfg: LlavaOnevisionConfig, lm_head: bool | None = None) -> list[KeyRule]:
    """Every tensor of a LLaVA-OneVision checkpoint (canonical names)."""
    rules = siglip_params.key_rules(cfg.vision, "vision_tower.", ("vision",))
    for name in ("linear_1", "linear_2"):
        rules.append(KeyRule(f"multi_modal_projector.{name}.weight", ("projector", name, "w"), kind="linear"))
        if cfg.multimodal_projector_bias:
            rules.append(KeyRule(f"multi_modal_projector.{name}.bias", ("projector", name, "b")))
    rules.append(KeyRule("image_newline", ("image_newline",)))
    rules += qwen2_params.key_rules(cfg.text, "language_model.", ("language",), lm_head=lm_head)
    return rules


def abstract_params(cfg: LlavaOnevisionConfig, dtype=jnp.float32) -> dict:
    """Shapes and dtypes of the parameter pytree (``jax.eval_shape``; no memory)."""
    return jax.eval_shape(lambda: init_params(cfg, jax.random.key(0), dtype))


def read_config(directory: str | Path) -> LlavaOnevisionConfig:
    """Parse ``directory/config.json`` (the directory checked by
    ``focus_jax.inputs.check_model_dir``: no custom code).

    Raises:
        InputError: no such directory, a file, no ``config.json``, custom code, or a
            ``config.json`` that is not UTF-8 JSON of an object.
        CheckpointError: unsupported or malformed config (field named).
    """
    directory = check_model_dir(directory)
    return config_from_hf(read_json_object(directory / "config.json"))


def load(directory: str | Path, dtype=jnp.float32) -> tuple[LlavaOnevisionConfig, dict]:
    """Config and parameters (numpy arrays in ``dtype``) of a Hugging Face directory.

    Raises:
        InputError: as ``read_config``.
        CheckpointError: pickled weights, unknown/missing/mis-shaped/non-float/non-finite
            tensors (named), unsupported config, a non-float ``dtype``.
    """
    checkpoint.param_dtype(dtype)
    cfg = read_config(directory)
    raw = read_checkpoint(directory)
    tensors: dict[str, np.ndarray] = {}
    for key, array in raw.items():
        name = canonical_key(key)
        if name in tensors:
            raise CheckpointError(f"tensors {key!r} and another name both map to {name!r}")
        tensors[name] = array
    head_key = "language_model.lm_head.weight"
    if cfg.text.tie_word_embeddings and head_key in tensors:
        embed = tensors.get("language_model.model.embed_tokens.weight")
        if embed is None or not np.array_equal(np.asarray(tensors[head_key]), np.asarray(embed)):
            raise CheckpointError(
                f"{head_key!r} differs from the embeddings, but the config ties them (tie_word_embeddings)"
            )
        del tensors[head_key]
    params = checkpoint.load_tensors(tensors, key_rules(cfg), abstract_params(cfg, dtype), dtype)
    return cfg, params


def save(directory: str | Path, cfg: LlavaOnevisionConfig, params: dict, max_shard_bytes: int = 4 << 30) -> list[Path]:
    """Write ``config.json`` and safetensors weights in the Hub layout (transformers loads them).

    Returns the files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = checkpoint.export_tensors(params, key_rules(cfg))
    tensors = {
        (_HUB_VISION_PREFIX + k[len("vision_tower.") :] if k.startswith("vision_tower.") else k): v
        for k, v in tensors.items()
    }
    config = directory / "config.json"
    config.write_text(json.dumps(config_to_hf(cfg), indent=2))
    return write_checkpoint(directory, tensors, max_shard_bytes) + [config]
