"""Relaxed Focus inside the model and the FocusKnobs that drive it: on the embedded demo
model (trained weights, synthetic clips: real similarity structure, unlike random weights
where almost every vector merges and near-tie candidate choices dominate), the relaxed
logits tend to the exact ones as the temperature falls, the exact path takes per-layer/GEMM
thresholds from the knobs, and the gradient of task loss + lambda * modeled latency with
respect to the knobs is finite and agrees in sign with finite differences of the exact path.
"""

import dataclasses
import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import costmodel as cm
from focus_jax import FocusKnobs, from_pretrained
from focus_jax.data import build_tokenizer, generate_samples, make_batch
from focus_jax.demo_model import DEMO_FOCUS, demo_model_dir, demo_task_config
from focus_jax.errors import InputError
from focus_jax.models.llava_onevision.trace import RelaxedModelTrace
from focus_jax.trace import GEMM_NAMES, RelaxedFocusTrace

#: Two SEC layers (so relaxed SEC composes), the shipped SIC settings.
CFG = DEMO_FOCUS.replace(sec_layers=(1, 2), sec_alphas=(0.5, 0.25))
LAYERS = 4
LAMBDA = 1e3  # latency in seconds is ~1e-4 here: weigh it like the loss


@pytest.fixture(scope="module")
def setup():
    samples = generate_samples(demo_task_config(), 7, 2)
    tok = build_tokenizer()
    batch = make_batch(samples, tok, num_video_tokens=129, image_size=64, with_answers=False)
    answers = jnp.asarray([tok.convert_tokens_to_ids(s.answer) for s in samples])
    model = from_pretrained(demo_model_dir(), focus=CFG)
    inputs = {k: batch[k] for k in ("input_ids", "pixel_values_videos", "attention_mask")}
    exact, trace = model.forward(**inputs, return_trace=True)
    return model, inputs, answers, np.asarray(exact), trace


def _loss(logits, answers):
    """Cross-entropy of the answer at the last row (float32)."""
    logp = jax.nn.log_softmax(logits[:, -1].astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, answers[:, None], axis=1))


@functools.partial(jax.jit, static_argnames="template")
def _priced(kept, zero, similar, template):
    """Modeled latency (s, relaxed mode) of ``template`` with these counts: one compiled
    program, reused by the exact finite differences and (nested) under ``jax.grad``."""
    trace = dataclasses.replace(template, kept_tokens=kept, zero_vectors=zero, similar_vectors=similar)
    return cm.evaluate(cm.focus(), cm.Workload.from_trace(trace), mode="relaxed").time_s


def _latency(trace):
    """Latency of prompt 0 of a relaxed (JAX counts) or exact (numpy masks) model trace."""
    if isinstance(trace, RelaxedModelTrace):
        t = trace.to_focus_trace(0)
        return _priced(
            t.kept_tokens,
            t.zero_vectors,
            t.similar_vectors,
            dataclasses.replace(t, model=_Frozen(t.model), kept_tokens=None, zero_vectors=None, similar_vectors=None),
        )
    exact = trace.to_focus_trace(0)
    stats = cm.FocusStats.from_trace(exact)
    template = RelaxedFocusTrace(
        exact.geometry, exact.config, _Frozen(exact.model), exact.text_tokens, None, None, None, stats.vectors_per_token
    )
    return _priced(
        *(jnp.asarray(a, jnp.float32) for a in (stats.kept_tokens, stats.zero_vectors, stats.similar_vectors)), template
    )


class _Frozen(dict):
    """A hashable dict (the trace's model dimensions inside a static jit argument)."""

    def __hash__(self):
        return hash(tuple(sorted(self.items())))


def test_knobs_round_trip_and_validation():
    knobs = FocusKnobs.from_config(CFG, LAYERS)
    chex.assert_shape(knobs.similarity_threshold, (LAYERS, len(GEMM_NAMES)))
    chex.assert_shape(knobs.sec_keep, (2,))
    assert knobs.to_config(CFG) == CFG
    tuned = FocusKnobs(knobs.similarity_threshold.at[0].set(0.9), jnp.asarray([1.3, 0.2]))
    cfg = tuned.to_config(CFG)  # one threshold: the mean; keep ratios clipped to (0, 1]
    np.testing.assert_allclose(
        cfg.similarity_threshold, np.mean(np.asarray(tuned.similarity_threshold, np.float64)), atol=1e-7
    )
    assert cfg.sec_alphas == (1.0, pytest.approx(0.2))
    leaves = jax.tree.leaves(jax.tree.map(lambda a: a * 2, knobs))  # a pytree of arrays
    assert len(leaves) == 2
    with pytest.raises(InputError, match="similarity_threshold"):
        FocusKnobs(jnp.zeros((3, 5)), knobs.sec_keep).check(CFG, LAYERS)
    with pytest.raises(InputError, match="sec_keep"):
        FocusKnobs(knobs.similarity_threshold, jnp.zeros(3)).check(CFG, LAYERS)


def test_exact_path_takes_per_layer_gemm_thresholds(setup):
    model, inputs, _, exact, trace = setup
    knobs = FocusKnobs.from_config(CFG, LAYERS)
    same, t1 = model.forward(**inputs, knobs=knobs, return_trace=True)
    err = np.abs(np.asarray(same) - exact).max()
    print(f"exact path, knobs from the config vs the config: max abs error {err:.2e}")
    assert err <= 1e-4  # thresholds traced instead of constant: float32 rounding of another program
    np.testing.assert_array_equal(t1.rows, trace.rows)
    off = knobs.similarity_threshold.at[2, GEMM_NAMES.index("gate_proj")].set(1.0)  # no merging in one GEMM input
    _, t2 = model.forward(**inputs, knobs=FocusKnobs(off, knobs.sec_keep), return_trace=True)  # same compiled program
    similar = lambda t, key: t.gemms[key][1][0].sum()
    assert similar(t1, (2, "gate_proj")) > 0 and similar(t2, (2, "gate_proj")) == 0
    assert similar(t2, (2, "down_proj")) > 0 and similar(t2, (3, "gate_proj")) > 0


@pytest.fixture(scope="module")
def relaxed(setup):
    """``temperature -> (objective, logits, trace, grad)`` from one compiled relaxed
    ``value_and_grad`` (the temperature is traced: every call reuses the program)."""
    model, inputs, answers, _, _ = setup
    knobs = FocusKnobs.from_config(CFG, LAYERS)

    def objective(k, temperature):
        logits, trace = model.forward(**inputs, knobs=k, relaxed=True, temperature=temperature, return_trace=True)
        return _loss(logits, answers) + LAMBDA * _latency(trace), (
            logits,
            trace.kept_tokens,
            trace.zero_vectors,
            trace.similar_vectors,
        )

    run = jax.value_and_grad(objective, has_aux=True)
    return lambda t: run(knobs, jnp.float32(t))


def test_relaxed_logits_tend_to_exact_as_temperature_falls(setup, relaxed):
    _, inputs, _, exact, trace = setup
    rows = trace.rows
    errors, answer_errors = [], []
    for t in (0.1, 0.01, 1e-3, 1e-4):
        (_, (logits, kept, zero, similar)), _ = relaxed(t)
        got = np.take_along_axis(np.asarray(logits), rows[..., None], axis=1)  # the rows the exact path keeps
        valid = np.take_along_axis(inputs["attention_mask"], rows, axis=1) > 0
        errors.append(float(np.abs(got - exact)[valid].max()))
        answer_errors.append(float(np.abs(got[:, -1] - exact[:, -1]).max()))
        print(
            f"temperature {t:g}: max |relaxed - exact| logits {errors[-1]:.3e} (all kept rows), "
            f"{answer_errors[-1]:.3e} (answer row)"
        )
    assert all(b < a for a, b in itertools.pairwise(answer_errors))
    assert answer_errors[-1] < 1e-2 and errors[-1] < 0.5
    # the expected counts (what the cost model prices) tend to the exact trace's
    ref = cm.FocusStats.from_trace(trace.to_focus_trace(0))
    np.testing.assert_allclose(np.asarray(kept[0]), ref.kept_tokens, atol=0.05)
    np.testing.assert_allclose(np.asarray(zero[0]), ref.zero_vectors, atol=0.5)
    assert np.abs(np.asarray(similar[0]) - ref.similar_vectors).max() <= 0.02 * 128 * max(ref.vectors_per_token)


def test_gradient_of_loss_plus_latency_is_finite_and_agrees_with_exact_finite_differences(setup, relaxed):
    model, inputs, answers, _, _ = setup
    knobs = FocusKnobs.from_config(CFG, LAYERS)
    (value, _), grad = relaxed(0.02)
    assert np.isfinite(float(value))
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grad))

    def exact_objective(k):
        logits, trace = model.forward(**inputs, knobs=k, return_trace=True)
        return float(_loss(logits, answers) + LAMBDA * _latency(trace))

    base = exact_objective(knobs)
    thr = knobs.similarity_threshold
    directions = {  # (knobs moved, relaxed directional derivative)
        "every threshold +0.01": (
            FocusKnobs(thr + 0.01, knobs.sec_keep),
            0.01 * float(jnp.sum(grad.similarity_threshold)),
        ),
        "layer-0 thresholds +0.01": (
            FocusKnobs(thr.at[0].add(0.01), knobs.sec_keep),
            0.01 * float(jnp.sum(grad.similarity_threshold[0])),
        ),
        "sec_keep[1] +0.0625 (8 tokens)": (
            FocusKnobs(thr, knobs.sec_keep.at[1].add(0.0625)),
            0.0625 * float(grad.sec_keep[1]),
        ),
    }
    for name, (moved, predicted) in directions.items():
        measured = exact_objective(moved) - base
        print(f"{name}: exact finite difference {measured:+.4e}, relaxed gradient predicts {predicted:+.4e}")
        assert abs(measured) > 1e-4  # the exact objective changes measurably
        assert np.sign(measured) == np.sign(predicted)
