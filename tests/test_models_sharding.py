"""Sharding over a (data, model) mesh of 4 CPU devices gives the logits of one device.

XLA's host-platform device count must be set before JAX starts, so the check runs in a
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import llava_tiny as tiny

CHECK = textwrap.dedent(
    """
    import sys
    import numpy as np
    import jax
    jax.config.update("jax_default_matmul_precision", "highest")
    sys.path.insert(0, {tests!r})
    import llava_tiny as tiny
    from focus_jax import FocusConfig
    from focus_jax.models.llava_onevision import LlavaOnevision
    from focus_jax.models.llava_onevision.sharding import make_mesh

    assert jax.device_count() == 4, jax.devices()
    directory = {directory!r}
    mesh = make_mesh(2, 2)
    single = LlavaOnevision.from_pretrained(directory)
    sharded = LlavaOnevision.from_pretrained(directory, mesh=mesh)
    q = sharded.params["language"]["layers"]["q"]["w"]
    assert q.sharding.spec == jax.sharding.PartitionSpec(None, None, "model"), q.sharding
    assert len(q.addressable_shards) == 4 and q.addressable_shards[0].data.shape == (4, 64, 32)

    ids, mask, _, videos = tiny.video_prompts(2, seed=23)
    # Focus's SEC pruning half the tokens (SIC's discrete decisions can flip on float32 ties
    # when sums run in another order, so exact equality is only promised without merging)
    for focus in (None, FocusConfig(sic=False, sec_layers=(1,), sec_alphas=(0.5,))):
        a = np.asarray(single.with_focus(focus).forward(ids, pixel_values_videos=videos, attention_mask=mask))
        out = sharded.with_focus(focus).forward(ids, pixel_values_videos=videos, attention_mask=mask)
        assert len(out.sharding.device_set) == 4
        err = np.abs(np.asarray(out) - a).max()
        print(f"{{'Focus (SEC)' if focus else 'dense'}}: sharded vs one device, max abs logit error {{err:.2e}}")
        assert err <= 1e-4  # float32 sums in another order (sharded contractions)
    g1 = single.generate(ids, pixel_values_videos=videos, attention_mask=mask, max_new_tokens=8, eos_token_id=[])
    g4 = sharded.generate(ids, pixel_values_videos=videos, attention_mask=mask, max_new_tokens=8, eos_token_id=[])
    np.testing.assert_array_equal(g1, g4)
    print("OK")
    """
)


def test_sharded_logits_match_one_device():
    _, directory = tiny.checkpoint()
    tests = str(Path(__file__).parent)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(tests).parent), env.get("PYTHONPATH", "")])
    code = CHECK.format(tests=tests, directory=str(directory))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().endswith("OK")
