"""Discrete VLB and VDM ELBOs (gen_jax.core.likelihood) against information-theoretic facts.

Data: D i.i.d. dimensions, each a K-level categorical with known probabilities P, so the true
entropy H = -D sum_k P_k log P_k is exact. The *exact* denoiser for this data is computable by
brute force over the K levels: E[x_0 | z_t] = sum_k softmax_k(log P_k - (z - alpha c_k)^2 /
(2 sigma^2)) c_k. Facts checked:
- any bound, averaged over data, is >= H (Gibbs: E[-log P_model] >= H);
- with the exact denoiser the continuous-time ELBO's gap is KL(q(z_1) || N(0, I)) plus the
  decoder's KL at t_min, both ~1e-3 nats here, so E[ELBO] = H up to Monte Carlo error
  (for any schedule: VDM's invariance; this also checks the learned schedule's jvp derivative);
- the discrete VLB's full sum and its one-step estimator have the same mean;
- for a point mass the VLB has a closed form (all KL terms vanish).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from gen_jax.core import learned_schedule
from gen_jax.core.likelihood import (continuous_elbo, discrete_time_elbo, vdm_reconstruction_nll, vlb_one_t,
                                     vlb_terms_full)
from gen_jax.core.units import levels_to_centers
from gen_jax.core.schedules import LinearLogSNR, discretize_process
from gen_jax.core.sde import VPSDE

K = 4
D = 2
P = np.array([0.1, 0.4, 0.3, 0.2])
ENTROPY = -D * float(np.sum(P * np.log(P)))


class ExactDenoiser:
    """Posterior-mean eps-predictor for the i.i.d. categorical data above (``.eps(z, t)``)."""

    def __init__(self, process, probs=P):
        self.process = process
        self.log_probs = jnp.log(jnp.asarray(probs, jnp.float32))

    def eps(self, z, t):
        alpha, sigma = self.process.alpha_sigma(t)
        alpha, sigma = alpha.reshape(-1, 1, 1), sigma.reshape(-1, 1, 1)
        centres = levels_to_centers(jnp.arange(self.log_probs.shape[0]), self.log_probs.shape[0])
        logits = self.log_probs - 0.5 * ((z[..., None] - alpha * centres) / sigma) ** 2
        x0 = jnp.sum(jax.nn.softmax(logits, axis=-1) * centres, axis=-1)
        return (z - alpha[..., 0] * x0) / sigma[..., 0]


def sample_levels(n, seed):
    return jnp.asarray(np.random.default_rng(seed).choice(K, size=(n, D), p=P), jnp.int32)


def mean_and_se(fn, x, num_keys):
    """Mean over num_keys independent calls of a jitted estimator, and its standard error."""
    values = np.concatenate([np.asarray(fn(jax.random.PRNGKey(i), x), np.float64)
                             for i in range(num_keys)])
    return values.mean(), values.std(ddof=1) / math.sqrt(values.size)


X_DATA = sample_levels(32768, seed=0)
VP = VPSDE()
LEARNED = learned_schedule.LearnedLogSNR(learned_schedule.init(jax.random.PRNGKey(1), 64))
ELBO_CASES = {"vp": (VP, 1e-5), "linear_logsnr": (LinearLogSNR(), 0.0), "learned": (LEARNED, 0.0)}


@pytest.mark.parametrize("name", sorted(ELBO_CASES))
def test_continuous_elbo_with_exact_denoiser_equals_entropy(name):
    process, t_min = ELBO_CASES[name]
    fn = jax.jit(lambda k, x: continuous_elbo(k, ExactDenoiser(process), process, x, K, t_min=t_min)[0])
    mean, se = mean_and_se(fn, X_DATA, num_keys=8)
    assert se < 0.03
    assert abs(mean - ENTROPY) < 4.5 * se + 5e-3


def test_discrete_time_elbo_bounds_entropy_and_tightens_with_steps():
    process = LinearLogSNR()
    means = {}
    for steps in (10, 1000):
        fn = jax.jit(lambda k, x, s=steps: discrete_time_elbo(k, ExactDenoiser(process), process, x, K, s)[0])
        means[steps] = mean_and_se(fn, X_DATA, num_keys=4)
    (coarse, coarse_se), (fine, fine_se) = means[10], means[1000]
    assert coarse > ENTROPY + 1.0 > ENTROPY + 4 * coarse_se  # 10 steps: a visibly loose bound
    assert abs(fine - ENTROPY) < 4.5 * fine_se + 1e-2  # 1000 steps: close to continuous time


def test_reconstruction_matches_bayes_rule_in_z_space():
    """VDM's decoder p(x | z) equals the Bayes posterior over levels under a uniform prior,
    computed independently from Gaussian pdfs of z (not z / alpha) in float64."""
    log_snr = jnp.array([2.0, -1.0, 6.0])
    z = jnp.array([[0.3, -0.8], [1.5, 0.0], [-0.2, 0.9]], jnp.float32)
    x_int = jnp.array([[2, 0], [3, 1], [1, 3]], jnp.int32)
    nll = vdm_reconstruction_nll(z, x_int, log_snr, K)
    snr = np.exp(np.asarray(log_snr, np.float64))
    alpha, sigma = np.sqrt(snr / (1 + snr)), np.sqrt(1 / (1 + snr))
    centres = (2 * np.arange(K) + 1) / K - 1
    dens = norm.pdf(np.asarray(z, np.float64)[..., None], alpha[:, None, None] * centres, sigma[:, None, None])
    post = dens / dens.sum(-1, keepdims=True)
    expected = -np.log(np.take_along_axis(post, np.asarray(x_int)[..., None], -1)[..., 0]).sum(-1)
    np.testing.assert_allclose(np.asarray(nll), expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def vlb_setup():
    schedule = discretize_process(VP, 50)
    return schedule, ExactDenoiser(VP)


def test_vlb_full_sum_equals_mean_of_one_step_estimator(vlb_setup):
    schedule, denoiser = vlb_setup
    x = jnp.repeat(sample_levels(1, seed=3), 4096, axis=0)
    one_t = jax.jit(lambda k, y: vlb_one_t(k, denoiser, schedule, y, K)[0])
    one_mean, one_se = mean_and_se(one_t, x, num_keys=2)
    full = jax.jit(lambda k, y: vlb_terms_full(k, denoiser, schedule, y, K, chunk=10))
    total, terms = full(jax.random.PRNGKey(9), x[:256])
    total = np.asarray(total, np.float64)
    full_mean, full_se = total.mean(), total.std(ddof=1) / math.sqrt(total.size)
    assert abs(one_mean - full_mean) < 4.5 * math.hypot(one_se, full_se)
    parts = terms["prior"] + terms["decoder"] + terms["kl"]
    np.testing.assert_allclose(np.asarray(parts), total, rtol=1e-5)
    assert np.all(np.asarray(terms["per_step"])[:, 1:] >= -1e-5)  # KLs are non-negative


def test_vlb_with_exact_denoiser_bounds_entropy(vlb_setup):
    schedule, denoiser = vlb_setup
    one_t = jax.jit(lambda k, y: vlb_one_t(k, denoiser, schedule, y, K)[0])
    mean, se = mean_and_se(one_t, X_DATA, num_keys=4)
    assert mean > ENTROPY - 4 * se


@pytest.mark.parametrize("model_variance", ["small", "large"])
def test_vlb_of_point_mass_has_closed_form(vlb_setup, model_variance):
    """Data always at level 1 and the exact denoiser of that point mass (x0_hat = c exactly):
    every KL term for i >= 1 vanishes with the 'small' variance, the decoder is a Gaussian bin
    probability around the centre, and the prior term is a 1-D Gaussian KL (float64 by hand).
    With 'large' variances the KL terms are the closed-form variance mismatches."""
    schedule, _ = vlb_setup
    point = np.zeros(K)
    point[1] = 1.0
    denoiser = ExactDenoiser(VP, probs=point + 1e-30)
    x = jnp.ones((4, D), jnp.int32)
    full = jax.jit(lambda k, y: vlb_terms_full(k, denoiser, schedule, y, K, chunk=25,
                                               model_variance=model_variance))
    total, terms = full(jax.random.PRNGKey(0), x)
    abar = np.asarray(schedule.alphas_cumprod, np.float64)
    post_var = np.asarray(schedule.posterior_variance, np.float64)
    betas = np.asarray(schedule.betas, np.float64)
    c = (2 * 1 + 1) / K - 1
    prior = 0.5 * (abar[-1] * c**2 + (1 - abar[-1]) - 1 - np.log(1 - abar[-1]))
    model_var = post_var[1:] if model_variance == "small" else betas[1:]  # steps 1..N-1
    decoder_std = math.sqrt(post_var[1])
    decoder = -math.log(norm.cdf(1 / K / decoder_std) - norm.cdf(-1 / K / decoder_std))
    true_var = post_var[1:]
    kl = np.sum(0.5 * (np.log(model_var / true_var) + true_var / model_var - 1))
    expected = D * (prior + decoder + kl)
    np.testing.assert_allclose(np.asarray(total), expected, rtol=2e-4, atol=2e-6)


def test_learned_schedule_gradients_flow_through_elbo():
    """d ELBO / d params along a random direction: jax.grad agrees with a central difference
    (same key, so the estimator is a deterministic function of the parameters)."""
    params = learned_schedule.init(jax.random.PRNGKey(2), 16)
    x = X_DATA[:128]

    def loss(p):
        process = learned_schedule.LearnedLogSNR(p)
        return jnp.mean(continuous_elbo(jax.random.PRNGKey(4), ExactDenoiser(process), process, x, K)[0])

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    grads = value_and_grad(params)[1]
    direction = jax.tree.map(lambda a: jax.random.normal(jax.random.PRNGKey(5), a.shape), params)
    analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
    h = 1e-2
    shifted = lambda s: jax.tree.map(lambda a, d: a + s * d, params, direction)
    numeric = (float(value_and_grad(shifted(h))[0]) - float(value_and_grad(shifted(-h))[0])) / (2 * h)
    assert abs(analytic) > 1e-3
    assert abs(analytic - numeric) < 0.05 * abs(analytic)


def test_bounds_reject_bad_inputs(vlb_setup):
    schedule, denoiser = vlb_setup
    key = jax.random.PRNGKey(0)
    x = jnp.zeros((2, D), jnp.int32)
    with pytest.raises(ValueError, match="integer"):
        vlb_one_t(key, denoiser, schedule, x.astype(jnp.float32), K)
    with pytest.raises(ValueError, match="model_variance"):
        vlb_one_t(key, denoiser, schedule, x, K, model_variance="learned")
    with pytest.raises(ValueError, match="t_min"):
        continuous_elbo(key, denoiser, VP, x, K, t_min=1.0)
    with pytest.raises(ValueError, match="num_steps"):
        discrete_time_elbo(key, denoiser, VP, x, K, 0)
    with pytest.raises(ValueError, match="batched"):
        continuous_elbo(key, denoiser, VP, jnp.zeros((D,), jnp.int32), K)
