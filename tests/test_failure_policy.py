"""The core's failure policy (gen_jax.core docstring): eager bad values raise ValueError naming
the argument; the same values traced inside jit give NaN for the affected examples only.

Each eager case here returned a finite, wrong number before the policy (negative ids wrap in a
gather or an embedding lookup; k = K reads past the last level). The NaN cases are checked
against the eager result on the valid examples (same computation, nothing shared but the code
under test's own valid path).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax.core import checks, units
from gen_jax.core.likelihood import ar_nll, continuous_elbo, discrete_time_elbo, vlb_one_t, vlb_terms_full
from gen_jax.core.masked import MaskingSchedule, mask_tokens, masked_ancestral_sample, masked_elbo
from gen_jax.core.param import Denoiser
from gen_jax.core.schedules import LinearLogSNR, cosine_betas, discretize_process, linear_betas
from gen_jax.core.sde import VESDE, VPSDE, LogSNRSDE, SubVPSDE
from gen_jax.data import from_centers, to_centers
from gen_jax.families import build_model
from tests.model_init import rngs

K = 4
KEY = jax.random.PRNGKey(0)


def zero_eps(x, t):
    return jnp.zeros_like(x)


def uniform_logits(x_t, t):
    return jnp.zeros(x_t.shape + (K,))


# ------------------------------------------------------------------------------ helpers
@pytest.mark.parametrize("bad", [17.0, "17", True, np.float32(17), None])
def test_check_int_rejects_non_integers(bad):
    with pytest.raises(ValueError, match="num_levels"):
        checks.check_int(bad, "num_levels")
    assert checks.check_int(np.int64(17), "num_levels") == 17


def test_ids_in_range_raises_eagerly_and_masks_when_traced():
    ids = jnp.array([[0, 3], [4, 0], [-1, 2]], jnp.int32)
    message = r"ids must lie in \[0, 4\), found 2 out-of-range values in \[-1, 4\]"
    with pytest.raises(ValueError, match=message):
        checks.ids_in_range(ids, 4, "ids")
    valid = jax.jit(lambda i: checks.ids_in_range(i, 4, "ids"))(ids)
    np.testing.assert_array_equal(np.asarray(valid), [True, False, False])
    # Padding (mask 0) is not checked.
    np.testing.assert_array_equal(np.asarray(checks.ids_in_range(ids, 4, "ids", mask=(ids >= 0) & (ids < 4))),
                                  [True, True, True])


def test_one_level_map_for_core_and_data():
    for num_levels in (2, 17, 256):
        k = np.arange(num_levels)
        exact = (2 * k + 1) / num_levels - 1  # python float64
        np.testing.assert_array_equal(np.asarray(units.levels_to_centers(jnp.asarray(k), num_levels)),
                                      to_centers(k, num_levels))
        np.testing.assert_allclose(to_centers(k, num_levels), exact, rtol=0, atol=1e-7)
        x = np.linspace(-1.5, 1.5, 1001)
        np.testing.assert_array_equal(np.asarray(units.centers_to_levels(jnp.asarray(x, jnp.float32), num_levels)),
                                      from_centers(x.astype(np.float32), num_levels))
        np.testing.assert_array_equal(from_centers(x, num_levels), np.clip(np.floor((x + 1) * num_levels / 2), 0,
                                                                            num_levels - 1))


# ------------------------------------------------------------------------------ AR
def test_ar_nll_rejects_out_of_range_targets():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5, K)), jnp.float32)
    good = jnp.asarray(np.random.default_rng(1).integers(0, K, size=(3, 5)), jnp.int32)
    for bad_value in (-1, K):
        bad = good.at[1, 2].set(bad_value)
        with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
            ar_nll(logits, bad)
        nll = np.asarray(jax.jit(ar_nll)(logits, bad))
        expected = np.asarray(ar_nll(logits, good))
        np.testing.assert_allclose(nll[[0, 2]], expected[[0, 2]], rtol=1e-6)
        assert np.isnan(nll[1])
    # A padding id at a masked-out position is allowed.
    mask = jnp.ones((3, 5)).at[1, 2].set(0.0)
    np.testing.assert_allclose(np.asarray(ar_nll(logits, good.at[1, 2].set(-1), mask)),
                               np.asarray(ar_nll(logits, good, mask)), rtol=1e-6)


@pytest.mark.parametrize("family", ["ar", "masked"])
def test_token_models_reject_out_of_range_ids(family):
    model = build_model(family, data_shape=(6,), num_levels=K, rngs=rngs(0), num_layers=1, d_model=16,
                        num_heads=2)
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, K + 1, size=(3, 6)), jnp.int32)  # K = BOS / mask
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 5\)"):
        model(tokens.at[0, 1].set(-1))
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 5\)"):
        model(tokens.at[0, 1].set(K + 1))
    graph, state = nnx.split(model)
    apply = jax.jit(lambda s, x: nnx.merge(graph, s)(x))
    logits = np.asarray(apply(state, tokens.at[0, 1].set(-1)))
    assert np.all(np.isnan(logits[0])) and np.all(np.isfinite(logits[1:]))
    np.testing.assert_allclose(logits[1:], np.asarray(model(tokens))[1:], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------ masked
def test_masked_elbo_rejects_out_of_range_tokens():
    x = jnp.asarray(np.random.default_rng(3).integers(0, K, size=(3, 5)), jnp.int32)
    schedule = MaskingSchedule()
    for bad_value in (-1, K):
        with pytest.raises(ValueError, match=r"x must lie in \[0, 4\)"):
            masked_elbo(KEY, uniform_logits, x.at[2, 0].set(bad_value), schedule, K)
        nll = np.asarray(jax.jit(lambda k, y: masked_elbo(k, uniform_logits, y, schedule, K).nll)(
            KEY, x.at[2, 0].set(bad_value)))
        expected = np.asarray(masked_elbo(KEY, uniform_logits, x, schedule, K).nll)
        np.testing.assert_allclose(nll[:2], expected[:2], rtol=1e-6)
        assert np.isnan(nll[2])
    for bad in (4.0, "4", True):
        with pytest.raises(ValueError, match="num_steps"):
            masked_elbo(KEY, uniform_logits, x, schedule, K, num_steps=bad)
        with pytest.raises(ValueError, match="num_steps"):
            masked_ancestral_sample(KEY, uniform_logits, 2, 5, schedule, bad, K)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mask_tokens(KEY, x, jnp.array([0.5, 1.5, 0.2]), schedule, K)


# ------------------------------------------------------------------------------ Gaussian
DENOISER = Denoiser(VPSDE(), fn=zero_eps, prediction="eps")
SCHEDULE = discretize_process(VPSDE(), 20)
GOOD = jnp.asarray(np.random.default_rng(4).integers(0, K, size=(3, 2, 2)), jnp.int32)
GAUSSIAN_BOUNDS = {
    "continuous_elbo": lambda k, x, K=K: continuous_elbo(k, DENOISER, VPSDE(), x, K),
    "discrete_time_elbo": lambda k, x, K=K: discrete_time_elbo(k, DENOISER, VPSDE(), x, K, 10),
    "vlb_terms_full": lambda k, x, K=K: vlb_terms_full(k, DENOISER, SCHEDULE, x, K, chunk=5),
    "vlb_one_t": lambda k, x, K=K: vlb_one_t(k, DENOISER, SCHEDULE, x, K),
}


@pytest.mark.parametrize("name", sorted(GAUSSIAN_BOUNDS))
def test_gaussian_bounds_reject_out_of_range_levels(name):
    fn = GAUSSIAN_BOUNDS[name]
    expected = np.asarray(fn(KEY, GOOD).nll)
    assert np.all(np.isfinite(expected))
    for bad_value in (-1, K):
        bad = GOOD.at[1, 0, 1].set(bad_value)
        with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
            fn(KEY, bad)
        nll = np.asarray(jax.jit(lambda k, x: fn(k, x).nll)(KEY, bad))
        np.testing.assert_allclose(nll[[0, 2]], expected[[0, 2]], rtol=1e-5)
        assert np.isnan(nll[1])
    for bad_levels in (4.0, "4", True):
        with pytest.raises(ValueError, match="num_levels"):
            fn(KEY, GOOD, K=bad_levels)
    with pytest.raises(ValueError, match="integer"):
        fn(KEY, GOOD.astype(jnp.float32))


def test_counts_must_be_ints():
    for bad in (17.0, "17", True):
        with pytest.raises(ValueError, match="num_steps"):
            discrete_time_elbo(KEY, DENOISER, VPSDE(), GOOD, K, bad)
        with pytest.raises(ValueError, match="num_steps"):
            discretize_process(VPSDE(), bad)
        with pytest.raises(ValueError, match="num_steps"):
            linear_betas(bad)
        with pytest.raises(ValueError, match="num_steps"):
            cosine_betas(bad)
        with pytest.raises(ValueError, match="num_levels"):
            units.levels_to_centers(GOOD, bad)
        with pytest.raises(ValueError, match="num_levels"):
            units.dequantized_bits_per_dim(jnp.zeros(3), 4, bad)
        with pytest.raises(ValueError, match="num_dims"):
            units.nats_to_bits_per_dim(jnp.zeros(3), bad)
        with pytest.raises(ValueError, match="chunk"):
            vlb_terms_full(KEY, DENOISER, SCHEDULE, GOOD, K, chunk=bad)


def test_continuous_elbo_default_t_min_works_for_every_process():
    # Before: t_min defaulted to 0, where VPSDE's logSNR is infinite and the ELBO NaN.
    vp, logsnr = VPSDE(), LogSNRSDE(LinearLogSNR())
    default = continuous_elbo(KEY, DENOISER, vp, GOOD, K)
    explicit = continuous_elbo(KEY, DENOISER, vp, GOOD, K, t_min=vp.smallest_time)
    assert vp.smallest_time == 1e-5 and np.all(np.isfinite(np.asarray(default.nll)))
    np.testing.assert_array_equal(np.asarray(default.nll), np.asarray(explicit.nll))
    assert float(jnp.min(default.terms["t"])) >= 1e-5
    for process in (logsnr, LinearLogSNR()):
        den = Denoiser(process, fn=zero_eps, prediction="eps")
        default = continuous_elbo(KEY, den, process, GOOD, K)
        np.testing.assert_array_equal(np.asarray(default.nll),
                                      np.asarray(continuous_elbo(KEY, den, process, GOOD, K, t_min=0.0).nll))
        assert np.all(np.isfinite(np.asarray(default.nll)))
        np.testing.assert_array_equal(
            np.asarray(discrete_time_elbo(KEY, den, process, GOOD, K, 8).nll),
            np.asarray(discrete_time_elbo(KEY, den, process, GOOD, K, 8, t_min=0.0).nll))
    with pytest.raises(ValueError, match="non-finite logSNR"):
        continuous_elbo(KEY, DENOISER, vp, GOOD, K, t_min=0.0)
    # VE and sub-VP have no VP decoder / standard-normal prior at t = 1: an error, not a number.
    for process in (VESDE(), SubVPSDE()):
        with pytest.raises(ValueError, match="variance-preserving"):
            continuous_elbo(KEY, Denoiser(process, fn=zero_eps), process, GOOD, K)


def test_units_match_their_definitions():
    nats = jnp.asarray([math.log(2.0) * 12.0, 0.0])
    np.testing.assert_allclose(np.asarray(units.nats_to_bits_per_dim(nats, 6)), [2.0, 0.0], rtol=1e-7)
    np.testing.assert_allclose(float(units.nats_to_bits(jnp.asarray(math.log(8.0)))), 3.0, rtol=1e-7)
    y = units.uniform_dequantize(KEY, GOOD, K)
    np.testing.assert_array_equal(np.asarray(units.centers_to_levels(y, K)), np.asarray(GOOD))
