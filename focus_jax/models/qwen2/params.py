"""Qwen2 decoder: Hugging Face config and checkpoint keys <-> ``modeling`` pytree.

Checkpoint names are those of transformers' ``Qwen2ForCausalLM`` (``model.layers.{i}.
self_attn.q_proj.weight``, ..., ``lm_head.weight``) under a caller-given prefix
(``language_model.`` inside LLaVA-OneVision).
"""

from __future__ import annotations

from focus_jax.errors import InputError
from focus_jax.inputs.jsonfile import field
from focus_jax.models.checkpoint import CheckpointError, KeyRule
from focus_jax.models.qwen2.modeling import Qwen2Config

__all__ = ["key_rules", "config_from_hf", "config_to_hf"]

_LINEARS = {  # HF submodule -> (pytree name, bias)
    "self_attn.q_proj": ("q", True),
    "self_attn.k_proj": ("k", True),
    "self_attn.v_proj": ("v", True),
    "self_attn.o_proj": ("o", False),
    "mlp.gate_proj": ("gate", False),
    "mlp.up_proj": ("up", False),
    "mlp.down_proj": ("down", False),
}


def key_rules(cfg: Qwen2Config, prefix: str = "", path: tuple = (), lm_head: bool | None = None) -> list[KeyRule]:
    """Every checkpoint tensor of a Qwen2 causal LM with ``cfg``.

    Args:
        prefix, path: prepended to Hugging Face names / pytree paths.
        lm_head: whether ``lm_head.weight`` is a tensor of its own (default: untied).
    """
    lm_head = (not cfg.tie_word_embeddings) if lm_head is None else lm_head
    rules = [KeyRule(f"{prefix}model.embed_tokens.weight", path + ("embed",))]
    for i in range(cfg.num_layers):
        layer = f"{prefix}model.layers.{i}."
        rules.append(KeyRule(layer + "input_layernorm.weight", path + ("layers", "attn_norm"), i))
        rules.append(KeyRule(layer + "post_attention_layernorm.weight", path + ("layers", "mlp_norm"), i))
        for hf, (name, bias) in _LINEARS.items():
            rules.append(KeyRule(f"{layer}{hf}.weight", path + ("layers", name, "w"), i, "linear"))
            if bias:
                rules.append(KeyRule(f"{layer}{hf}.bias", path + ("layers", name, "b"), i))
    rules.append(KeyRule(f"{prefix}model.norm.weight", path + ("norm",)))
    if lm_head:
        rules.append(KeyRule(f"{prefix}lm_head.weight", path + ("lm_head",), kind="linear"))
    return rules


def _rope_theta(d: dict) -> float:
    what = "text_config"
    rope = field(d, "rope_parameters", {}, what, "dict")
    if rope:
        kind = field(rope, "rope_type", "default", f"{what}.rope_parameters", "str")
        if kind != "default":
            raise CheckpointError(f"text_config.rope_parameters.rope_type {kind!r}: only 'default' RoPE is supported")
        return field(
            rope,
            "rope_theta",
            field(d, "rope_theta", 10000.0, what, "float"),
            f"{what}.rope_parameters",
            "float",
            lo=1e-9,
        )
    scaling = field(d, "rope_scaling", {}, what, "dict")
    if scaling and scaling.get("rope_type", scaling.get("type", "default")) != "default":
        raise CheckpointError(f"text_config.rope_scaling {scaling!r}: only default RoPE is supported")
    return field(d, "rope_theta", 10000.0, what, "float", lo=1e-9)


def _token_ids(d: dict, key: str, what: str):
    value = d.get(key)
    if isinstance(value, list):
        for item in value:
            field({key: item}, key, None, what, "int", lo=0)
        return value
    return None if value is None else field(d, key, None, what, "int", lo=0)


def config_from_hf(d: dict, tie_word_embeddings: bool | None = None) -> Qwen2Config:
    """``Qwen2Config`` from a transformers ``text_config`` dict (its defaults for missing
    fields). ``tie_word_embeddings`` overrides the dict's own flag (LLaVA configs keep it
    at the top level).

    Every field is type- and range-checked (sizes against ``focus_jax.inputs.limits``).

    Raises:
        CheckpointError: not a Qwen2 config, a field of the wrong type or out of range
            (named), or unsupported features (sliding-window attention, non-default RoPE).
    """
    what = "text_config"
    if not isinstance(d, dict):
        raise CheckpointError(f"config.json: {what} must be a JSON object, got {type(d).__name__}")
    try:
        model_type = field(d, "model_type", "qwen2", what, "str")
        if model_type != "qwen2":
            raise CheckpointError(f"text_config.model_type is {model_type!r}; only 'qwen2' is supported")
        if field(d, "use_sliding_window", False, what, "bool"):
            raise CheckpointError("text_config.use_sliding_window is true; sliding-window attention is not supported")
        size = lambda key, default, limit="WIDTH": field(d, key, default, what, "int", lo=1, hi_name=limit)
        heads = size("num_attention_heads", 32)
        hidden = size("hidden_size", 4096)
        kv_heads = size("num_key_value_heads", heads)
        head_dim = size("head_dim", max(hidden // heads, 1))
        tie = (
            field(d, "tie_word_embeddings", False, what, "bool") if tie_word_embeddings is None else tie_word_embeddings
        )
        return Qwen2Config(
            vocab_size=size("vocab_size", 151936, "VOCAB"),
            hidden_size=hidden,
            intermediate_size=size("intermediate_size", 22016),
            num_layers=size("num_hidden_layers", 32, "LAYERS"),
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            rope_theta=_rope_theta(d),
            rms_norm_eps=field(d, "rms_norm_eps", 1e-6, what, "float", lo=0.0),
            max_position_embeddings=size("max_position_embeddings", 32768, "POSITIONS"),
            tie_word_embeddings=bool(tie),
            hidden_act=field(d, "hidden_act", "silu", what, "str"),
            bos_token_id=_token_ids(d, "bos_token_id", what),
            eos_token_id=_token_ids(d, "eos_token_id", what),
            pad_token_id=_token_ids(d, "pad_token_id", what),
        )
    except CheckpointError:
        raise
    except InputError as exc:
        raise CheckpointError(f"config.json: {exc}") from None
    except ValueError as exc:
        raise CheckpointError(f"config.json: text_config: {exc}") from None


def config_to_hf(cfg: Qwen2Config) -> dict:
    """transformers ``text_config`` dict for ``cfg``."""
    out = {
        "model_type": "qwen2",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "hidden_act": cfg.hidden_act,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": (list(cfg.eos_token_id) if len(cfg.eos_token_id) > 1 else cfg.eos_token_id[0])
        if cfg.eos_token_id
        else None,
        "pad_token_id": cfg.pad_token_id,
    }
    if cfg.head_dim != cfg.hidden_size // cfg.num_heads:
        out["head_dim"] = cfg.head_dim
    return out
