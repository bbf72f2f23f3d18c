"""Backbone, AR and masked models, factory: causality, RoPE against complex rotation, the pure
view, bf16 compute, closed-form parameter counts, and ValueErrors on bad input."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax.families import build_model
from gen_jax.models import (ARTransformer, MaskedTransformer, TransformerConfig, ar_inputs,
                            check_tokens, count_params, functional)
from gen_jax.models.positional import apply_rope
from model_init import perturbed, rngs

VOCAB, LENGTH = 11, 10
CFG = TransformerConfig(num_layers=2, num_heads=2, d_model=32, max_len=16)


def randomized(model, key):
    """Copy of `model` with every parameter perturbed (undoes zero inits such as adaLN-zero)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return nnx.merge(graphdef, perturbed(params, key), rest)


def jitted(model):
    """model's forward as one jitted function of its inputs (eager NNX calls are slow on CPU)."""
    apply_fn, params = functional(model)
    return jax.jit(lambda *inputs: apply_fn(params, *inputs))


@pytest.fixture(scope="module")
def ar_model():
    return ARTransformer(CFG, VOCAB, rngs=rngs(0))


@pytest.fixture(scope="module")
def masked_model():
    cfg = dataclasses.replace(CFG, causal=False, time_conditioning=True, positional="learned")
    return randomized(MaskedTransformer(cfg, VOCAB, rngs=rngs(1)), jax.random.key(1))


@pytest.fixture(scope="module")
def tokens():
    return jax.random.randint(jax.random.key(0), (2, LENGTH), 0, VOCAB)


def _changed_positions(fn, tokens, i):
    """Per position: does changing token i change the output there?"""
    altered = tokens.at[:, i].set((tokens[:, i] + 1) % VOCAB)
    diff = np.abs(np.asarray(fn(altered)) - np.asarray(fn(tokens))).max(axis=(0, 2))
    return diff > 1e-6


def test_ar_is_causal(ar_model, tokens):
    fn = jitted(ar_model)
    for i in (0, 4, LENGTH - 1):
        changed = _changed_positions(fn, tokens, i)
        assert not changed[:i].any(), f"logits before position {i} depend on token {i}"
        assert changed[i:].all()


def test_masked_is_bidirectional(masked_model, tokens):
    fn = jitted(masked_model)
    assert _changed_positions(lambda x: fn(x, jnp.full((2,), 0.3)), tokens, 5).all()


def test_masked_logits_exclude_mask_and_time_matters(masked_model, tokens):
    x = tokens.at[:, ::2].set(masked_model.mask_id)
    fn = jitted(masked_model)
    a, b = fn(x, jnp.full((2,), 0.2)), fn(x, jnp.full((2,), 0.8))
    assert a.shape == (2, LENGTH, VOCAB) and a.dtype == jnp.float32
    assert np.abs(np.asarray(a - b)).max() > 1e-3


def test_masked_without_time_ignores_t(tokens):
    cfg = dataclasses.replace(CFG, causal=False)
    fn = jitted(MaskedTransformer(cfg, VOCAB, rngs=rngs(2)))
    np.testing.assert_array_equal(fn(tokens, jnp.full((2,), 0.1)), fn(tokens, None))


def test_rope_plus_learned_starts_as_pure_rope():
    """The learned table beside RoPE is zero at init; alone it is not."""
    both = MaskedTransformer(dataclasses.replace(CFG, causal=False, positional="rope+learned"),
                             VOCAB, rngs=rngs(3))
    learned = MaskedTransformer(dataclasses.replace(CFG, causal=False, positional="learned"),
                                VOCAB, rngs=rngs(3))
    assert not np.any(np.asarray(both.backbone.position_embed.embedding[...]))
    assert np.std(np.asarray(learned.backbone.position_embed.embedding[...])) > 0.1
    with pytest.raises(ValueError, match="positional"):
        dataclasses.replace(CFG, positional="alibi")


def test_ar_inputs_shift():
    x = jnp.array([[3, 1, 4], [1, 5, 9]])
    np.testing.assert_array_equal(ar_inputs(x, 11), [[11, 3, 1], [11, 1, 5]])


def test_rope_matches_complex_rotation():
    """RoPE pairs channel i with i + D/2 and multiplies (x_i + i x_{i+D/2}) by exp(i p w_i)."""
    b, length, heads, dim = 2, 5, 3, 8
    x = np.asarray(jax.random.normal(jax.random.key(0), (b, length, heads, dim)), np.float64)
    pos = np.array([[0, 1, 2, 3, 4], [7, 3, 9, 0, 15]])
    w = 10000.0 ** (-np.arange(0, dim, 2) / dim)
    z = (x[..., :dim // 2] + 1j * x[..., dim // 2:]) * np.exp(1j * pos[:, :, None, None] * w)
    expected = np.concatenate([z.real, z.imag], axis=-1)
    got = apply_rope(jnp.asarray(x, jnp.float32), jnp.asarray(pos))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_functional_view_equals_module_and_differentiates(ar_model, tokens):
    apply_fn, params = functional(ar_model)
    module_call = nnx.jit(lambda model, x: model(x))(ar_model, tokens)
    np.testing.assert_allclose(jax.jit(apply_fn)(params, tokens), module_call, atol=1e-6)
    grads = jax.jit(jax.grad(lambda p: apply_fn(p, tokens)[:, -1, 0].sum()))(params)
    norms = [float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and max(norms) > 0


def test_bf16_compute_keeps_f32_params(tokens):
    cfg16 = dataclasses.replace(CFG, dtype=jnp.bfloat16)
    m16 = ARTransformer(cfg16, VOCAB, rngs=rngs(0))
    m32 = ARTransformer(CFG, VOCAB, rngs=rngs(0))
    dtypes = {x.dtype for x in jax.tree.leaves(nnx.state(m16, nnx.Param))}
    assert dtypes == {jnp.dtype(jnp.float32)}
    out16, out32 = jitted(m16)(tokens), jitted(m32)(tokens)
    assert out16.dtype == jnp.float32
    scale = float(jnp.abs(out32).max())
    assert float(jnp.abs(out16 - out32).max()) < 0.05 * scale


def _backbone_params(cfg):
    """Closed-form parameter count of the shared backbone (gelu MLP, rope, unconditioned)."""
    d, hidden = cfg.d_model, int(cfg.mlp_ratio * cfg.d_model)
    block = (d * 3 * d + 3 * d) + (d * d + d) + (d * hidden + hidden) + (hidden * d + d) + 4 * d
    return cfg.num_layers * block + 2 * d


def test_param_counts_closed_form_and_matched_families():
    d = CFG.d_model
    ar = build_model("ar", data_shape=(LENGTH,), num_levels=VOCAB, config=CFG, rngs=rngs(0))
    masked = build_model("masked", data_shape=(LENGTH,), num_levels=VOCAB, config=CFG,
                         rngs=rngs(0))
    embed_and_head = (VOCAB + 1) * d + d * VOCAB + VOCAB
    assert count_params(ar) == _backbone_params(CFG) + embed_and_head
    assert count_params(masked) == count_params(ar)
    assert ar.config.causal and not masked.config.causal
    gauss = build_model("gaussian", data_shape=(4, 4, 3), config=CFG, patch_size=2,
                        rngs=rngs(0))
    patch = 2 * 2 * 3
    # adaLN-zero: norms lose their affine params, gain 6d(d+1) per block and 2d(d+1) at the end.
    backbone = (_backbone_params(CFG) - CFG.num_layers * 4 * d - 2 * d
                + CFG.num_layers * 6 * d * (d + 1) + 2 * d * (d + 1))
    time_mlp = 256 * d + d + d * d + d
    assert count_params(gauss) == backbone + time_mlp + (patch * d + d) + (d * patch + patch)


def test_bad_inputs(ar_model, tokens):
    with pytest.raises(ValueError, match="integer"):
        ar_model(tokens.astype(jnp.float32))
    with pytest.raises(ValueError, match="max_len 16"):
        ar_model(jnp.zeros((1, 17), jnp.int32))
    with pytest.raises(ValueError, match="shape"):
        ar_model(jnp.zeros((17,), jnp.int32))
    with pytest.raises(ValueError, match="num_classes"):
        ar_model(tokens, label=jnp.zeros((2,), jnp.int32))
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        check_tokens(np.array([[0, 11]]), VOCAB)
    check_tokens(np.array([[0, 10]]), VOCAB)
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="mlp"):
        TransformerConfig(mlp="relu")
    with pytest.raises(ValueError, match="family"):
        build_model("no_such_family", data_shape=(4,), num_levels=3, rngs=rngs(0))
    with pytest.raises(ValueError, match="num_levels"):
        build_model("ar", data_shape=(4,), rngs=rngs(0))
    m = MaskedTransformer(dataclasses.replace(CFG, causal=False, time_conditioning=True), VOCAB,
                          rngs=rngs(0))
    with pytest.raises(ValueError, match="time-conditioned"):
        m(tokens)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        m(tokens, jnp.zeros((3,)))
