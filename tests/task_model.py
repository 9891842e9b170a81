"""A randomly initialised model of the demo architecture (``focus_jax.demo_model``), written
once per test session as a full checkpoint directory (weights, tokenizer, Focus config)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=None)
def random_model_dir() -> Path:
    import jax

    from focus_jax.demo_model import demo_model_config, write_model_dir
    from focus_jax.models.llava_onevision.modeling import init_params

    cfg = demo_model_config()
    return write_model_dir(
        Path(tempfile.mkdtemp(prefix="focus_jax_task_model_")) / "model", cfg, init_params(cfg, jax.random.key(0))
    )
