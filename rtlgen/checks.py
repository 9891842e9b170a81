"""Verification of generated RTL against numpy, the JAX golden model and the cost model.

Each ``check_*`` simulates one unit (``rtlgen.sim``, cocotb + Icarus) on the given or
random stimulus and returns a plain dict of what was compared and whether it matched
exactly; ``verify`` runs them all for one configuration.

- systolic array: folds of ``(M x K) . (K x N)`` equal ``a @ w`` (numpy, INT32 wrap), and
  the busy cycles equal ``costmodel.gemm_cycles(M, N, K, rows, cols, "ws")`` (index of
  the last busy cycle, SCALE-Sim's count);
- SIC unit: masks, best candidates and group roots equal ``focus_jax.quant.quantized_block_match``;
- SEC unit: kept indices equal ``focus_jax.quant.quantized_keep_indices`` of
  ``quantized_attention_importance``; cycles equal ``sec_cycles``;
- scatter accumulators: sums equal numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from focus_jax.config import FocusConfig, VisualGeometry
from rtlgen.config import RtlConfig
from rtlgen.sec import sec_cycles
from rtlgen.sic import SIC_LATENCY
from rtlgen.sim import simulate

__all__ = [
    "check_scatter",
    "check_sec",
    "check_sic",
    "check_systolic",
    "check_top",
    "random_sic_tokens",
    "sic_geometry",
    "sic_golden",
]


def _wrap(x, bits: int):
    """Two's-complement wrap of int64 values to ``bits`` bits."""
    x = np.asarray(x, np.int64) & ((1 << bits) - 1)
    return np.where(x >> (bits - 1), x - (1 << bits), x)


def _qmax(cfg: RtlConfig) -> int:
    return (1 << (cfg.data_width - 1)) - 1


def check_systolic(files, cfg: RtlConfig, shapes, work_dir, seed: int = 0) -> dict:
    """GEMMs of the given ``(m, n, k)`` shapes on the array, one simulation each.

    Returns:
        ``{"exact": bool, "cases": [{"m", "n", "k", "exact", "fold_cycles_measured",
        "fold_cycles_model", "busy_cycles", "folds"}]}``; ``fold_cycles_*`` are per fold.
    """
    import costmodel

    rng = np.random.default_rng(seed)
    q = _qmax(cfg)
    cases = []
    for i, (m, n, k) in enumerate(shapes):
        a = rng.integers(-q, q + 1, (m, k))
        w = rng.integers(-q, q + 1, (k, n))
        res = simulate(
            files.values(),
            "focus_systolic_array",
            "tb_systolic",
            {
                "a": a,
                "w": w,
                "rows": cfg.rows,
                "cols": cfg.cols,
                "data_width": cfg.data_width,
                "acc_width": cfg.acc_width,
            },
            Path(work_dir) / f"systolic{i}",
        )
        kf, nf = -(-k // cfg.rows), -(-n // cfg.cols)
        rows = res["rows_out"].reshape(kf, nf, m, cfg.cols)
        out = _wrap(rows.sum(axis=0).transpose(1, 0, 2).reshape(m, nf * cfg.cols)[:, :n], cfg.acc_width)
        exact = bool(np.array_equal(out, _wrap(a @ w, cfg.acc_width)))
        folds = kf * nf
        total_model = int(costmodel.gemm_cycles(m, n, k, cfg.rows, cfg.cols, "ws"))
        measured = int(res["last_busy"]) - int(res["first_busy"])  # index of the last busy cycle
        cases.append(
            {
                "m": m,
                "n": n,
                "k": k,
                "folds": folds,
                "exact": exact,
                "busy_cycles": int(res["busy_cycles"]),
                "gemm_cycles_measured": measured,
                "gemm_cycles_model": total_model,
                "fold_cycles_measured": int(res["busy_count"]) / folds,
                "fold_cycles_model": (total_model + 1) / folds,
            }
        )
    return {
        "exact": all(c["exact"] for c in cases),
        "cycles_match": all(
            c["gemm_cycles_measured"] == c["gemm_cycles_model"] and c["busy_cycles"] == c["gemm_cycles_model"] + 1
            for c in cases
        ),
        "cases": cases,
    }


def sic_geometry(cfg: RtlConfig, tokens: int) -> VisualGeometry:
    """A patch grid of ``tokens`` tokens for random SIC streams: frames of ``4 x 4`` (or
    one row of ``tokens`` when it is not a multiple of 16)."""
    if tokens % 16 == 0:
        return VisualGeometry(tokens // 16, 4, 4)
    return VisualGeometry(1, 1, tokens)


def random_sic_tokens(cfg: RtlConfig, geom: VisualGeometry, streams: int, seed: int = 0) -> np.ndarray:
    """``(streams, N, vector_size)`` integers that exercise every SIC branch: random
    vectors, near copies of a window candidate (similar or just not), exact copies of two
    candidates (ties), negated copies, zero vectors."""
    from focus_jax.concentration import window_offsets

    rng = np.random.default_rng(seed)
    q = _qmax(cfg)
    offsets = [o for o in window_offsets(geom, cfg.window[1], cfg.window[0]) if o < geom.num_tokens]
    x = rng.integers(-q, q + 1, (streams, geom.num_tokens, cfg.vector_size))
    for s in range(streams):
        for p in range(geom.num_tokens):
            valid = [o for o in offsets if o <= p]
            kind = rng.random()
            if not valid or kind < 0.2:
                continue
            src = x[s, p - valid[rng.integers(len(valid))]]
            if kind < 0.3:
                x[s, p] = 0
            elif kind < 0.4:
                x[s, p] = -src
            elif kind < 0.55 and len(valid) >= 2:  # tie: two candidates equal, the vector a noisy copy
                o1, o2 = rng.choice(valid, 2, replace=False)
                x[s, p - max(o1, o2)] = x[s, p - min(o1, o2)]
                x[s, p] = np.clip(x[s, p - o1] + rng.integers(-2, 3, cfg.vector_size), -q, q)
            else:
                noise = rng.integers(-1, 2, cfg.vector_size) * rng.integers(0, 12)
                x[s, p] = np.clip(src + noise, -q, q)
    return x


def sic_golden(x: np.ndarray, cfg: RtlConfig, geom: VisualGeometry):
    """``quantized_block_match`` of every stream of ``x`` ``(S, N, vector_size)`` (each a
    one-slot GEMM input with the generator's window and threshold)."""
    import jax.numpy as jnp

    from focus_jax.quant import quantized_block_match

    fcfg = FocusConfig(
        similarity_threshold=cfg.threshold,
        vector_size=cfg.vector_size,
        block_size=cfg.window[1],
        frame_block_size=cfg.window[0],
    )
    return quantized_block_match(jnp.asarray(x), geom, fcfg, cfg.tau_q, cfg.data_width, cfg.tau_frac_bits)


def check_sic(files, cfg: RtlConfig, x: np.ndarray, geom: VisualGeometry, work_dir, waves: bool = False) -> dict:
    """Streams ``x`` ``(S, N, vector_size)`` through the SIC unit and compares every decision.

    Returns:
        ``{"exact", "vectors", "similar", "zero", "mismatches": {field: count}, "latency_ok", "work_dir"}``.

    Raises:
        ValueError: more tokens per stream than the group-pointer table holds.
    """
    from focus_jax.concentration import window_offsets

    if geom.num_tokens > cfg.sic_tokens:
        raise ValueError(f"{geom.num_tokens} tokens per stream exceed the SIC table of {cfg.sic_tokens}")
    offsets = list(window_offsets(geom, cfg.window[1], cfg.window[0]))
    offsets += [0] * (cfg.candidates - len(offsets))  # a geometry smaller than the window
    # candidates beyond the stream never exist: the layouter sends zero vectors (offset >= N)
    offsets = [o if o < geom.num_tokens else 0 for o in offsets]
    res = simulate(
        files.values(),
        "focus_sic",
        "tb_sic",
        {"x": x, "offsets": np.asarray(offsets), "data_width": cfg.data_width, "pointer_width": cfg.pointer_width},
        work_dir,
        waves=waves,
    )
    gold = sic_golden(x, cfg, geom)
    v = 1
    want = {
        "zero": np.asarray(gold.mask_zero[..., 0]),
        "similar": np.asarray(gold.mask_similar[..., 0]),
        "candidate": np.asarray(gold.candidate[..., 0]),
        "root": np.asarray(gold.group_index[..., 0]) // v,
    }
    tokens = np.broadcast_to(np.arange(geom.num_tokens), res["token"].shape)
    mismatches = {f: int(np.sum(res[f] != want[f])) for f in want}
    mismatches["token"] = int(np.sum(res["token"] != tokens))
    return {
        "exact": not any(mismatches.values()),
        "vectors": int(x.shape[0] * x.shape[1]),
        "similar": int(want["similar"].sum()),
        "zero": int(want["zero"].sum()),
        "mismatches": mismatches,
        "latency_ok": bool(np.all(res["latency"] == SIC_LATENCY)),
        "work_dir": str(work_dir),
    }


def check_sec(files, cfg: RtlConfig, probs: np.ndarray, k: int, work_dir) -> dict:
    """Attention probabilities ``probs`` ``(heads, Q, n)`` (query rows x visual columns)
    through the SEC unit (each quantised by ``quantize_importance``, one beat per
    probability): kept indices vs the JAX golden model,
    ``quantized_keep_indices(quantized_attention_importance(probs))``.

    Returns:
        ``{"exact", "n", "k", "kept", "want", "cycles", "cycles_model"}``.
    """
    import jax.numpy as jnp

    from focus_jax.quant import quantize_importance, quantized_attention_importance, quantized_keep_indices

    heads, rows, n = probs.shape
    qp = np.asarray(quantize_importance(probs, cfg.importance_bits))
    head_idx, row_idx, col_idx = np.meshgrid(np.arange(heads), np.arange(rows), np.arange(n), indexing="ij")
    res = simulate(
        files.values(),
        "focus_sec",
        "tb_sec",
        {
            "index": col_idx.reshape(-1),
            "value": qp[head_idx, row_idx, col_idx].reshape(-1),
            "n": n,
            "k": k,
            "importance_bits": cfg.importance_bits,
        },
        work_dir,
    )
    importance = quantized_attention_importance(
        jnp.asarray(probs)[None], jnp.ones((1, rows), bool), jnp.zeros(1, jnp.int32), n, cfg.importance_bits
    )
    want = np.asarray(quantized_keep_indices(importance, k))[0]
    return {
        "exact": bool(np.array_equal(res["kept"], want)),
        "n": n,
        "k": k,
        "kept": res["kept"].tolist(),
        "want": want.tolist(),
        "cycles": int(res["cycles"]),
        "cycles_model": sec_cycles(cfg, n),
    }


def check_top(files, cfg: RtlConfig, x: np.ndarray, w: np.ndarray, geom: VisualGeometry, work_dir) -> dict:
    """One GEMM tile through ``focus_top`` (``tb_top``): tokens ``x`` ``(M, rows)`` (one SIC
    vector each: ``vector_size == rows``) and weights ``w`` ``(rows, cols)``.

    Compares the output buffer with ``focus_jax.quant.quantized_focus_gemm`` (every row,
    written exactly once unless a zero vector), the rows the controller read from the input
    buffer with the golden model's unique tokens, and the cycles with ``tile_cycles``.

    Returns:
        ``{"exact", "tokens", "unique", "similar", "zero", "rounds", "issued_ok", "writes_ok",
        "cycles": {measured}, "cycles_model": {tile_cycles}}``.

    Raises:
        ValueError: ``vector_size != rows``, or more tokens than the tables hold.
    """
    from focus_jax.concentration import window_offsets
    from focus_jax.quant import quantized_focus_gemm
    from rtlgen.ctrl import group_rounds, tile_cycles

    if cfg.vector_size != cfg.rows or x.shape[1] != cfg.rows or w.shape != (cfg.rows, cfg.cols):
        raise ValueError(f"a tile is {cfg.rows} channels (one vector of {cfg.vector_size}) x {cfg.cols} outputs")
    if geom.num_tokens > cfg.sic_tokens:
        raise ValueError(f"{geom.num_tokens} tokens exceed the tables of {cfg.sic_tokens}")
    offsets = list(window_offsets(geom, cfg.window[1], cfg.window[0]))
    offsets += [0] * (cfg.candidates - len(offsets))
    offsets = [o if o < geom.num_tokens else 0 for o in offsets]
    res = simulate(files.values(), "focus_top", "tb_top",
                   {"x": x, "w": w, "offsets": np.asarray(offsets), "data_width": cfg.data_width,
                    "acc_width": cfg.acc_width, "pointer_width": cfg.pointer_width, "lanes": cfg.scatter_vectors},
                   work_dir)
    fcfg = FocusConfig(similarity_threshold=cfg.threshold, vector_size=cfg.vector_size, block_size=cfg.window[1],
                       frame_block_size=cfg.window[0])
    want, qm = quantized_focus_gemm(x, w, geom, fcfg, cfg.tau_q, cfg.data_width, cfg.tau_frac_bits)
    zero = np.asarray(qm.mask_zero)[:, 0]
    similar = np.asarray(qm.mask_similar)[:, 0]
    roots = np.asarray(qm.group_index)[:, 0]
    rounds = group_rounds(roots, zero, cfg.scatter_vectors)
    model = tile_cycles(cfg, geom.num_tokens, rounds.values())
    cycles = {"decide": int(res["decide_cycles"]), "compute": int(res["compute_cycles"]),
              "array_busy": int(res["array_busy"])}
    issued_ok = bool(np.array_equal(res["issued"], np.asarray(list(rounds), np.int64)))
    writes_ok = bool(np.array_equal(res["writes"], (~zero).astype(np.int64)))
    return {
        "exact": bool(np.array_equal(res["out"], _wrap(np.asarray(want), cfg.acc_width))),
        "tokens": geom.num_tokens, "unique": len(rounds), "similar": int(similar.sum()), "zero": int(zero.sum()),
        "rounds": list(rounds.values()), "issued_ok": issued_ok, "writes_ok": writes_ok,
        "cycles": cycles, "cycles_model": model,
    }


def check_scatter(files, cfg: RtlConfig, steps: int, work_dir, seed: int = 0) -> dict:
    """Random partial-sum rows scattered into random output rows: sums vs numpy."""
    from rtlgen.config import clog2

    rng = np.random.default_rng(seed)
    lanes, c, aw = cfg.scatter_vectors, cfg.cols, cfg.acc_width
    adw = clog2(cfg.sic_tokens)
    lim = 1 << (aw - 1)
    psum = rng.integers(-lim, lim, (steps, c))
    acc = rng.integers(-lim, lim, (steps, lanes, c))
    addr = rng.integers(0, cfg.sic_tokens, (steps, lanes))
    valid = rng.integers(0, 2, (steps, lanes))
    res = simulate(
        files.values(),
        "focus_scatter",
        "tb_scatter",
        {"psum": psum, "acc": acc, "addr": addr, "valid": valid, "acc_width": aw, "addr_width": adw},
        work_dir,
    )
    on = valid.astype(bool)
    want = _wrap(acc + psum[:, None, :], aw)
    exact = (
        np.array_equal(res["valids"], valid)
        and np.array_equal(res["sums"][on], want[on])
        and np.array_equal(res["addrs"][on], addr[on])
    )
    return {"exact": bool(exact), "rows": int(on.sum())}
