"""The differentiable (relaxed) forms of SIC and of SEC's top-k."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_concentration_properties import make_tokens

from focus_jax import FocusConfig, VisualGeometry
from focus_jax.concentration import similarity_concentration, soft_top_k

GEOM = VisualGeometry(4, 4, 5)
CFG = FocusConfig(similarity_threshold=0.9, vector_size=8)
X = jnp.asarray(make_tokens(GEOM, 24, seed=3))


def expected_sparsity(threshold, temperature=0.05):
    return similarity_concentration(X, GEOM, CFG, threshold=threshold, relaxed=True, temperature=temperature).sparsity


def merge_distortion(threshold, temperature=0.05):
    res = similarity_concentration(X, GEOM, CFG, threshold=threshold, relaxed=True, temperature=temperature)
    return jnp.sum((res.output - X) ** 2)


@pytest.mark.parametrize("threshold", [0.7, 0.9, 0.95])
def test_sparsity_gradient_is_finite_and_negative(threshold):
    grad = jax.grad(expected_sparsity)(jnp.float32(threshold))
    print(f"d expected_sparsity / d threshold at {threshold}: {float(grad):.4f}")
    assert np.isfinite(grad) and grad < 0  # a higher threshold merges less


@pytest.mark.parametrize("threshold", [0.7, 0.9])
def test_downstream_loss_gradient_has_the_right_sign(threshold):
    # merging distorts the GEMM input; raising the threshold merges less, so less distortion
    grad = jax.grad(merge_distortion)(jnp.float32(threshold))
    print(f"d distortion / d threshold at {threshold}: {float(grad):.4f}")
    assert np.isfinite(grad) and grad < 0
    # and it agrees with a finite difference of the relaxed function
    eps = 1e-3
    fd = (merge_distortion(threshold + eps) - merge_distortion(threshold - eps)) / (2 * eps)
    assert float(grad) == pytest.approx(float(fd), rel=0.05)


def test_relaxed_tends_to_exact_as_temperature_goes_to_zero():
    exact = similarity_concentration(X, GEOM, CFG)
    errors = []
    for t in (0.1, 0.01, 1e-3, 1e-6):
        relaxed = similarity_concentration(X, GEOM, CFG, relaxed=True, temperature=t)
        errors.append(float(jnp.max(jnp.abs(relaxed.output - exact.output))))
        np.testing.assert_array_equal(np.asarray(relaxed.mask_similar), np.asarray(exact.mask_similar))
    print("max |relaxed - exact| for t = 0.1, 0.01, 1e-3, 1e-6:", errors)
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-5
    relaxed = similarity_concentration(X, GEOM, CFG, relaxed=True, temperature=1e-6)
    assert float(relaxed.sparsity) == pytest.approx(float(exact.sparsity), abs=1e-6)


def test_soft_top_k_kept_fraction_grows_with_alpha():
    importance = jnp.asarray(np.random.default_rng(0).random(100), jnp.float32)

    def kept_fraction(alpha):
        return jnp.mean(soft_top_k(importance, alpha * importance.shape[0], temperature=0.02))

    for alpha in (0.1, 0.35, 0.8):
        grad = jax.grad(kept_fraction)(jnp.float32(alpha))
        assert np.isfinite(grad) and grad > 0


def test_soft_top_k_tends_to_hard_top_k():
    importance = jnp.asarray(np.random.default_rng(1).random(50), jnp.float32)
    hard = np.zeros(50, bool)
    hard[np.argsort(-np.asarray(importance))[:12]] = True
    soft = np.asarray(soft_top_k(importance, 12, temperature=1e-7))
    np.testing.assert_array_equal(soft > 0.5, hard)
    np.testing.assert_allclose(soft, hard.astype(np.float32), atol=1e-6)


def test_soft_top_k_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature"):
        soft_top_k(jnp.ones(4), 2, temperature=0.0)
