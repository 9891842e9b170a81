"""Regenerate the baseline golden vectors (tests/data/baselines/*.npz) with the ORIGINAL code.

The originals are not vendored; this script reads them from local git clones at the
commits below and runs them on CPU (torch 2.13.0):

- CMC, Adaptiv: github.com/dubcyfor3/Focus @ 1842719,
  ``algorithm/focus/baseline_CMC.py`` (class ``CMC``), ``algorithm/focus/baseline_adaptiv.py``
  (class ``Adaptiv``); their ``focus.utils`` import (an averaging meter and a CSV writer,
  unused here) and ``einops`` (used only by an unused helper) are stubbed.
- FrameFusion: github.com/thu-nics/FrameFusion @ fbec1d2, ``framefusion/main.py``
  (class ``FrameFusion``, torch only).
- FastV: github.com/pkunlp-icler/FastV @ d165972, the ``layer_idx==FASTV_k`` block of the
  no-cache branch of ``LlamaModel.fastv_forward`` in
  ``src/FastV/llava-hf/transformers/src/transformers/models/llama/modeling_llama.py``,
  cut out of the file by its first and last lines and executed as is.

Usage (clones made with ``git clone``; the files are read with ``git show COMMIT:PATH``)::

    python tests/data/baselines/make_golden.py --focus /path/Focus --framefusion /path/FrameFusion --fastv /path/FastV
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent
COMMITS = {"focus": "1842719", "framefusion": "fbec1d2", "fastv": "d165972"}


def source(repo: str, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", repo, "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def load_module(name: str, code: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    exec(compile(code, name, "exec"), mod.__dict__)  # noqa: S102 (running the original is the point)
    return mod


def stub_focus_utils() -> None:
    class AverageMeter:
        def __init__(self):
            self.sum, self.count, self.avg = 0.0, 0, 0.0

        def update(self, v):
            self.sum += v
            self.count += 1
            self.avg = self.sum / self.count

    utils = types.ModuleType("focus.utils")
    utils.AverageMeter = AverageMeter
    utils.save_result_to_csv = lambda *a, **k: None
    sys.modules.setdefault("focus", types.ModuleType("focus"))
    sys.modules["focus.utils"] = utils
    sys.modules.setdefault("einops", types.ModuleType("einops"))


def video_tokens(rng, frames: int, h: int, w: int, dim: int, motion: float = 0.15, noise: float = 0.05) -> np.ndarray:
    """``(F*H*W, D)`` float32 video-like tokens: a spatially smooth field per frame that
    drifts slowly, a few patches changing a lot (moving objects), small noise."""
    rows = rng.standard_normal((h, 1, dim))
    cols = rng.standard_normal((1, w, dim))
    base = rows + cols + 0.3 * rng.standard_normal((h, w, dim))
    out = []
    for f in range(frames):
        frame = base + motion * f * rng.standard_normal((1, 1, dim)) + noise * rng.standard_normal((h, w, dim))
        moving = rng.random((h, w)) < 0.2
        frame[moving] = rng.standard_normal((int(moving.sum()), dim))
        out.append(frame)
    return np.stack(out).reshape(frames * h * w, dim).astype(np.float32)


def sequence(rng, visual: np.ndarray, prefix: int, suffix: int) -> np.ndarray:
    dim = visual.shape[1]
    return np.concatenate([rng.standard_normal((prefix, dim)), visual, rng.standard_normal((suffix, dim))]).astype(
        np.float32
    )[None]


# ------------------------------------------------------------------------ CMC


def cmc_cases(mod, rng) -> dict:
    out = {}
    h = w = 3
    p = h * w
    for name, frames, thr, thr_q, thr_s in (
        ("video", 8, 0.5, 0.6, 0.0005),
        ("tail", 9, 0.5, 0.6, 0.0005),
        ("random", 5, 1.0, 0.9, 0.0005),
    ):
        n = frames * p
        vis = (
            video_tokens(rng, frames, h, w, 32) if name != "random" else rng.standard_normal((n, 32)).astype(np.float32)
        )
        start, suffix = 5, 7
        embeds = sequence(rng, vis, start, suffix)
        later = embeds + 0.1 * rng.standard_normal(embeds.shape).astype(np.float32)
        s = embeds.shape[1]
        cmc = mod.CMC(
            interval_size=8,
            threshold=thr,
            threshold_query=thr_q,
            threshold_score=thr_s,
            model_name="m",
            dataset_name="d",
            trace_meta_dir=".",
        )
        cmc.prepare(None, h, w, start, start + n - 1, n, s, torch.from_numpy(embeds))
        linear_out = cmc(torch.from_numpy(later).clone(), name="o_proj").numpy()
        # queries: (1, heads, S, head_dim), per-head masks
        heads, hd = 2, 16
        q_vis = np.stack(
            [
                video_tokens(rng, frames, h, w, hd) if name != "random" else rng.standard_normal((n, hd))
                for _ in range(heads)
            ]
        )
        query = np.concatenate(
            [rng.standard_normal((heads, start, hd)), q_vis, rng.standard_normal((heads, suffix, hd))], 1
        )[None].astype(np.float32)
        q_match = cmc.detect_non_informative(torch.from_numpy(query))
        query_out = cmc(torch.from_numpy(query).clone(), multi_head=True, name="query").numpy()
        # attention probabilities: (1, heads, S, S), causal softmax of a video-like score
        logits = np.einsum("hsd,htd->hst", query[0], query[0]) / 4.0
        logits = np.where(np.tril(np.ones((s, s), bool)), logits, -1e4)
        probs = torch.softmax(torch.from_numpy(logits[None].astype(np.float32)), dim=-1)
        s_match = cmc.detect_non_informative(probs)
        probs_out = cmc(probs.clone(), multi_head=True, name="attn_weight").numpy()
        vis = slice(start, start + n)  # only visual rows change: store those
        for before, after in ((later, linear_out), (query, query_out), (probs.numpy(), probs_out)):
            assert np.array_equal(np.delete(before, np.s_[vis], axis=-2), np.delete(after, np.s_[vis], axis=-2))
        linear_out, query_out, probs_out = linear_out[..., vis, :], query_out[..., vis, :], probs_out[..., vis, :]
        out |= {
            f"cmc_{name}_embeds": embeds,
            f"cmc_{name}_later": later,
            f"cmc_{name}_linear_out": linear_out,
            f"cmc_{name}_linear_reference": cmc.non_informative_table.numpy().reshape(-1, p).astype(np.int32),
            f"cmc_{name}_linear_mask": cmc.non_informative_mask.numpy().reshape(-1, p),
            f"cmc_{name}_linear_informative": np.int32(cmc.num_informative_tokens),
            f"cmc_{name}_query": query,
            f"cmc_{name}_query_out": query_out,
            f"cmc_{name}_query_reference": q_match[1].numpy().reshape(heads, -1, p).astype(np.int32),
            f"cmc_{name}_query_mask": q_match[2].numpy().reshape(heads, -1, p),
            f"cmc_{name}_query_informative": np.int32(q_match[4]),
            f"cmc_{name}_probs": probs.numpy(),
            f"cmc_{name}_probs_out": probs_out,
            f"cmc_{name}_score_reference": s_match[1].numpy().reshape(heads, -1, p).astype(np.int32),
            f"cmc_{name}_score_mask": s_match[2].numpy().reshape(heads, -1, p),
            f"cmc_{name}_score_informative": np.int32(s_match[4]),
            f"cmc_{name}_meta": np.array([frames, h, w, start, heads], np.int32),
            f"cmc_{name}_thresholds": np.array([thr, thr_q, thr_s], np.float64),
        }
    return out


# ------------------------------------------------------------------------ Adaptiv


def adaptiv_cases(mod, rng) -> dict:
    out = {}
    for name, frames, h, w, thr in (("video", 8, 4, 4, 0.3), ("image", 1, 6, 5, 0.3), ("wide", 3, 3, 7, 0.2)):
        n = frames * h * w
        vis = video_tokens(rng, frames, h, w, 32, motion=0.05)
        start, suffix = 4, 6
        hidden = sequence(rng, vis, start, suffix)
        s = hidden.shape[1]
        ad = mod.Adaptiv(threshold=thr, model_name="m", dataset_name="d", trace_meta_dir=".")
        ad.prepare(frames, h, w, h * w, w, 1, start, start + n - 1, n, s)
        pos = [torch.zeros(1, s, 8), torch.zeros(1, s, 8)]
        result, _, _ = ad(torch.from_numpy(hidden), pos, None, name="pre_attn")
        keep = ad.keep_ids.numpy()
        mask = np.ones(n, bool)
        mask[keep[(keep >= start) & (keep < start + n)] - start] = False
        out |= {
            f"adaptiv_{name}_hidden": hidden,
            f"adaptiv_{name}_out": result.numpy(),
            f"adaptiv_{name}_merge_mask": mask,
            f"adaptiv_{name}_pointer": ad.merged_ids.numpy().astype(np.int32),
            f"adaptiv_{name}_meta": np.array([frames, h, w, start], np.int32),
            f"adaptiv_{name}_threshold": np.float64(thr),
        }
    return out


# ------------------------------------------------------------------------ FrameFusion


def framefusion_cases(mod, rng) -> dict:
    """A prefill's sequence of FrameFusion calls: before layer 0, then after the attention of
    layers 0, 1, ... (fresh random hidden states each call, attention rows when pruning is due)."""
    out, seen = {}, {}
    merge, prune = mod.FrameFusion.merge_tokens_and_get_mask, mod.FrameFusion.position_embedding_handler_at_pruning

    def observed_merge(*args):  # the original, recording its keep mask
        hidden, mask = merge(*args)
        seen["mask"] = mask.clone()
        return hidden, mask

    def observed_prune(self, pos, keep):  # the original, recording the kept rows
        seen["keep"] = keep.clone()
        return prune(self, pos, keep)

    mod.FrameFusion.merge_tokens_and_get_mask = staticmethod(observed_merge)
    mod.FrameFusion.position_embedding_handler_at_pruning = observed_prune
    for name, frames, h, w, cost, lb, calls in (
        ("video", 8, 4, 4, 0.3, 0.95, 3),
        ("budget", 6, 3, 3, 0.5, 0.9, 2),
        ("random", 4, 3, 4, 0.2, 0.0, 6),
    ):
        p, n = h * w, frames * h * w
        start, suffix, dim, heads = 3, 5, 24, 2
        ff = mod.FrameFusion(cost=cost, similarity_lower_bound=lb, ratio_lower_bound=0.1)
        s = start + n + suffix
        patch_type = torch.tensor([[-1] * start + list(range(p)) * frames + [-1] * suffix])
        ff.prepare(patch_type, p, start, start + n - 1, n, s)
        alive = np.ones(n, bool)
        for c in range(calls):
            q_len = start + int(alive.sum()) + suffix
            vis = (
                video_tokens(rng, frames, h, w, dim, motion=0.03)
                if name != "random"
                else rng.standard_normal((n, dim)).astype(np.float32)
            )
            hidden = np.concatenate(
                [rng.standard_normal((start, dim)), vis[alive], rng.standard_normal((suffix, dim))]
            ).astype(np.float32)[None]
            attn = None
            if c > 0 and ff.finish_merging and not ff.finish_pruning:
                attn = torch.softmax(
                    torch.from_numpy(rng.standard_normal((1, heads, 1, q_len)).astype(np.float32)) * 3, dim=-1
                )
            flags = (ff.finish_merging, ff.finish_pruning)
            pos = [torch.zeros(1, q_len, 4), torch.zeros(1, q_len, 4)]
            if c == 0:
                result, _, _ = ff(torch.from_numpy(hidden).clone(), pos, None)
            else:
                result, _, _ = ff(torch.from_numpy(hidden).clone(), pos, None, attn)
            new_alive = alive.copy()
            slots = np.flatnonzero(alive)
            if "keep" in seen:  # pruning: kept sequence rows
                rows = seen.pop("keep").numpy() - start
                new_alive[:] = False
                new_alive[slots[rows[(rows >= 0) & (rows < len(slots))]]] = True
            elif "mask" in seen:  # merging: kept-token mask of the sequence
                mask = seen.pop("mask")[0].numpy()[start : start + len(slots)]
                new_alive[slots[~mask]] = False
            out |= {
                f"ff_{name}_{c}_hidden": hidden,
                f"ff_{name}_{c}_out": result.numpy(),
                f"ff_{name}_{c}_alive_in": alive,
                f"ff_{name}_{c}_alive_out": new_alive,
                f"ff_{name}_{c}_flags_in": np.array(flags),
                f"ff_{name}_{c}_flags_out": np.array([ff.finish_merging, ff.finish_pruning]),
                f"ff_{name}_{c}_sparsity_list": np.array(ff.sparsity_list, np.float64),
            }
            if attn is not None:
                out[f"ff_{name}_{c}_attn"] = attn.numpy()
            alive = new_alive
        out[f"ff_{name}_meta"] = np.array([frames, h, w, start, suffix, calls], np.int32)
        out[f"ff_{name}_params"] = np.array([cost, lb, 0.1], np.float64)
    return out


# ------------------------------------------------------------------------ FastV


def fastv_cases(code: str, rng) -> dict:
    out = {}
    for name, n, r in (("half", 40, 0.5), ("quarter", 37, 0.25), ("most", 50, 0.75)):
        start, suffix, heads = 6, 9, 3
        s = start + n + suffix
        attn = torch.zeros(1, heads, s, s)  # the block reads the last row only
        attn[0, :, -1] = torch.softmax(torch.from_numpy(rng.standard_normal((heads, s)).astype(np.float32)) * 2, dim=-1)
        hidden = torch.from_numpy(rng.standard_normal((1, s, 8)).astype(np.float32))
        scope = {
            "torch": torch,
            "layer_outputs": (hidden, attn),
            "FASTV_image_token_start_index": start,
            "FASTV_image_token_length": n,
            "FASTV_r": r,
            "device": "cpu",
            "hidden_states": hidden,
            "seq_length_with_past": s,
        }
        exec(code, scope)  # noqa: S102 (the original block, as written)
        keep = scope["keep_indexs"].numpy()
        out |= {
            f"fastv_{name}_attn": attn.numpy(),
            f"fastv_{name}_keep": keep.astype(np.int32),
            f"fastv_{name}_meta": np.array([n, start], np.int32),
            f"fastv_{name}_r": np.float64(r),
        }
    return out


def fastv_block(repo: str) -> str:
    text = source(
        repo, COMMITS["fastv"], "src/FastV/llava-hf/transformers/src/transformers/models/llama/modeling_llama.py"
    )
    lines = text.splitlines()
    begin = next(i for i, ln in enumerate(lines) if "last_layer_attention = layer_outputs[1]" in ln)
    body = []
    for ln in lines[begin:]:
        body.append(ln)
        if "hidden_states = hidden_states[:,keep_indexs,:]" in ln:
            break
    return textwrap.dedent("\n".join(body))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--focus", required=True, help="git clone of github.com/dubcyfor3/Focus")
    ap.add_argument("--framefusion", required=True, help="git clone of github.com/thu-nics/FrameFusion")
    ap.add_argument("--fastv", required=True, help="git clone of github.com/pkunlp-icler/FastV")
    args = ap.parse_args()
    torch.manual_seed(0)
    stub_focus_utils()
    cmc = load_module("baseline_CMC", source(args.focus, COMMITS["focus"], "algorithm/focus/baseline_CMC.py"))
    adaptiv = load_module(
        "baseline_adaptiv", source(args.focus, COMMITS["focus"], "algorithm/focus/baseline_adaptiv.py")
    )
    ff = load_module("framefusion_main", source(args.framefusion, COMMITS["framefusion"], "framefusion/main.py"))
    rng = np.random.default_rng(17)
    np.savez_compressed(OUT / "cmc.npz", **cmc_cases(cmc, rng))
    np.savez_compressed(OUT / "adaptiv.npz", **adaptiv_cases(adaptiv, rng))
    np.savez_compressed(OUT / "framefusion.npz", **framefusion_cases(ff, rng))
    np.savez_compressed(OUT / "fastv.npz", **fastv_cases(fastv_block(args.fastv), rng))
    for f in sorted(OUT.glob("*.npz")):
        print(f.name, f.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
