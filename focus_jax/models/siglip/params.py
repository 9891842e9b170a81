"""SigLIP vision tower: Hugging Face config and checkpoint keys <-> ``modeling`` pytree.

Checkpoint names are relative to the tower (``embeddings.patch_embedding.weight``,
``encoder.layers.{i}.self_attn.q_proj.weight``, ...); the caller adds its prefix
(``vision_tower.`` inside LLaVA-OneVision).
"""

from __future__ import annotations

from focus_jax.errors import InputError
from focus_jax.inputs.jsonfile import field
from focus_jax.models.checkpoint import CheckpointError, KeyRule
from focus_jax.models.siglip.modeling import SiglipVisionConfig

__all__ = ["key_rules", "config_from_hf", "config_to_hf"]

_LAYER = {  # HF submodule -> (pytree name, has bias)
    "layer_norm1": "ln1",
    "self_attn.q_proj": "q",
    "self_attn.k_proj": "k",
    "self_attn.v_proj": "v",
    "self_attn.out_proj": "o",
    "layer_norm2": "ln2",
    "mlp.fc1": "fc1",
    "mlp.fc2": "fc2",
}


def _norm(key: str, path: tuple, layer=None) -> list[KeyRule]:
    return [KeyRule(f"{key}.weight", path + ("scale",), layer), KeyRule(f"{key}.bias", path + ("bias",), layer)]


def _linear(key: str, path: tuple, layer=None) -> list[KeyRule]:
    return [KeyRule(f"{key}.weight", path + ("w",), layer, "linear"), KeyRule(f"{key}.bias", path + ("b",), layer)]


def key_rules(cfg: SiglipVisionConfig, prefix: str = "", path: tuple = ()) -> list[KeyRule]:
    """Every checkpoint tensor of a SigLIP vision tower with ``cfg``.

    Args:
        prefix: prepended to every Hugging Face name.
        path: prepended to every pytree path.
    """
    d, c, p = cfg.hidden_size, cfg.num_channels, cfg.patch_size
    rules = [
        KeyRule(
            f"{prefix}embeddings.patch_embedding.weight", path + ("patch_embed", "w"), kind="conv", shape=(d, c, p, p)
        ),
        KeyRule(f"{prefix}embeddings.patch_embedding.bias", path + ("patch_embed", "b")),
        KeyRule(f"{prefix}embeddings.position_embedding.weight", path + ("pos_embed",)),
    ]
    for i in range(cfg.num_layers):
        for hf, name in _LAYER.items():
            make = _norm if name.startswith("ln") else _linear
            rules += make(f"{prefix}encoder.layers.{i}.{hf}", path + ("layers", name), i)
    rules += _norm(f"{prefix}post_layernorm", path + ("post_ln",))
    if cfg.use_head:
        head = path + ("head",)
        rules += [
            KeyRule(f"{prefix}head.probe", head + ("probe",)),
            KeyRule(f"{prefix}head.attention.in_proj_weight", head + ("in_proj", "w"), kind="linear"),
            KeyRule(f"{prefix}head.attention.in_proj_bias", head + ("in_proj", "b")),
        ]
        rules += _linear(f"{prefix}head.attention.out_proj", head + ("out_proj",))
        rules += _norm(f"{prefix}head.layernorm", head + ("layernorm",))
        rules += _linear(f"{prefix}head.mlp.fc1", head + ("fc1",))
        rules += _linear(f"{prefix}head.mlp.fc2", head + ("fc2",))
    return rules


def _int_field(d: dict, name: str, default, limit: str = "WIDTH") -> int:
    value = d.get(name, default)
    if isinstance(value, (list, tuple)):  # transformers allows (h, w) sizes; only squares are supported
        if len(value) != 2 or len(set(map(repr, value))) != 1:
            raise CheckpointError(f"vision_config.{name} = {value}: only square images/patches are supported")
        value = value[0]
    return field({name: value}, name, default, "vision_config", "int", lo=1, hi_name=limit)


def config_from_hf(d: dict) -> SiglipVisionConfig:
    """``SiglipVisionConfig`` from a transformers ``vision_config`` dict (its defaults for
    missing fields), every field type- and range-checked.

    Raises:
        CheckpointError: not a SigLIP vision config, or a field of the wrong type, out of
            range or unsupported (named).
    """
    what = "vision_config"
    if not isinstance(d, dict):
        raise CheckpointError(f"config.json: {what} must be a JSON object, got {type(d).__name__}")
    try:
        model_type = field(d, "model_type", "siglip_vision_model", what, "str")
        if model_type != "siglip_vision_model":
            raise CheckpointError(
                f"vision_config.model_type is {model_type!r}; only 'siglip_vision_model' is supported"
            )
        return SiglipVisionConfig(
            hidden_size=_int_field(d, "hidden_size", 768),
            intermediate_size=_int_field(d, "intermediate_size", 3072),
            num_layers=_int_field(d, "num_hidden_layers", 12, "LAYERS"),
            num_heads=_int_field(d, "num_attention_heads", 12),
            image_size=_int_field(d, "image_size", 224, "IMAGE_SIDE"),
            patch_size=_int_field(d, "patch_size", 16, "IMAGE_SIDE"),
            num_channels=_int_field(d, "num_channels", 3),
            layer_norm_eps=field(d, "layer_norm_eps", 1e-6, what, "float", lo=0.0),
            hidden_act=field(d, "hidden_act", "gelu_pytorch_tanh", what, "str"),
            use_head=field(d, "vision_use_head", True, what, "bool"),
        )
    except CheckpointError:
        raise
    except InputError as exc:
        raise CheckpointError(f"config.json: {exc}") from None
    except ValueError as exc:
        raise CheckpointError(f"config.json: vision_config: {exc}") from None


def config_to_hf(cfg: SiglipVisionConfig) -> dict:
    """transformers ``vision_config`` dict for ``cfg``."""
    return {
        "model_type": "siglip_vision_model",
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "image_size": cfg.image_size,
        "patch_size": cfg.patch_size,
        "num_channels": cfg.num_channels,
        "layer_norm_eps": cfg.layer_norm_eps,
        "hidden_act": cfg.hidden_act,
        "vision_use_head": cfg.use_head,
        "attention_dropout": 0.0,
    }
