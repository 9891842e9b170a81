"""Video decoding (PyAV): frame sampling and every failure mode named in one line."""

import av
import numpy as np
import pytest

from focus_jax.data import write_video
from focus_jax.video import VideoError, decode_video, demo_video_path, sample_indices


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
