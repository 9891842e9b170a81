"""What Focus did to each visual patch, as numbers (``patch_fates``) and as a picture.

A patch (a visual token of the pooled grid) is either pruned by SEC at some decoder layer
(from that layer's MLP on it is a zero vector of every traced GEMM input) or kept to the
end; while present, SIC merges some of its ``V`` vectors into earlier similar ones.
``plot_patch_fates`` draws the sampled frames twice: with the SEC layer that pruned each
patch, and with the fraction of its vectors SIC merged at one GEMM input (mean over the
layers the patch is present in). Source: spec "SEC", "SIC" and "Traces".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from focus_jax.config import VisualGeometry
from focus_jax.trace import GEMM_NAMES

__all__ = ["PatchFates", "patch_fates", "plot_patch_fates"]


@dataclasses.dataclass(frozen=True)
class PatchFates:
    """Per visual token (frame-major, row-major on ``geometry``):

    Attributes:
        geometry: the visual-token grid (``N = F * H * W``).
        pruned_at: ``(N,)`` int, the decoder layer whose SEC pruned the token (it is absent
            from that layer's MLP on), -1 for a token kept to the end.
        merged: ``{gemm name: (N,) float}``, fraction of the token's vectors SIC merged at
            that GEMM input, averaged over the layers where the token is present (NaN where
            it is present in none).
    """

    geometry: VisualGeometry
    pruned_at: np.ndarray
    merged: dict


def patch_fates(trace) -> PatchFates:
    """``PatchFates`` of a ``focus_jax.trace.FocusTrace`` (every layer of every GEMM input traced).

    Raises:
        KeyError: a (layer, GEMM input) is missing from the trace.
    """
    n = trace.geometry.num_tokens
    pruned_at = np.full(n, -1, np.int64)
    for layer in range(trace.num_layers):
        gone = np.asarray(trace.gemms[(layer, "gate_proj")].mask_zero).all(axis=1)  # MLP input: after SEC's cut
        pruned_at[(pruned_at < 0) & gone] = layer
    merged = {}
    for g in GEMM_NAMES:
        total, count = np.zeros(n), np.zeros(n)
        for layer in range(trace.num_layers):
            gemm = trace.gemms[(layer, g)]
            present = ~np.asarray(gemm.mask_zero).all(axis=1)
            total += np.where(present, np.asarray(gemm.mask_similar).mean(axis=1), 0.0)
            count += present
        with np.errstate(invalid="ignore", divide="ignore"):
            merged[g] = np.where(count > 0, total / count, np.nan)
    return PatchFates(trace.geometry, pruned_at, merged)


def _grid(values: np.ndarray, geometry: VisualGeometry) -> np.ndarray:
    return np.asarray(values).reshape(geometry.frames, geometry.height, geometry.width)


def plot_patch_fates(frames: np.ndarray, trace, path, gemm: str = "q_proj", title: str | None = None) -> Path:
    """Draw ``frames`` with each patch's fate and write a PNG.

    Top row: the frames, each patch SEC pruned tinted by the layer that pruned it (and
    labelled with it on small grids). Bottom row: the fraction of the patch's vectors SIC
    merged at ``gemm`` over the layers it is present in (0 = every vector computed, 1 = all
    merged into earlier ones).

    Args:
        frames: ``(F, H, W, 3)`` uint8, the frames the trace's prompt was built from (the
            patch grid is laid over the whole frame, as the preprocessing resizes it).
        trace: their ``FocusTrace``.
        path: output PNG path.
        gemm: GEMM input of the bottom row (one of ``GEMM_NAMES``).
        title: figure title.

    Returns:
        ``path``.

    Raises:
        ValueError: ``gemm`` unknown, or ``frames`` not one per trace frame.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    if gemm not in GEMM_NAMES:
        raise ValueError(f"gemm must be one of {GEMM_NAMES}, got {gemm!r}")
    frames = np.asarray(frames)
    geo = trace.geometry
    if frames.ndim != 4 or frames.shape[0] != geo.frames:
        raise ValueError(f"need {geo.frames} frames (F, H, W, 3) for this trace, got shape {frames.shape}")
    fates = patch_fates(trace)
    pruned, merged = _grid(fates.pruned_at, geo), _grid(fates.merged[gemm], geo)
    sec_layers = sorted({int(x) for x in fates.pruned_at if x >= 0})
    colours = plt.get_cmap("autumn")(np.linspace(0, 0.8, max(len(sec_layers), 1)))
    layer_cmap = ListedColormap(colours)
    merge_cmap = plt.get_cmap("viridis")

    cols = geo.frames
    aspect = frames.shape[1] / frames.shape[2]
    panel = max(1.9 * aspect, 1.8)  # room for the row labels on wide frames
    fig, axes = plt.subplots(2, cols, figsize=(1.9 * cols + 1.4, 2 * panel + 1.0), squeeze=False)
    extent = (0, frames.shape[2], frames.shape[1], 0)
    label = geo.height * geo.width <= 64
    for f in range(cols):
        top, bottom = axes[0, f], axes[1, f]
        for ax in (top, bottom):
            ax.imshow(frames[f], extent=extent)
            ax.set_xticks([])
            ax.set_yticks([])
        index = np.searchsorted(sec_layers, pruned[f]).astype(float)
        shade = np.where(pruned[f] >= 0, index, np.nan)
        top.imshow(np.ma.masked_invalid(shade), cmap=layer_cmap, vmin=-0.5, vmax=max(len(sec_layers), 1) - 0.5,
                   alpha=0.6, extent=extent, interpolation="nearest")  # fmt: skip
        image = bottom.imshow(np.ma.masked_invalid(merged[f]), cmap=merge_cmap, vmin=0, vmax=1, alpha=0.75,
                              extent=extent, interpolation="nearest")  # fmt: skip
        if label:
            ch, cw = frames.shape[1] / geo.height, frames.shape[2] / geo.width
            for i, j in zip(*np.nonzero(pruned[f] >= 0)):
                top.text((j + 0.5) * cw, (i + 0.5) * ch, f"L{pruned[f][i, j]}", ha="center", va="center", fontsize=7)
        top.set_title(f"frame {f}", fontsize=9)
    kept = int((fates.pruned_at < 0).sum())
    axes[0, 0].set_ylabel(f"SEC: pruned\nat layer\n({geo.num_tokens - kept}/{geo.num_tokens} patches)", fontsize=9)
    mean = np.nanmean(fates.merged[gemm]) if np.isfinite(fates.merged[gemm]).any() else 0.0
    axes[1, 0].set_ylabel(f"SIC: merged\nat {gemm}\n(mean {mean:.0%})", fontsize=9)
    fig.colorbar(image, ax=axes[1, :].tolist(), fraction=0.02, pad=0.01, label="vectors merged")
    if sec_layers:
        handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.6) for c in colours]
        axes[0, -1].legend(
            handles,
            [f"layer {layer}" for layer in sec_layers],
            loc="upper left",
            bbox_to_anchor=(1.02, 1),
            fontsize=8,
            title="pruned by SEC",
            title_fontsize=8,
        )
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
