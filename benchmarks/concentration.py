"""Benchmark: focus_jax SIC versus the PyTorch reference structure, at VLM sizes.

For each (F, H, W, D) it prints the median wall time after compilation, the effective
bandwidth (input read + output written, GB/s), the peak extra memory of the compiled
function (XLA's temp buffers, relative to the input size), the sparsity found, and the
speed-up over the PyTorch implementation (tests/torch_reference.py, which materialises the
candidate window the way the reference does), timed interleaved in the same run.

Inputs are video-like: each token follows the same patch of the previous frame with
correlation 0.995 (static background) or 0.5 (moving content), so SIC finds real groups
and pointer chasing runs several rounds.

It runs twice: in this process, then in a child process with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (transparent huge pages for malloc's large
blocks; the ``focus-jax`` CLI sets it), because XLA CPU allocates its output and temp
buffers afresh on every call and first-touch page faults are a large part of the time.

    python benchmarks/concentration.py [--repeats 5] [--skip-torch]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from focus_jax import FocusConfig, VisualGeometry  # noqa: E402
from focus_jax.concentration import similarity_concentration  # noqa: E402
from focus_jax.concentration.sic import _shape_cfg, _sic_jit  # noqa: E402

SHAPES = [(32, 14, 14, 3584), (16, 14, 14, 896)]


def video_like(frames: int, height: int, width: int, dim: int, seed: int = 0) -> np.ndarray:
    """``(F*H*W, D)`` float32 tokens with frame-to-frame correlation per patch."""
    rng = np.random.default_rng(seed)
    hw = height * width
    rho = np.where(rng.random(hw) < 0.6, 0.995, 0.5).astype(np.float32)[:, None]
    x = np.empty((frames, hw, dim), np.float32)
    x[0] = rng.standard_normal((hw, dim), np.float32)
    for f in range(1, frames):
        x[f] = rho * x[f - 1] + np.sqrt(1 - rho**2) * rng.standard_normal((hw, dim), np.float32)
    return x.reshape(frames * hw, dim)


def peak_extra_bytes(x, geom: VisualGeometry, cfg: FocusConfig) -> int:
    """XLA's temp + output allocation of the compiled SIC (bytes): memory beyond the input."""
    compiled = _sic_jit.lower(
        x, np.float32(cfg.similarity_threshold), np.float32(0.02), geom=geom, shape_cfg=_shape_cfg(cfg), relaxed=False
    ).compile()
    mem = compiled.memory_analysis()
    return mem.temp_size_in_bytes + mem.output_size_in_bytes


def time_it(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--no-child", action="store_true", help="do not re-run with huge pages")
    args = parser.parse_args()
    tunables = os.environ.get("GLIBC_TUNABLES", "") or "(glibc defaults)"
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s); "
        f"GLIBC_TUNABLES={tunables}"
    )
    cfg = FocusConfig()
    for frames, height, width, dim in SHAPES:
        geom = VisualGeometry(frames, height, width)
        host = video_like(frames, height, width, dim)
        x = jax.device_put(host)
        run = lambda: similarity_concentration(x, geom, cfg).output.block_until_ready()
        run()  # compile
        jax_times, torch_times = [], []
        for _ in range(args.repeats):  # interleaved: the machine's speed drifts
            jax_times += time_it(run, 1)
            if not args.skip_torch:
                from torch_reference import torch_sic

                torch_times += time_it(lambda: torch_sic(host, frames, height, width), 1)
        res = similarity_concentration(x, geom, cfg)
        med = statistics.median(jax_times)
        gbytes = 2 * host.nbytes / 1e9
        extra = peak_extra_bytes(x, geom, cfg)
        line = (
            f"(F,H,W,D)=({frames},{height},{width},{dim}) input {host.nbytes / 1e6:.1f} MB | "
            f"focus_jax median {med * 1e3:.1f} ms (min {min(jax_times) * 1e3:.1f}) | {gbytes / med:.2f} GB/s | "
            f"peak extra memory {extra / 1e6:.1f} MB = {extra / host.nbytes:.2f}x input | "
            f"sparsity {float(res.sparsity):.3f}"
        )
        if torch_times:
            tmed = statistics.median(torch_times)
            line += f" | torch reference median {tmed * 1e3:.0f} ms -> speed-up {tmed / med:.1f}x"
        print(line, flush=True)
    if not args.no_child and "hugetlb" not in tunables:
        env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.hugetlb=1")
        subprocess.run([sys.executable, __file__, "--no-child", "--repeats", str(args.repeats)]
                       + (["--skip-torch"] if args.skip_torch else []), env=env, check=True)


if __name__ == "__main__":
    main()
