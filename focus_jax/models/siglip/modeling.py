"""SigLIP vision tower (the image encoder of LLaVA-OneVision) as pure functions.

Same computation as transformers' ``SiglipVisionModel``: a ``patch_size`` x
``patch_size`` patch embedding (a strided convolution, written here as one GEMM over
flattened patches), learned position embeddings, and pre-LayerNorm transformer encoder
layers (bidirectional multi-head attention, GELU-tanh MLP). LLaVA-OneVision reads the
encoder's hidden states (``hidden_states[vision_feature_layer]``, before
``post_layernorm``), so ``encode`` returns those.

Parameter pytree (``init_params`` / ``params.py``)::

    patch_embed: {w: (C*p*p, D), b: (D,)}     # rows ordered (channel, row, column)
    pos_embed:   (num_patches, D)
    layers:      {ln1, ln2: {scale, bias}; q, k, v, o, fc1, fc2: {w, b}}, stacked (L, ...)
    post_ln:     {scale, bias}                 # unused by LLaVA, kept for round trips
    head:        {...}                         # only if use_head; unused by LLaVA
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from focus_jax.models.layers import activation, dense, layer_norm

__all__ = ["SiglipVisionConfig", "init_params", "patchify", "encode"]


@dataclasses.dataclass(frozen=True)
class SiglipVisionConfig:
    """Dimensions of a SigLIP vision tower (transformers' ``SiglipVisionConfig``).

    Raises:
        ValueError: a dimension is not positive, ``hidden_size`` is not divisible by
            ``num_heads``, or ``patch_size`` exceeds ``image_size``.
    """

    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_layers: int = 26
    num_heads: int = 16
    image_size: int = 384
    patch_size: int = 14
    num_channels: int = 3
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"
    use_head: bool = False

    def __post_init__(self):
        for name in (
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "image_size",
            "patch_size",
            "num_channels",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SiglipVisionConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.patch_size > self.image_size:
            raise ValueError(f"patch_size {self.patch_size} exceeds image_size {self.image_size}")
        activation(self.hidden_act)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patches_per_side(self) -> int:
        """Patch rows (= columns) of one image: ``image_size // patch_size`` (27 for 384/14;
        like the ``valid`` convolution, trailing pixels that fill no patch are dropped)."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.patches_per_side**2

    @property
    def patch_dim(self) -> int:
        """Inputs of the patch-embedding GEMM: ``num_channels * patch_size**2``."""
        return self.num_channels * self.patch_size**2


def _init_dense(key, n_in, n_out, dtype, bias=True, scale=None):
    scale = (1.0 / n_in) ** 0.5 if scale is None else scale
    p = {"w": (jax.random.normal(key, (n_in, n_out), jnp.float32) * scale).astype(dtype)}
    if bias:
        p["b"] = jnp.zeros((n_out,), dtype)
    return p


def _init_norm(d, dtype):
    return {"scale": jnp.ones((d,), dtype), "bias": jnp.zeros((d,), dtype)}


def init_params(cfg: SiglipVisionConfig, key: jax.Array, dtype=jnp.float32) -> dict:
    """Random parameters (normal, fan-in scaled) with the pytree layout of the module docstring."""
    d, f = cfg.hidden_size, cfg.intermediate_size
    k_patch, k_pos, k_layers, k_head = jax.random.split(key, 4)

    def layer(k):
        ks = jax.random.split(k, 6)
        return {
            "ln1": _init_norm(d, dtype),
            "q": _init_dense(ks[0], d, d, dtype),
            "k": _init_dense(ks[1], d, d, dtype),
            "v": _init_dense(ks[2], d, d, dtype),
            "o": _init_dense(ks[3], d, d, dtype),
            "ln2": _init_norm(d, dtype),
            "fc1": _init_dense(ks[4], d, f, dtype),
            "fc2": _init_dense(ks[5], f, d, dtype),
        }

    params = {
        "patch_embed": _init_dense(k_patch, cfg.patch_dim, d, dtype),
        "pos_embed": (jax.random.normal(k_pos, (cfg.num_patches, d), jnp.float32) * d**-0.5).astype(dtype),
        "layers": jax.vmap(layer)(jax.random.split(k_layers, cfg.num_layers)),
        "post_ln": _init_norm(d, dtype),
    }
    if cfg.use_head:
        ks = jax.random.split(k_head, 4)
        params["head"] = {
            "probe": (jax.random.normal(ks[0], (1, 1, d), jnp.float32) * d**-0.5).astype(dtype),
            "in_proj": _init_dense(ks[1], d, 3 * d, dtype),
            "out_proj": _init_dense(ks[2], d, d, dtype),
            "layernorm": _init_norm(d, dtype),
            "fc1": _init_dense(ks[3], d, f, dtype),
            "fc2": _init_dense(jax.random.fold_in(ks[3], 1), f, d, dtype),
        }
    return params


def patchify(pixel_values: jnp.ndarray, patch_size: int) -> jnp.ndarray:
    """``(n, C, H, W) -> (n, (H//p)*(W//p), C*p*p)``, patches row-major, channels-then-pixels.

    This ordering makes ``patchify(x) @ w`` equal to transformers' ``Conv2d`` patch
    embedding with ``w = conv.weight.reshape(D, -1).T``; as that ``valid`` convolution,
    rows/columns beyond the last whole patch are ignored.
    """
    n, c, h, w = pixel_values.shape
    p = patch_size
    x = pixel_values[:, :, : h // p * p, : w // p * p].reshape(n, c, h // p, p, w // p, p)
    x = x.transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(n, (h // p) * (w // p), c * p * p)


def _attention(x, layer, cfg: SiglipVisionConfig):
    n, s, d = x.shape
    heads, hd = cfg.num_heads, cfg.head_dim
    q = dense(x, layer["q"]).reshape(n, s, heads, hd)
    k = dense(x, layer["k"]).reshape(n, s, heads, hd)
    v = dense(x, layer["v"]).reshape(n, s, heads, hd)
    scores = jnp.einsum("nqhd,nkhd->nhqk", q, k, preferred_element_type=jnp.float32) * hd**-0.5
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("nhqk,nkhd->nqhd", probs, v, preferred_element_type=jnp.float32).astype(x.dtype)
    return dense(out.reshape(n, s, d), layer["o"])


def _encoder_layer(x, layer, cfg: SiglipVisionConfig):
    act = activation(cfg.hidden_act)
    x = x + _attention(layer_norm(x, layer["ln1"], cfg.layer_norm_eps), layer, cfg)
    h = layer_norm(x, layer["ln2"], cfg.layer_norm_eps)
    return x + dense(act(dense(h, layer["fc1"])), layer["fc2"])


def encode(
    params: dict,
    cfg: SiglipVisionConfig,
    pixel_values: jnp.ndarray,
    feature_layers: tuple[int, ...] = (-1,),
    images_per_step: int = 8,
) -> jnp.ndarray:
    """Hidden states of the encoder at ``feature_layers``, concatenated on the channel axis.

    Args:
        params: SigLIP parameter pytree.
        cfg: tower configuration.
        pixel_values: ``(n, C, image_size, image_size)`` normalised pixels, any float dtype
            (cast to the parameters' dtype, as transformers does).
        feature_layers: indices into transformers' ``hidden_states`` tuple (0 = patch
            embeddings, ``i`` = output of encoder layer ``i``, negative from the end:
            ``-1`` = last layer, before ``post_layernorm``). Only the layers up to the
            deepest one requested are computed.
        images_per_step: images encoded together (bounds the attention memory, which is
            ``images_per_step * heads * num_patches**2`` floats).

    Returns:
        ``(n, num_patches, D * len(feature_layers))`` in the parameters' dtype.

    Raises:
        ValueError: wrong pixel shape or a feature layer out of range.
    """
    if pixel_values.ndim != 4 or pixel_values.shape[1:] != (cfg.num_channels, cfg.image_size, cfg.image_size):
        raise ValueError(
            f"pixel_values must have shape (n, {cfg.num_channels}, {cfg.image_size}, {cfg.image_size}), got "
            f"{pixel_values.shape}"
        )
    depth = cfg.num_layers + 1
    wanted = []
    for layer in feature_layers:
        if not -depth <= layer < depth:
            raise ValueError(f"vision feature layer {layer} is out of range for {cfg.num_layers} encoder layers")
        wanted.append(layer % depth)
    dtype = params["pos_embed"].dtype

    def encode_chunk(pixels):
        x = dense(patchify(pixels.astype(dtype), cfg.patch_size), params["patch_embed"]) + params["pos_embed"].astype(
            dtype
        )
        states, done = {0: x}, 0
        for stop in sorted(set(wanted) - {0}):  # run the layers up to each requested depth
            layers = jax.tree.map(lambda a: a[done:stop], params["layers"])
            x, _ = lax.scan(lambda h, layer: (_encoder_layer(h, layer, cfg), None), x, layers)
            states[stop], done = x, stop
        return jnp.concatenate([states[i] for i in wanted], axis=-1)

    n = pixel_values.shape[0]
    if n <= images_per_step:
        return encode_chunk(pixel_values)
    chunks = -(-n // images_per_step)
    padded = jnp.pad(pixel_values, [(0, chunks * images_per_step - n)] + [(0, 0)] * 3)
    out = lax.map(encode_chunk, padded.reshape((chunks, images_per_step) + pixel_values.shape[1:]))
    return out.reshape((chunks * images_per_step,) + out.shape[2:])[:n]
