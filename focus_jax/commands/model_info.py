"""``focus-jax model-info``: size a full LLaVA-OneVision model without its weights.

Loads a shipped config (``0.5b``, ``7b``) or a checkpoint directory's ``config.json``,
traces the whole video forward with ``jax.eval_shape`` (no weights, no compute) and prints
the parameter count and an activation-memory estimate for a number of frames, dense and
with Focus (the paper's LLaVA-OneVision defaults unless ``--no-focus``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def model_info(
    model: str = typer.Argument(
        "0.5b",
        help="Shipped config (0.5b, 7b, qwen2.5-vl-3b, qwen2.5-vl-7b) or a checkpoint directory with config.json.",
    ),
    frames: int = typer.Option(32, min=1, help="Video frames (each 14 x 14 tokens after pooling at 384 px)."),
    text_tokens: int = typer.Option(64, min=1, help="Text tokens of the prompt."),
    dtype: str = typer.Option("bfloat16", help="Parameter/activation dtype: bfloat16 or float32."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Parameter count and activation memory of a full-size model, checked with jax.eval_shape."""
    import jax.numpy as jnp

    from focus_jax import paper_config
    from focus_jax.models.llava_onevision import params as llava_params
    from focus_jax.models.llava_onevision import sizes

    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype must be bfloat16 or float32, got {dtype!r}")
    if model.lower().startswith("qwen2.5-vl"):
        from focus_jax.models.qwen2_5_vl.sizes import describe

        print(json.dumps(describe(model, frames, text_tokens, dtype), indent=2))
        return
    cfg = llava_params.read_config(model) if Path(model).is_dir() else sizes.load_config(model)
    focus = paper_config("llava_onevision")
    jdtype = jnp.dtype(dtype)
    logits = sizes.check_shapes(cfg, frames, text_tokens, None, jdtype)
    sizes.check_shapes(cfg, frames, text_tokens, focus, jdtype)
    counts = sizes.parameter_count(cfg)
    dense = sizes.activation_memory(cfg, frames, text_tokens, jdtype)
    focused = sizes.activation_memory(cfg, frames, text_tokens, jdtype, focus=focus)
    gib = lambda n: n / 2**30
    result = {
        "model": model,
        "frames": frames,
        "tokens": dense.tokens,
        "logits_shape": list(logits.shape),
        "parameters": counts,
        "weights_gib": gib(counts["total"] * jdtype.itemsize),
        "activations_gib": {
            name: {f: gib(getattr(m, f)) for f in ("vision", "decoder", "kv_cache", "embeddings", "total")}
            for name, m in (("dense", dense), ("focus", focused))
        },
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console = Console()
    console.print(
        f"[bold]{escape(model)}[/]: {counts['total'] / 1e9:.3f} B parameters "
        f"(vision {counts['vision'] / 1e6:.1f} M, projector {counts['projector'] / 1e6:.1f} M, "
        f"language {counts['language'] / 1e6:.1f} M), weights {result['weights_gib']:.2f} GiB in {dtype}"
    )
    console.print(
        f"{frames} frames + {text_tokens} text tokens = {dense.tokens} tokens; eval_shape logits {tuple(logits.shape)}"
    )
    table = Table(title="activation memory estimate (GiB, batch 1)")
    for col in ("", "vision", "decoder", "KV cache", "embeddings", "total"):
        table.add_column(col, justify="right")
    for name, m in (("dense", dense), ("Focus", focused)):
        table.add_row(
            name, *(f"{gib(getattr(m, f)):.3f}" for f in ("vision", "decoder", "kv_cache", "embeddings", "total"))
        )
    console.print(table)
