"""The embedded demo model: a tiny LLaVA-OneVision trained on the synthetic video QA task.

Same architecture and code path as the real checkpoints (SigLIP tower, 2-layer GELU
projector, Qwen2 decoder), shrunk so that ``focus-jax train-demo`` trains it on 2 CPU
cores in under 45 minutes and the safetensors file stays well under 25 MB:

- SigLIP: 64 x 64 frames, 8 x 8 patches (an 8 x 8 grid, pooled to 4 x 4 = 16 tokens per
  frame), hidden 64, 2 layers, 4 heads.
- Qwen2: hidden 128, 4 layers, 4 query / 2 key-value heads of 32, MLP 384, vocabulary of
  the task tokenizer (``focus_jax.data.VOCABULARY``), tied embeddings.
- 8 frames per clip: 8 * 16 + 1 = 129 ``<video>`` tokens.

Its task (``demo_task_config``) puts every object on whole 8 x 8 patches
(``TaskConfig.align``): a 2-layer tower trained from scratch learns shapes in a few hundred
steps that way, and barely at all with objects at free sub-patch offsets (README).

``DEMO_FOCUS`` is the Focus configuration shipped with it (``focus_config.json``): SIC
with threshold 0.975 on vectors of 32 and 2 x 2 x 2 blocks, and SEC at the last decoder
layer keeping 25 % of the visual tokens. It was chosen on the shipped weights with
``focus-jax eval`` (500 held-out questions: 98.2 % of the dense accuracy at 22.5 % of the
dense visual-token GEMM work): the paper's threshold 0.9 keeps 91 % (merging blurs which
object moves), 0.95 keeps 96 %, and SEC at earlier layers drops tokens this small model
still needs (SEC after layers 1 and 2 keeping 50 % / 25 %, the paper's decreasing-alpha
schedule scaled to 4 layers, with SIC 0.9: 85 %; after layers 2 and 3 keeping 75 % /
25 % with SIC 0.975: 95 %); the README lists the sweep.

The shipped directory (``demo_model_dir()``) is a Hugging Face checkpoint: ``config.json``,
``model.safetensors``, ``preprocessor_config.json``, tokenizer files and
``focus_config.json``; transformers' ``LlavaOnevisionForConditionalGeneration`` loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

from focus_jax.config import FocusConfig

__all__ = [
    "DEMO_FRAMES",
    "DEMO_IMAGE_SIZE",
    "DEMO_FOCUS",
    "demo_model_config",
    "demo_task_config",
    "demo_model_dir",
    "write_model_dir",
    "FOCUS_CONFIG_FILE",
]

DEMO_FRAMES = 8
DEMO_IMAGE_SIZE = 64
DEMO_PATCH_SIZE = 8

#: Focus configuration shipped with the demo model (see the module docstring).
DEMO_FOCUS = FocusConfig(
    similarity_threshold=0.975, vector_size=32, block_size=2, frame_block_size=2, sec_layers=(3,), sec_alphas=(0.25,)
)

#: File in a model directory holding the Focus configuration to run it with by default.
FOCUS_CONFIG_FILE = "focus_config.json"


def demo_model_config():
    """``LlavaOnevisionConfig`` of the demo model (sizes in the module docstring)."""
    from focus_jax.data import special_token_ids
    from focus_jax.models.llava_onevision.modeling import LlavaOnevisionConfig
    from focus_jax.models.qwen2.modeling import Qwen2Config
    from focus_jax.models.siglip.modeling import SiglipVisionConfig

    ids = special_token_ids()
    vision = SiglipVisionConfig(
        hidden_size=64,
        intermediate_size=256,
        num_layers=2,
        num_heads=4,
        image_size=DEMO_IMAGE_SIZE,
        patch_size=DEMO_PATCH_SIZE,
    )
    text = Qwen2Config(
        vocab_size=ids["vocab_size"], hidden_size=128, intermediate_size=384, num_layers=4, num_heads=4, num_kv_heads=2,
        head_dim=32, rope_theta=10_000.0, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=ids["bos_token_id"], eos_token_id=(ids["eos_token_id"],), pad_token_id=ids["pad_token_id"],
    )  # fmt: skip
    side = DEMO_IMAGE_SIZE
    return LlavaOnevisionConfig(
        vision=vision, text=text, image_token_id=ids["image_token_id"], video_token_id=ids["video_token_id"],
        image_grid_pinpoints=((side, side), (side, 2 * side), (2 * side, side), (2 * side, 2 * side)),
    )  # fmt: skip


def demo_task_config():
    """``focus_jax.data.TaskConfig`` the demo model is trained and evaluated on: objects on
    whole 8 x 8 patches (``align=DEMO_PATCH_SIZE``)."""
    from focus_jax.data import TaskConfig

    return TaskConfig(num_frames=DEMO_FRAMES, resolution=DEMO_IMAGE_SIZE, align=DEMO_PATCH_SIZE)


def demo_model_dir() -> Path:
    """Directory of the shipped demo checkpoint (package data ``focus_jax/resources/demo_model``).

    Raises:
        FileNotFoundError: the installation lacks it (a source tree without package data).
    """
    path = Path(__file__).parent / "resources" / "demo_model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the embedded demo model is missing from {path}; reinstall focus-jax or run `focus-jax train-demo`"
        )
    return path


def _preprocessor_config(cfg) -> dict:
    side = cfg.vision.image_size
    return {
        "image_processor_type": "LlavaOnevisionImageProcessor",
        "do_resize": True,
        "size": {"height": side, "width": side},
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": True,
        "do_pad": True,
        "image_grid_pinpoints": [list(p) for p in cfg.image_grid_pinpoints],
    }


def write_model_dir(directory: str | Path, cfg, params: dict, focus: FocusConfig | None = DEMO_FOCUS) -> Path:
    """Write a complete Hugging Face checkpoint directory for a task model.

    Args:
        directory: created if needed.
        cfg: ``LlavaOnevisionConfig``; params: its parameter pytree (float32).
        focus: written to ``focus_config.json`` (the default Focus configuration of
            ``focus-jax run``/``eval`` for this model, read with ``FocusConfig.load``);
            None writes none.

    Returns:
        ``directory`` as a ``Path``. Files: ``config.json``, ``model.safetensors``,
        ``generation_config.json``, ``preprocessor_config.json``, tokenizer files and
        ``focus_config.json``.
    """
    from focus_jax.data import save_tokenizer
    from focus_jax.models.llava_onevision import params as llava_params

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    llava_params.save(directory, cfg, params)
    (directory / "preprocessor_config.json").write_text(json.dumps(_preprocessor_config(cfg), indent=2) + "\n")
    text = cfg.text
    generation = {
        "bos_token_id": text.bos_token_id,
        "eos_token_id": list(text.eos_token_id),
        "pad_token_id": text.pad_token_id,
        "do_sample": False,
    }
    (directory / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    save_tokenizer(directory)
    if focus is not None:
        (directory / FOCUS_CONFIG_FILE).write_text(json.dumps(focus.to_dict(), indent=2) + "\n")
    return directory
