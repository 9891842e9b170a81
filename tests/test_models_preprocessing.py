"""Preprocessing in numpy/PIL against transformers' LLaVA-OneVision image processor (PIL backend)."""

import json

import numpy as np
import pytest

from focus_jax.models.llava_onevision.modeling import LlavaOnevisionConfig, anyres_grid_shape, select_best_resolution
from focus_jax.models.llava_onevision.preprocessing import (
    ProcessorConfig,
    expand_placeholders,
    preprocess_frames,
    preprocess_images,
)
from focus_jax.video import decode_video, demo_video_path

import llava_tiny as tiny


def _hf_processor(size=384, pinpoints=None):
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil

    kw = {"image_grid_pinpoints": pinpoints} if pinpoints else {}
    return LlavaOnevisionImageProcessorPil(
        size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3, **kw
    )


def test_video_frames_match_the_image_processor():
    frames = decode_video(demo_video_path(), 3)  # real footage, not square
    square = frames[
        :, :, : frames.shape[1]
    ]  # transformers pads non-square frames of a multi-image prompt; compare squares
    ours = preprocess_frames(square)
    ref = _hf_processor()([list(square)], return_tensors="np")["pixel_values"][:, 0]  # 3 images, 1 view each
    assert ours.shape == ref.shape == (3, 3, 384, 384)
    np.testing.assert_array_equal(ours, ref)
    assert preprocess_frames(frames).shape == (3, 3, 384, 384)  # non-square: resized straight to 384 x 384


@pytest.mark.parametrize("size", [(300, 500), (900, 400), (384, 384), (1000, 2000)])
def test_anyres_images_match_the_image_processor(size):
    rng = np.random.default_rng(size[0])
    image = rng.integers(0, 256, size=size + (3,), dtype=np.uint8)
    ours, sizes = preprocess_images([image])
    ref = _hf_processor()(image, return_tensors="np")
    np.testing.assert_array_equal(sizes, ref["image_sizes"])
    assert ours.shape == ref["pixel_values"].shape
    np.testing.assert_array_equal(ours, ref["pixel_values"])


def test_processor_config_from_checkpoint(tmp_path):
    assert ProcessorConfig.from_pretrained(tmp_path) == ProcessorConfig()
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 56, "width": 56}, "image_mean": [0.1, 0.2, 0.3], "image_grid_pinpoints": tiny.PINPOINTS}
    ))  # fmt: skip
    cfg = ProcessorConfig.from_pretrained(tmp_path)
    assert (
        cfg.size == (56, 56)
        and cfg.image_mean == (0.1, 0.2, 0.3)
        and cfg.image_grid_pinpoints == ((56, 56), (56, 112), (112, 56), (112, 112))
    )


def test_best_resolution_matches_transformers():
    from transformers.image_processing_utils import select_best_resolution as hf_select

    pinpoints = LlavaOnevisionConfig().image_grid_pinpoints
    rng = np.random.default_rng(0)
    for h, w in rng.integers(20, 3000, size=(200, 2)):
        assert select_best_resolution((h, w), pinpoints) == tuple(hf_select((h, w), [list(p) for p in pinpoints]))
    assert anyres_grid_shape(LlavaOnevisionConfig(), (800, 1200)) == (3, 4)  # 1152 x 1536 holds every pixel


def test_expand_placeholders_and_bad_input():
    assert expand_placeholders([1, 9, 2], 9, 3) == [1, 9, 9, 9, 2]
    with pytest.raises(ValueError, match="uint8 RGB"):
        preprocess_frames(np.zeros((2, 10, 10, 3), np.float32))
