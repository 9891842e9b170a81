"""focus_jax.video: decoding (frame sampling, every failure mode named in one line) and
encoding (synthetic clips survive an MP4 round trip: write_video -> decode_video)."""

import av
import numpy as np
import pytest

from focus_jax.data import TaskConfig, generate_samples
from focus_jax.video import VideoError, decode_video, demo_video_path, sample_indices, write_video

from synthetic_oracle import solve


def _clip(n: int = 6) -> np.ndarray:
    frames = np.zeros((n, 32, 48, 3), np.uint8)
    for i in range(n):
        frames[i, :, : 8 * (i + 1)] = 255  # a bar that grows: frames are distinguishable
    return frames


def test_decodes_every_frame_and_samples_uniformly(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, _clip(6))
    frames = decode_video(path, 6)
    assert frames.shape == (6, 32, 48, 3) and frames.dtype == np.uint8
    widths = [(f[:, :, 0] > 127).any(axis=0).sum() for f in frames]
    assert widths == [8, 16, 24, 32, 40, 48]
    np.testing.assert_array_equal(sample_indices(6, 3), [0, 2, 5])
    assert [(f[:, :, 0] > 127).any(axis=0).sum() for f in decode_video(path, 3)] == [8, 24, 48]
    assert decode_video(path, 9).shape[0] == 9  # shorter clips repeat frames


def test_real_demo_footage_decodes():
    frames = decode_video(demo_video_path(), 4)
    assert frames.shape == (4, 272, 640, 3)
    assert frames.std() > 10  # real content, not a blank clip


def test_missing_unreadable_and_empty_videos_are_named(tmp_path):
    with pytest.raises(VideoError, match="video not found"):
        decode_video(tmp_path / "none.mp4", 4)
    with pytest.raises(VideoError, match="not a file"):
        decode_video(tmp_path, 4)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video")
    with pytest.raises(VideoError, match="cannot decode"):
        decode_video(garbage, 4)
    # a container whose video stream holds no frames
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()  # writes the header although no frame follows
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(VideoError, match="no video stream|no decodable frames"):
        decode_video(empty, 4)
    # every packet damaged: nothing decodes
    damaged = tmp_path / "damaged.mp4"
    write_video(damaged, _clip(4))
    data = bytearray(damaged.read_bytes())
    mdat = data.find(b"mdat")
    size = int.from_bytes(data[mdat - 4 : mdat], "big")
    data[mdat + 4 : mdat - 4 + size] = bytes(size - 8)
    damaged.write_bytes(bytes(data))
    with pytest.raises(VideoError, match="no decodable frames"):
        decode_video(damaged, 4)
    with pytest.raises(ValueError, match="num_frames"):
        decode_video(demo_video_path(), 0)


# ---------------------------------------------------------------------- encoding


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
