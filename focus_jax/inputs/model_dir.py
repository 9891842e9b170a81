"""Model directories: a directory of safetensors weights and JSON configs, never code.

transformers runs Python shipped in a model directory when a config's ``auto_map`` names a
``*.py`` file there and ``trust_remote_code`` is granted (on a terminal it even asks
interactively). focus-jax never runs such code: ``check_model_dir`` refuses a directory
that ships any (an ``auto_map`` in a config file, or a ``*.py`` file), and
``load_tokenizer`` passes ``trust_remote_code=False`` and ``local_files_only=True``.
``render_chat_template`` renders a checkpoint's chat template (Jinja, in transformers'
sandbox) and turns any template failure into ``InputError``.
"""

from __future__ import annotations

from pathlib import Path

from focus_jax.errors import InputError
from focus_jax.inputs.jsonfile import read_json_object

__all__ = ["CONFIG_FILES", "check_model_dir", "load_tokenizer", "render_chat_template"]

#: JSON files of a model directory transformers reads ``auto_map`` (custom code) from.
CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json",
                "video_preprocessor_config.json", "generation_config.json")  # fmt: skip


def check_model_dir(path: str | Path) -> Path:
    """``path`` as a ``Path`` if it is a directory with a ``config.json`` and no custom code.

    Raises:
        InputError: missing; a file, not a directory; no ``config.json``; a config file
            with ``auto_map`` or a ``*.py`` file in the directory (custom code, refused).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint directory not found: {path} does not exist")
    if not path.is_dir():
        raise InputError(f"{path} is a file, not a checkpoint directory (a Hugging Face model directory is expected)")
    if not (path / "config.json").is_file():
        raise InputError(f"{path} has no config.json")
    code = sorted(p.name for p in path.glob("*.py"))
    if code:
        raise InputError(
            f"{path} ships Python code ({', '.join(code)}); focus-jax never runs code from a model directory"
        )
    for name in CONFIG_FILES:
        file = path / name
        if file.is_file() and "auto_map" in read_json_object(file, str(file)):
            raise InputError(f"{file} has an auto_map (custom code); focus-jax never runs code from a model directory")
    return path


def load_tokenizer(path: str | Path):
    """The transformers tokenizer of model directory ``path``, without custom code.

    Raises:
        InputError: as ``check_model_dir``, or transformers cannot build a tokenizer
            from the directory's files.
    """
    from transformers import AutoTokenizer

    path = check_model_dir(path)
    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 -- transformers raises OSError, ValueError, TypeError, KeyError, json errors, ...
        raise InputError(f"cannot load a tokenizer from {path}: {_one_line(exc)}") from None


def render_chat_template(tokenizer, template: str, messages: list, **kwargs) -> str:
    """``tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, ...)``.

    Raises:
        InputError: the template fails to render (syntax error, an operation Jinja's
            sandbox forbids, a template that raises), naming the reason.
    """
    try:
        text = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- jinja2 TemplateError / SecurityError, or anything a template raises
        raise InputError(f"the model's chat template failed: {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(text, str):
        raise InputError(f"the model's chat template rendered a {type(text).__name__}, not text")
    return text


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
