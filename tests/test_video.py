"""focus_jax.video: decoding (frame sampling, every failure mode named in one line, the
clip's timing against the written rate, PyAV's raw stream fields and transformers'
``VideoMetadata``) and encoding (synthetic clips survive an MP4 round trip:
write_video -> decode_video)."""

from fractions import Fraction

import av
import numpy as np
import pytest

from focus_jax import video as video_module
from focus_jax.data import TaskConfig, generate_samples
from focus_jax.video import (
    DEFAULT_FPS,
    VideoError,
    VideoWarning,
    decode_video,
    decode_video_timed,
    decode_visual,
    demo_video_path,
    sample_indices,
    write_video,
)

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


# ---------------------------------------------------------------------- timing


def _transformers_sampled_fps(total: int, fps, indices) -> float:
    from transformers.video_utils import VideoMetadata

    return VideoMetadata(total_num_frames=total, fps=fps, frames_indices=list(indices)).sampled_fps


@pytest.mark.parametrize("fps, count, sampled", [(8, 6, 3), (30, 12, 8), (5, 4, 9)])
def test_timing_of_a_written_clip(fps, count, sampled, tmp_path):
    """The rate ``write_video`` wrote, ``count`` frames: duration ``count / fps`` s; the
    sampled frames' rate as transformers' ``VideoMetadata.sampled_fps`` (more than ``fps``
    when a short clip repeats frames)."""
    path = write_video(tmp_path / "clip.mp4", _clip(count), fps=fps)
    frames, timing = decode_video_timed(path, sampled)
    np.testing.assert_array_equal(frames, decode_video(path, sampled))
    assert (timing.fps, timing.total_frames, timing.duration) == (fps, count, pytest.approx(count / fps))
    np.testing.assert_array_equal(timing.indices, np.linspace(0, count - 1, sampled).astype(int))
    assert timing.sampled_fps == pytest.approx(sampled * fps / count)
    assert timing.sampled_fps == pytest.approx(_transformers_sampled_fps(count, fps, timing.indices))


def test_timing_of_real_footage():
    """bikes.mp4 against PyAV's own fields: decoded frames / ``average_rate``, and the container's duration."""
    path = demo_video_path()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate, frames = stream.average_rate, sum(1 for _ in container.decode(stream))
        seconds = container.duration / av.time_base
    _, timing = decode_video_timed(path, 8)
    assert (timing.fps, timing.total_frames) == (float(rate), frames)
    assert timing.duration == pytest.approx(frames / float(rate)) == pytest.approx(seconds, abs=0.1)
    assert timing.sampled_fps == pytest.approx(_transformers_sampled_fps(frames, float(rate), timing.indices))
    assert decode_visual(path, 8)[1] == timing


def test_timing_without_a_declared_rate(tmp_path, monkeypatch):
    """An IVF stream declares no frame rate: frames / its duration. A stream declaring
    neither is timed at transformers' default (24 fps) with a warning."""
    path = tmp_path / "clip.ivf"
    with av.open(str(path), "w", format="ivf") as container:
        stream = container.add_stream("libvpx", rate=8)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for frame in _clip(10):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate is None  # what the fallback is for
    _, timing = decode_video_timed(path, 5)
    assert (timing.fps, timing.total_frames) == (pytest.approx(8), 10)
    assert video_module._frame_rate(10, Fraction(0), 0.0) is None
    assert video_module._frame_rate(10, None, None) is None
    monkeypatch.setattr(video_module, "_frame_rate", lambda *args: None)
    with pytest.warns(VideoWarning, match="no frame rate or duration; timing its frames at 24 fps"):
        _, timing = decode_video_timed(path, 5)
    assert timing.fps == DEFAULT_FPS == _transformers_sampled_fps(10, None, timing.indices)  # its default


def test_still_images_have_no_timing(tmp_path):
    from PIL import Image

    path = tmp_path / "still.png"
    Image.fromarray(_clip(1)[0]).save(path)
    frames, timing = decode_visual(path, 8)
    assert frames.shape == (1, 32, 48, 3) and timing is None


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
