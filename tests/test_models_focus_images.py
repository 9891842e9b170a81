"""Focus on LLaVA-OneVision image prompts: the anyres high-resolution grid as one frame.

Focus that merges and prunes nothing gives the dense logits; SIC of the first GEMM input
equals ``similarity_concentration`` on ``image_focus_grid``'s geometry (the stitched grid
with its newline column); SEC prunes that grid only (the base view stays).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from focus_jax import FocusConfig, VisualGeometry
from focus_jax.concentration import similarity_concentration
from focus_jax.models.layers import rms_norm
from focus_jax.models.llava_onevision import modeling

import llava_tiny as tiny

SIZES = [(50, 100), (50, 100)]  # 1 x 2 tiles: base 8 x 8, grid 8 x 16 + newline column


@pytest.fixture(scope="module")
def image_batch():
    return tiny.image_prompts(SIZES, seed=5)


def test_image_focus_grid():
    offset, rows, cols = modeling.image_focus_grid(tiny.jax_model().config, SIZES[0])
    assert (offset, rows, cols) == (64, 8, 17)  # 8 x 8 base; two 8 x 8 tiles side by side (nothing to unpad) + newline


def test_focus_that_keeps_everything_gives_dense_logits_on_images(image_batch):
    ids, mask, _, pixels, sizes = image_batch
    model = tiny.jax_model()
    dense = model.forward(ids, pixel_values=pixels, image_sizes=sizes, attention_mask=mask)
    keep_all = FocusConfig(similarity_threshold=1.0, sec_layers=(1, 2), sec_alphas=(1.0, 1.0))
    focused = model.with_focus(keep_all).forward(ids, pixel_values=pixels, image_sizes=sizes, attention_mask=mask)
    err = float(np.abs(np.asarray(focused) - np.asarray(dense))[mask > 0].max())
    print(f"Focus (threshold 1, keep 100 %) vs dense logits, image batch 2: max abs error {err:.2e}")
    assert err <= 1e-4


def test_image_sic_on_the_grid_and_sec(image_batch):
    ids, mask, _, pixels, sizes = image_batch
    model = tiny.jax_model()
    cfg = model.config
    focus = FocusConfig(similarity_threshold=0.5, vector_size=16, sec_layers=(2,), sec_alphas=(0.5,))
    logits, trace = model.with_focus(focus).forward(
        ids, pixel_values=pixels, image_sizes=sizes, attention_mask=mask, return_trace=True
    )
    offset, rows, cols = modeling.image_focus_grid(cfg, SIZES[0])
    geom = VisualGeometry(1, rows, cols)
    assert trace.plan.geometry == geom
    x = modeling.embed(model.params, cfg, jnp.asarray(ids), jnp.asarray(pixels), image_sizes=tuple(map(tuple, sizes)))
    start = np.argmax(ids == tiny.IMAGE_TOKEN, axis=1) + offset
    vis = jnp.stack([x[i, s : s + geom.num_tokens] for i, s in enumerate(start)])
    layer0 = jax.tree.map(lambda a: a[0], model.params["language"]["layers"])
    ref = similarity_concentration(rms_norm(vis, layer0["attn_norm"], cfg.text.rms_norm_eps), geom, focus)
    _, mask_similar, group = trace.gemms[(0, "q_proj")]
    np.testing.assert_array_equal(mask_similar, np.asarray(ref.mask_similar))
    np.testing.assert_array_equal(group, np.asarray(ref.group_index))
    newline = mask_similar[:, cols + cols - 1 :: cols].mean()  # newline column below its first row
    print(f"SIC at layer 0 q_proj: {mask_similar.mean():.3f} of vectors similar, newline column {newline:.3f}")
    assert newline == 1.0  # identical newline vectors merge down the column
    assert trace.kept_tokens()[2].tolist() == [136, 68]
    assert logits.shape[1] == ids.shape[1] - 68  # SEC pruned the grid; the 64 base tokens stay
    with pytest.raises(ValueError, match="same anyres grid"):
        other = tiny.image_prompts([(50, 100), (120, 60)], seed=1)
        model.with_focus(focus).forward(other[0], pixel_values=other[3], image_sizes=other[4], attention_mask=other[1])


def test_run_command_accepts_an_image(tmp_path):
    """``focus-jax run IMAGE``: the image is a one-frame clip (the embedded demo model's
    video path), concentrated as a one-frame geometry."""
    import json

    import skimage.data
    from PIL import Image
    from typer.testing import CliRunner

    from focus_jax.cli import app
    from focus_jax.demo_model import demo_model_config

    path = tmp_path / "cat.png"
    Image.fromarray(skimage.data.chelsea()).save(path)
    result = CliRunner().invoke(
        app, ["run", str(path), "-p", "what color is the moving shape?", "--max-new-tokens", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    cfg = demo_model_config()
    assert report["frames"] == 1 and report["visual_tokens"] == cfg.tokens_per_frame
    assert len(report["kept_tokens_per_layer"]) == cfg.text.num_layers and 0 < report["work_fraction"] < 1
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    result = CliRunner().invoke(app, ["run", str(bad), "-p", "what color?", "--json"])
    assert result.exit_code == 1 and "cannot read image" in result.output
