"""Synthetic clips survive an MP4 round trip (PyAV write -> focus_jax.video.decode_video)."""

import numpy as np
import pytest

from focus_jax.data import TaskConfig, generate_samples, write_video
from focus_jax.video import decode_video
from synthetic_oracle import solve


@pytest.fixture(scope="module")
def clips():
    return generate_samples(TaskConfig(num_frames=16, resolution=64), 21, 12)


def test_lossless_default_round_trip(clips, tmp_path):
    """Default (H.264, yuv444p, crf 0): every frame back, pixels within the RGB<->YUV rounding."""
    errors = []
    for i, clip in enumerate(clips):
        path = write_video(tmp_path / f"clip{i}.mp4", clip.frames, fps=8)
        decoded = decode_video(path, clip.frames.shape[0])
        assert decoded.shape == clip.frames.shape and decoded.dtype == np.uint8
        diff = np.abs(decoded.astype(int) - clip.frames.astype(int))
        errors.append((diff.mean(), diff.max()))
        assert solve(decoded, clip.question, clip.family) == clip.answer
    mean_err, max_err = np.mean([e[0] for e in errors]), max(e[1] for e in errors)
    print(f"yuv444p crf 0: mean abs error {mean_err:.3f}, max {max_err}")
    assert mean_err < 0.6 and max_err <= 3


def test_compatible_yuv420_round_trip(clips, tmp_path):
    """yuv420p (plays everywhere) loses chroma detail at edges but keeps the clip recognisable."""
    for i, clip in enumerate(clips[:4]):
        path = write_video(tmp_path / f"c{i}.mp4", clip.frames, fps=8, pixel_format="yuv420p", crf=12)
        decoded = decode_video(path, clip.frames.shape[0])
        assert decoded.shape == clip.frames.shape
        mean_err = np.abs(decoded.astype(int) - clip.frames.astype(int)).mean()
        print(f"yuv420p crf 12: mean abs error {mean_err:.3f}")
        assert mean_err < 4.0


def test_decode_samples_uniformly(clips, tmp_path):
    clip = clips[0]
    path = write_video(tmp_path / "clip.mp4", clip.frames)
    half = decode_video(path, 8)  # frames 0, 2, 4, 6, 8, 10, 12, 15 (linspace, rounded down)
    expected = clip.frames[np.linspace(0, 15, 8).astype(int)]
    assert np.abs(half.astype(int) - expected.astype(int)).max() <= 3


@pytest.mark.parametrize(
    "frames, kwargs, match",
    [
        (np.zeros((2, 8, 8, 3), np.float32), {}, "uint8"),
        (np.zeros((8, 8, 3), np.uint8), {}, "F, H, W, 3"),
        (np.zeros((0, 8, 8, 3), np.uint8), {}, "F >= 1"),
        (np.zeros((2, 9, 8, 3), np.uint8), {"pixel_format": "yuv420p"}, "even"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"fps": 0}, "fps"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"crf": 60}, "crf"),
    ],
)
def test_write_video_errors(frames, kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        write_video(tmp_path / "x.mp4", frames, **kwargs)
