"""AR NLL, unit helpers, discretized Gaussian decoder and the learned log-SNR schedule.

References: brute-force numpy float64 sums over a bigram table, scipy normal CDFs, exact
uniform-model values (a K-level uniform model costs exactly log2 K bits/dim on every path).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from gen_jax.core import learned_schedule
from gen_jax.core.likelihood import (ar_nll, check_token_ids, discretized_gaussian_log_likelihood, perplexity,
                                     token_weighted_mean, vdm_reconstruction_nll)
from gen_jax.core.units import (bits_per_dim, dequantized_bits_per_dim, levels_to_centers, nats_to_bits,
                                nats_to_bits_per_dim, uniform_dequantize)


# ------------------------------------------------------------------------------------ AR
def test_ar_nll_of_bigram_model_matches_brute_force():
    """A bigram model (logits at position i = log T[token_{i-1}], BOS row for i = 0) scored by
    ar_nll equals the float64 sum of -log T over the sequence, with padding masked out."""
    rng = np.random.default_rng(0)
    vocab, length, batch = 5, 7, 3
    table = rng.dirichlet(np.ones(vocab), size=vocab + 1)  # row `vocab` is the BOS row
    tokens = rng.integers(0, vocab, size=(batch, length))
    mask = np.ones((batch, length))
    mask[1, 5:] = 0.0
    previous = np.concatenate([np.full((batch, 1), vocab), tokens[:, :-1]], axis=1)
    logits = np.log(table[previous]) + rng.normal(size=(batch, 1, 1))  # shift: softmax-invariant
    nll = ar_nll(jnp.asarray(logits, jnp.float32), jnp.asarray(tokens, jnp.int32), jnp.asarray(mask))
    expected = np.zeros(batch)
    for b in range(batch):
        for i in range(length):
            if mask[b, i]:
                expected[b] -= math.log(table[previous[b, i], tokens[b, i]])
    np.testing.assert_allclose(np.asarray(nll), expected, rtol=1e-5)


def test_uniform_ar_model_costs_log2_vocab_bits_per_token():
    vocab = 37
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, vocab, size=(4, 9)), jnp.int32)
    mask = jnp.ones((4, 9)).at[2, 4:].set(0.0)
    nll = ar_nll(jnp.zeros((4, 9, vocab)), tokens, mask)
    per_token = token_weighted_mean(nll, jnp.sum(mask, axis=1))
    np.testing.assert_allclose(float(nats_to_bits(per_token)), math.log2(vocab), rtol=1e-6)
    np.testing.assert_allclose(float(perplexity(per_token)), vocab, rtol=1e-5)


def test_token_weighted_mean_is_a_corpus_mean():
    """sum NLL / sum tokens, not the mean of per-example means."""
    value = token_weighted_mean(jnp.array([2.0, 9.0]), jnp.array([1.0, 3.0]))
    np.testing.assert_allclose(float(value), 11.0 / 4.0)


def test_ar_input_validation():
    with pytest.raises(ValueError, match="logits"):
        ar_nll(jnp.zeros((2, 3)), jnp.zeros((2, 3), jnp.int32))
    with pytest.raises(ValueError, match="targets shape"):
        ar_nll(jnp.zeros((2, 3, 4)), jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match="integer"):
        ar_nll(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="mask"):
        ar_nll(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3), jnp.int32), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        check_token_ids(jnp.array([[0, 4]]), 4)
    check_token_ids(jnp.array([[0, 3]]), 4)


# ------------------------------------------------------------------------------------ units
def test_levels_to_centers_and_dequantization_bins():
    np.testing.assert_allclose(np.asarray(levels_to_centers(jnp.array([0, 255]), 256)),
                               [-1 + 1 / 256, 1 - 1 / 256], rtol=1e-6)
    num_levels = 17
    k = jnp.asarray(np.random.default_rng(2).integers(0, num_levels, size=(4096, 3)), jnp.int32)
    y = np.asarray(uniform_dequantize(jax.random.PRNGKey(0), k, num_levels), np.float64)
    assert y.min() >= -1.0 and y.max() < 1.0
    np.testing.assert_array_equal(np.floor((y + 1) * num_levels / 2).astype(int), np.asarray(k))
    # u ~ U[0, 1): y - centre is uniform on [-1/K, 1/K): mean 0, variance (2/K)^2 / 12.
    offset = y - np.asarray(levels_to_centers(k, num_levels))
    se = (2 / num_levels) / math.sqrt(12 * offset.size)
    assert abs(offset.mean()) < 5 * se
    np.testing.assert_allclose(offset.var(), (2 / num_levels) ** 2 / 12, rtol=0.05)


def test_dequantized_bits_per_dim_special_cases():
    zero = jnp.zeros(())
    assert float(dequantized_bits_per_dim(zero, 3, 256, data_range=1.0)) == pytest.approx(8.0)  # score_sde [0, 1]
    assert float(dequantized_bits_per_dim(zero, 3, 256)) == pytest.approx(7.0)  # data in [-1, 1]
    with pytest.raises(ValueError, match="num_levels"):
        dequantized_bits_per_dim(zero, 3, 1)
    with pytest.raises(ValueError, match="num_dims"):
        nats_to_bits_per_dim(zero, 0)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_uniform_model_is_log2_levels_on_every_path(num_levels):
    """The uniform density on [-1, 1]^D (log p = -D ln 2) through the dequantized helper; VDM's
    decoder at vanishing SNR (all levels equally likely); and for K = 2 the discretized
    Gaussian centred at 0 (each level holds exactly half the mass, any scale)."""
    num_dims = 6
    density_nll = jnp.full((3,), num_dims * math.log(2.0))
    np.testing.assert_allclose(np.asarray(dequantized_bits_per_dim(density_nll, num_dims, num_levels)),
                               math.log2(num_levels), rtol=1e-6)
    k = jnp.asarray(np.random.default_rng(3).integers(0, num_levels, size=(3, num_dims)), jnp.int32)
    z = jnp.asarray(np.random.default_rng(4).normal(size=(3, num_dims)), jnp.float32)
    recon = vdm_reconstruction_nll(z, k, jnp.full((3,), -40.0), num_levels)
    np.testing.assert_allclose(np.asarray(bits_per_dim(recon, num_dims)), math.log2(num_levels), rtol=1e-5)
    if num_levels == 2:
        log_p = discretized_gaussian_log_likelihood(k, 0.0, jnp.log(0.37), 2)
        nll = -jnp.sum(log_p, axis=-1)
        np.testing.assert_allclose(np.asarray(bits_per_dim(nll, num_dims)), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- decoder
@pytest.mark.parametrize("num_levels", [4, 256])
def test_discretized_gaussian_matches_cdf_differences_and_sums_to_one(num_levels):
    means = np.array([-1.3, -0.7, 0.0, 0.2, 0.95, 1.4])
    log_scales = np.log(np.array([1e-3, 0.02, 0.3, 1.0, 0.01, 0.5]))
    levels = np.arange(num_levels)
    log_p = discretized_gaussian_log_likelihood(
        jnp.asarray(levels)[:, None], jnp.asarray(means, jnp.float32), jnp.asarray(log_scales, jnp.float32),
        num_levels)
    p = np.exp(np.asarray(log_p, np.float64))  # (K, 6)
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-5)
    lower = np.where(levels == 0, -np.inf, (2 * levels) / num_levels - 1.0)[:, None]
    upper = np.where(levels == num_levels - 1, np.inf, (2 * levels + 2) / num_levels - 1.0)[:, None]
    scale = np.exp(log_scales)
    expected = np.maximum(norm.cdf(upper, means, scale) - norm.cdf(lower, means, scale), 1e-12)
    visible = expected > 1e-6  # compare where float32 has digits to spare
    np.testing.assert_allclose(p[visible], expected[visible], rtol=2e-3)
    assert np.all(np.asarray(log_p) >= math.log(1e-12) - 1e-4)


# ---------------------------------------------------------------------- learned schedule
def test_learned_schedule_is_monotone_with_fixed_endpoints_and_exact_derivative():
    params = learned_schedule.init(jax.random.PRNGKey(0), 32)
    params["linear_w"] = jnp.asarray(0.3, jnp.float32)  # let the sigmoid branch matter
    t = jnp.linspace(0.0, 1.0, 201)
    log_snr = np.asarray(jax.jit(learned_schedule.log_snr)(params, t), np.float64)
    np.testing.assert_allclose(log_snr[[0, -1]], [13.3, -5.0], atol=1e-4)
    assert np.all(np.diff(log_snr) < 0)
    # d logSNR/dt by hand in float64: h'(t) = |w_lin| + mean |w_out| 2 s(1 - s) 2 |w_hid|.
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    tt = np.asarray(t, np.float64)[:, None]
    s = 1 / (1 + np.exp(-(np.abs(p["hidden_w"]) * (2 * tt - 1) + p["hidden_b"])))
    h = lambda u: np.abs(p["linear_w"]) * u + np.mean(
        np.abs(p["out_w"]) * (2 / (1 + np.exp(-(np.abs(p["hidden_w"]) * (2 * u - 1) + p["hidden_b"]))) - 1))
    dh = np.abs(p["linear_w"]) + np.mean(np.abs(p["out_w"]) * 4 * s * (1 - s) * np.abs(p["hidden_w"]), axis=-1)
    expected = (-5.0 - 13.3) * dh / (h(1.0) - h(0.0))
    np.testing.assert_allclose(np.asarray(jax.jit(learned_schedule.dlog_snr_dt)(params, t)), expected, rtol=1e-4)
    alpha, sigma = jax.jit(lambda p, u: learned_schedule.LearnedLogSNR(p).alpha_sigma(u))(params, t)
    np.testing.assert_allclose(np.asarray(alpha**2 + sigma**2), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.log(np.asarray(alpha, np.float64) ** 2 / np.asarray(sigma, np.float64) ** 2),
                               log_snr, atol=2e-3)
    with pytest.raises(ValueError, match="logsnr_max"):
        learned_schedule.log_snr(params, t, logsnr_max=-6.0)
