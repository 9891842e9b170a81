"""Write clips to video files with PyAV (H.264 in MP4 by default)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_video"]


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int = 8,
    *,
    codec: str = "libx264",
    pixel_format: str = "yuv444p",
    crf: int = 0,
) -> Path:
    """Encode ``frames`` ``(F, H, W, 3)`` uint8 RGB to ``path`` and return the path.

    Defaults: H.264 with full-resolution chroma (yuv444p) at ``crf`` 0, lossless up to the
    RGB<->YUV rounding (decoded pixels within 2 of the input on the task's clips), so a
    model sees what it was trained on. ``pixel_format="yuv420p"`` plays in every player
    (browsers, QuickTime) but halves chroma resolution: errors up to ~100 at colour edges
    of small shapes. Decode with ``focus_jax.video.decode_video``.

    Raises:
        ValueError: ``frames`` is not ``(F >= 1, H, W, 3)`` uint8, ``H``/``W`` odd with
            4:2:0 chroma, ``fps`` < 1, or ``crf`` outside [0, 51].
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a (F, H, W, 3) uint8 array with F >= 1, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if pixel_format == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"yuv420p needs even frame sides, got {height}x{width}")
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in [0, 51], got {crf}")
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=int(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = pixel_format
        stream.options = {"crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
