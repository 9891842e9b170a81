"""Speed of costmodel on LLaVA-Video-7B at T = 11648 visual tokens, next to SCALE-Sim.

Prints, from one run:

1. one jitted relaxed-mode evaluation of latency + energy with its gradient with respect
   to the m-tile, scatter vectors, gather block, SEC alphas and SIC threshold (goal: under
   5 ms);
2. a jitted ``vmap`` over 10,000 hardware / threshold configurations (goal: under 1 s);
3. the paper-mode simulation of the same prefill (exact, 64-bit);
4. SCALE-Sim 3.0.0 on one 256x256x256 GEMM (32x32 weight-stationary), and the ratio of
   its time to costmodel's full-model evaluation.

Timings are medians of repeated calls after compilation; the CPU is shared, so compare
the figures of one run with each other (interleaved), not across runs.

Run: ``python benchmarks/costmodel.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# this file is named like the package it measures: put the repository root, not
# benchmarks/, first on the path so that ``import costmodel`` finds the package
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import costmodel as cm  # noqa: E402
from costmodel.workload import FocusStats, SparsityCurve  # noqa: E402

T = 11648.0
SEC_LAYERS = (3, 6, 9, 18, 26)
ALPHAS = (0.4, 0.3, 0.2, 0.15, 0.1)
TEMPERATURE = 0.1
#: An illustrative threshold -> similar-vector fraction curve (shape of SIC on video features).
CURVE = SparsityCurve((0.7, 0.8, 0.85, 0.9, 0.95, 1.0), (0.8, 0.65, 0.55, 0.42, 0.25, 0.0))
MODEL = cm.ModelShape.load("llava_vid")


def objective(params):
    """Latency (s) + energy (J) of Focus on LLaVA-Video-7B, relaxed mode."""
    ops = cm.Ops(TEMPERATURE)
    hw = cm.focus().replace(m_tile=params["m_tile"], scatter_vectors=params["nsv"], gather_block=params["bs"])
    stats = FocusStats.from_schedule(
        MODEL, T, SEC_LAYERS, params["alphas"], similar_fraction=CURVE(params["threshold"]), ops=ops
    )
    report = cm.evaluate(hw, cm.Workload(MODEL, T, focus=stats), mode="relaxed", temperature=TEMPERATURE)
    return report.time_s + report.energy_total_mJ / 1e3


def _median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--configs", type=int, default=10_000)
    args = parser.parse_args()

    with jax.enable_x64(True):
        params = {"m_tile": 1024.0, "nsv": 2.0, "bs": 8.0, "alphas": jnp.asarray(ALPHAS), "threshold": 0.9}
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
        value_and_grad = jax.jit(jax.value_and_grad(objective))
        start = time.perf_counter()
        value, grads = jax.block_until_ready(value_and_grad(params))
        compile_vg = time.perf_counter() - start
        t_vg = _median_seconds(lambda: value_and_grad(params), args.repeats)

        key_m, key_n, key_t = jax.random.split(jax.random.PRNGKey(0), 3)
        n = args.configs
        batch = {
            "m_tile": jnp.exp(jax.random.uniform(key_m, (n,), minval=jnp.log(64.0), maxval=jnp.log(8192.0))),
            "nsv": jax.random.uniform(key_n, (n,), minval=1.0, maxval=6.0),
            "bs": jnp.full((n,), 8.0),
            "alphas": jnp.tile(jnp.asarray(ALPHAS), (n, 1)),
            "threshold": jax.random.uniform(key_t, (n,), minval=0.75, maxval=0.99),
        }
        sweep = jax.jit(jax.vmap(objective))
        start = time.perf_counter()
        costs = jax.block_until_ready(sweep(batch))
        compile_sweep = time.perf_counter() - start
        t_sweep = _median_seconds(lambda: sweep(batch), max(3, args.repeats // 10))
        best = int(jnp.argmin(costs))

    hw_paper = cm.sec_only()
    wl_paper = cm.Workload(MODEL, T, focus=FocusStats.from_schedule(MODEL, T, SEC_LAYERS, ALPHAS))
    cm.simulate(hw_paper, wl_paper)  # compile
    t_paper = _median_seconds(lambda: cm.simulate(hw_paper, wl_paper).total_cycles, args.repeats)

    from costmodel.scalesim_ref import scalesim_cycles

    start = time.perf_counter()
    cycles = scalesim_cycles(256, 256, 256, 32, 32, "ws")
    t_scalesim = time.perf_counter() - start
    analytic = int(cm.gemm_cycles(256, 256, 256, 32, 32, "ws"))

    print(f"LLaVA-Video-7B (Qwen2-7B shapes, 28 layers), T = {int(T)}, Focus, relaxed mode (temperature {TEMPERATURE})")
    print(f"  objective = time (s) + energy (J) = {float(value):.4f}")
    print(
        "  gradient: d/dm_tile = {:.3e}, d/dnsv = {:.3e}, d/dbs = {:.3e}, d/dthreshold = {:.3e}, d/dalphas = {}".format(
            float(grads["m_tile"]), float(grads["nsv"]), float(grads["bs"]), float(grads["threshold"]),
            [f"{g:.2e}" for g in grads["alphas"].tolist()],
        )
    )
    print(
        f"  value+grad (jit): {t_vg * 1e3:.3f} ms median of {args.repeats}  [goal < 5 ms]  (compile {compile_vg:.1f} s)"
    )
    print(
        f"  vmap over {n:,} hardware/threshold configs (jit): {t_sweep:.3f} s  [goal < 1 s]  "
        f"({t_sweep / n * 1e6:.1f} us/config, compile {compile_sweep:.1f} s)"
    )
    print(
        f"  best of the sweep: m_tile {float(batch['m_tile'][best]):.0f}, scatter vectors "
        f"{float(batch['nsv'][best]):.2f}, "
        f"threshold {float(batch['threshold'][best]):.3f} -> {float(costs[best]):.4f}"
    )
    print(f"  paper mode, SEC-only prefill (exact, 64-bit, via simulate): {t_paper * 1e3:.3f} ms")
    print(
        f"SCALE-Sim 3.0.0, one 256x256x256 GEMM on 32x32 ws: {t_scalesim:.2f} s, {cycles} cycles (analytic {analytic})"
    )
    print(f"  ratio: SCALE-Sim one GEMM / costmodel whole-model value+grad = {t_scalesim / t_vg:,.0f}x")


if __name__ == "__main__":
    main()
