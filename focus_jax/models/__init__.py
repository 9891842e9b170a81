"""Vision-language models in JAX with Focus in prefill.

One folder per model family (``siglip``, ``qwen2``, ``llava_onevision``, ``qwen2_5_vl``),
each with a ``modeling.py`` (pure functions over parameter pytrees, frozen-dataclass
configs) and a ``params.py`` (explicit Hugging Face checkpoint-key rules).
``llava_onevision.model`` holds the user-facing ``LlavaOnevision`` class,
``qwen2_5_vl.model`` the ``Qwen2_5_VL`` class; ``from_pretrained`` loads either,
choosing by ``config.json``'s ``model_type``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["from_pretrained", "model_type"]

#: ``config.json`` model_type -> module whose ``from_pretrained`` loads it.
_FAMILIES = {
    "llava_onevision": "focus_jax.models.llava_onevision.model",
    "qwen2_5_vl": "focus_jax.models.qwen2_5_vl.model",
}


def from_pretrained(path, focus=None, dtype="float32", **kwargs):
    """Load a Hugging Face checkpoint directory as the family its ``config.json`` names.

    Args:
        path: directory with ``config.json`` and safetensors weights.
        focus: ``FocusConfig`` for prefill, or None for dense.
        dtype: parameter dtype (``float32`` or ``bfloat16``).
        **kwargs: passed to the family's ``from_pretrained`` (e.g. ``mesh`` for LLaVA).

    Returns:
        ``LlavaOnevision`` or ``Qwen2_5_VL``.

    Raises:
        FileNotFoundError: no such directory or no ``config.json``.
        InputError: an unreadable ``config.json`` (``model_type``); CheckpointError: a ``model_type`` no family loads.
    """
    import importlib

    from focus_jax.models.safetensors_io import CheckpointError

    family = model_type(path)
    if family not in _FAMILIES:
        raise CheckpointError(
            f"{Path(path) / 'config.json'}: model_type {family!r} is not supported; supported: {sorted(_FAMILIES)}"
        )
    return importlib.import_module(_FAMILIES[family]).from_pretrained(path, focus=focus, dtype=dtype, **kwargs)


def model_type(path) -> str | None:
    """``config.json``'s ``model_type`` of a checkpoint directory (None when it names none).

    Raises:
        FileNotFoundError: no such directory or no ``config.json``.
        InputError: ``config.json`` is too large, not UTF-8, not JSON or not an object
            (``inputs.jsonfile.read_json_object``).
    """
    from focus_jax.inputs.jsonfile import read_json_object

    config = Path(path) / "config.json"
    if not Path(path).is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {path}")
    if not config.is_file():
        raise FileNotFoundError(f"{path} has no config.json")
    return read_json_object(config).get("model_type")
