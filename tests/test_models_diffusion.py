"""Gaussian-diffusion networks (DiT and U-Net): patchify round trip against a brute-force loop,
zero output at initialisation, time and label conditioning, bidirectionality, pure view, bad
shapes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models import (DiffusionTransformer, TransformerConfig, UNet, functional, patchify,
                            unpatchify)
from model_init import perturbed, rngs

CFG = TransformerConfig(num_layers=2, num_heads=2, d_model=32, max_len=64, causal=False,
                        time_conditioning=True, num_classes=3, positional="learned")
SHAPE = (8, 8, 1)
UNET_KW = dict(base_channels=8, channel_mults=(1, 1), attention_levels=(1,), num_groups=4,
               num_classes=3)


def jitted_randomized(model, key):
    """Jitted forward of `model` with all parameters perturbed (undoes the zero inits)."""
    apply_fn, params = functional(model)
    params = perturbed(params, key)
    return jax.jit(lambda *inputs, **kw: apply_fn(params, *inputs, **kw))


@pytest.fixture(scope="module")
def dit():
    return DiffusionTransformer(CFG, SHAPE, patch_size=2, prediction="v", rngs=rngs(0))


@pytest.fixture(scope="module")
def unet():
    return UNet(SHAPE, **UNET_KW, rngs=rngs(0))


@pytest.fixture(scope="module")
def images():
    return jax.random.normal(jax.random.key(0), (2,) + SHAPE)


def test_patchify_matches_loop_and_round_trips():
    x = np.asarray(jax.random.normal(jax.random.key(1), (2, 4, 6, 3)))
    p = 2
    expected = np.stack([np.stack([x[b, i:i + p, j:j + p, :].ravel()
                                   for i in range(0, 4, p) for j in range(0, 6, p)])
                         for b in range(2)])
    tokens = patchify(jnp.asarray(x), p)
    np.testing.assert_array_equal(tokens, expected)
    np.testing.assert_array_equal(unpatchify(tokens, p, (4, 6, 3)), x)


def test_dit_zero_at_init_and_records_prediction(dit, images):
    assert dit.prediction == "v"
    apply_fn, params = functional(dit)
    out = jax.jit(apply_fn)(params, images, jnp.array([0.1, 0.9]), jnp.array([3, 3]))
    assert out.shape == images.shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, 0.0)  # zero-initialised head (DiT)


@pytest.mark.parametrize("name", ["dit", "unet"])
def test_time_and_label_conditioning(name, request, images):
    fn = jitted_randomized(request.getfixturevalue(name), jax.random.key(2))
    t, null = jnp.array([0.2, 0.7]), jnp.array([3, 3])
    base = fn(images, t, null)
    assert base.shape == images.shape and np.isfinite(np.asarray(base)).all()
    assert np.abs(np.asarray(fn(images, t + 0.1, null) - base)).max() > 1e-3
    assert np.abs(np.asarray(fn(images, t, jnp.array([0, 1])) - base)).max() > 1e-3


def test_missing_label_means_null_and_scalar_t_broadcasts(dit):
    backbone = dit.backbone
    c_null = backbone.condition(2, jnp.array([0.3, 0.3]), jnp.array([3, 3]))
    np.testing.assert_array_equal(backbone.condition(2, jnp.array([0.3, 0.3]), None), c_null)
    np.testing.assert_array_equal(backbone.condition(2, 0.3, None), c_null)


def test_dit_is_bidirectional(dit, images):
    fn = jitted_randomized(dit, jax.random.key(3))
    t, null = jnp.array([0.5, 0.5]), jnp.array([3, 3])
    diff = np.abs(np.asarray(fn(images.at[:, 4, 4, :].add(1.0), t, null) - fn(images, t, null)))
    per_patch = np.asarray(patchify(jnp.asarray(diff), 2)).max(axis=(0, 2))
    assert (per_patch > 1e-6).all()


def test_unet_handles_mnist_size():
    unet = UNet((28, 28, 1), **UNET_KW, rngs=rngs(0))  # same parameter shapes as 8x8
    fn = jitted_randomized(unet, jax.random.key(4))
    out = fn(jnp.ones((1, 28, 28, 1)), jnp.array([0.5]), jnp.array([3]))
    assert out.shape == (1, 28, 28, 1) and np.abs(np.asarray(out)).max() > 0


def test_bad_shapes(dit, unet, images):
    for model in (dit, unet):
        with pytest.raises(ValueError, match="image shape"):
            model(jnp.zeros((2, 8, 8, 3)), jnp.zeros((2,)))
        with pytest.raises(ValueError, match="image shape"):
            model(jnp.zeros((2, 4, 4, 1)), jnp.zeros((2,)))
        with pytest.raises(ValueError, match="batch, height"):
            model(jnp.zeros((8, 8, 1)), jnp.zeros((2,)))
        with pytest.raises(ValueError, match=r"shape \(2,\)"):
            model(images, jnp.zeros((3,)))
        with pytest.raises(ValueError, match="float"):
            model(images.astype(jnp.int32), jnp.zeros((2,)))
    with pytest.raises(ValueError, match="divisible"):
        UNet((28, 28, 1), channel_mults=(1, 2, 2, 2), rngs=rngs(0))
    with pytest.raises(ValueError, match="divisible"):
        DiffusionTransformer(CFG, (9, 9, 1), patch_size=2, rngs=rngs(0))
    with pytest.raises(ValueError, match="time_conditioning"):
        DiffusionTransformer(TransformerConfig(causal=False), SHAPE, rngs=rngs(0))
    with pytest.raises(ValueError, match="prediction"):
        DiffusionTransformer(CFG, SHAPE, prediction="noise", rngs=rngs(0))
