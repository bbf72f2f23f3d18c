"""The Gaussian family's PF-ODE defaults against closed forms (exact scores), and the convergence
rule of the comparison's audit (experiments.comparison.report.converged).

Process: the digits Gaussian family of the comparison (VDM linear logSNR from 8 at t=0 to -5 at
t=1); the solver settings are read from the family's default config (rtol = atol = 1e-6 at
t_min = 1e-5, forward dequantization, Hutchinson trace, dopri5). Small D and few examples keep
this file fast.
"""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments.comparison.report import converged
from gen_jax.core.gaussian_data import GaussianData
from gen_jax.core.ode_likelihood import pf_ode_bits_per_dim, pf_ode_nll
from gen_jax.families import gaussian

EVAL = gaussian.GaussianDiffusionFamily().default_config().eval
PROCESS = gaussian.process_of(ml_collections.ConfigDict(dict(logsnr_max=8.0, logsnr_min=-5.0)))
SOLVE = dict(t_min=EVAL.ode_t_min, rtol=EVAL.ode_tolerance, atol=EVAL.ode_tolerance,
             divergence="hutchinson", probe=EVAL.ode_probe)
SHAPE, D = (4, 4, 1), 16


def test_defaults_are_the_measured_converged_settings():
    assert (EVAL.ode_t_min, EVAL.ode_tolerance, EVAL.ode_check_tolerance) == (1e-5, 1e-6, 1e-7)
    assert not EVAL.vlb_full


def _coeffs(t):
    a, s = PROCESS.alpha_sigma(jnp.full((1,), t, jnp.float32))
    return float(a[0]), float(s[0])


def test_gaussian_data_pf_ode_nll_at_defaults_matches_closed_form():
    """Diagonal Gaussian data, exact score: -log p_ode(x) at the defaults equals the float64
    closed form within 0.01 bits/dim per example. The flow is affine per dimension
    ((x - alpha mu) / std_t is conserved), so log p_ode(x) = log q_tmin(x) + log N(z1; 0, I)
    - log q_1(z1)."""
    rng = np.random.default_rng(0)
    mu, sd = rng.uniform(-0.5, 0.5, SHAPE), rng.uniform(0.05, 0.6, SHAPE)
    data = GaussianData(jnp.asarray(mu, jnp.float32), jnp.asarray(sd, jnp.float32))
    a0, s0 = _coeffs(EVAL.ode_t_min)
    a1, s1 = _coeffs(1.0)
    n = 8
    x = a0 * mu + np.sqrt(a0**2 * sd**2 + s0**2) * rng.normal(size=(n,) + SHAPE)  # x ~ q_tmin
    nll = jax.jit(lambda k, y: pf_ode_nll(k, PROCESS, lambda z, t: data.score(PROCESS, z, t), y,
                                          **SOLVE).nll)(jax.random.PRNGKey(1), jnp.asarray(x, jnp.float32))

    def log_normal(y, m, v):
        return np.sum((-0.5 * np.log(2 * np.pi * v) - 0.5 * (y - m) ** 2 / v).reshape(len(y), -1), -1)

    v0, v1 = a0**2 * sd**2 + s0**2, a1**2 * sd**2 + s1**2
    z1 = a1 * mu + (x - a0 * mu) * np.sqrt(v1 / v0)
    ref = -(log_normal(x, a0 * mu, v0) + log_normal(z1, 0.0, 1.0) - log_normal(z1, a1 * mu, v1))
    err = (np.asarray(nll, np.float64) - ref) / (D * math.log(2))
    assert np.abs(err).max() < 0.01, err


def _mixture(num_levels, seed, n):
    """Independent dims with K levels of non-uniform probabilities; the exact score of the diffused
    data (a Gaussian mixture per dimension, by autodiff), n samples, and -log2 P(k)/D (float64)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(D, num_levels)) * 1.5
    log_pi = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    centres = (2.0 * np.arange(num_levels) + 1.0) / num_levels - 1.0
    lp, c = jnp.asarray(log_pi, jnp.float32), jnp.asarray(centres, jnp.float32)

    def log_density(x, t):  # (B, *SHAPE), (B,) -> (B,)
        alpha, sigma = PROCESS.alpha_sigma(t)
        xf = x.reshape(x.shape[0], D, 1)
        comp = -0.5 * ((xf - alpha[:, None, None] * c) / sigma[:, None, None]) ** 2
        return jnp.sum(jax.nn.logsumexp(lp + comp, axis=-1), axis=-1)

    score = jax.grad(lambda x, t: jnp.sum(log_density(x, t)))
    k = np.stack([rng.choice(num_levels, size=n, p=np.exp(log_pi[d])) for d in range(D)], -1)
    exact = -np.take_along_axis(log_pi[None], k[..., None], -1)[..., 0].sum(-1) / (D * math.log(2))
    return score, jnp.asarray(k.reshape((n,) + SHAPE), jnp.int32), exact


def _bound(score, k, key, **solve):
    kw = dict(SOLVE, **solve)
    return np.asarray(jax.jit(lambda kk: pf_ode_bits_per_dim(
        key, PROCESS, score, kk, 17, dequantization="forward", **kw).terms["bits_per_dim"])(k),
        np.float64)


def test_forward_dequantized_bound_at_defaults_matches_k_level_mixture():
    """K = 17 levels (digits), exact score: the PF-ODE bound at the defaults sits on
    -log2 P(k)/D within 0.01 bits/dim on average (and is not below it: mean >= -3 SE)."""
    score, k, exact = _mixture(17, seed=2, n=16)
    diff = _bound(score, k, jax.random.PRNGKey(3)) - exact
    mean, se = diff.mean(), diff.std(ddof=1) / math.sqrt(diff.size)
    assert abs(mean) < 0.01, (mean, se)
    assert mean > -3 * se, (mean, se)


def test_a_subset_sees_the_same_probes_and_draws():
    """The convergence check re-solves the first examples in a smaller batch with the same key:
    per example it must get the same dequantization noise and probe (identical values here)."""
    score, k, _ = _mixture(17, seed=6, n=6)
    key = jax.random.PRNGKey(7)
    whole, head = _bound(score, k, key, rtol=1e-3, atol=1e-3), _bound(score, k[:3], key, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(head, whole[:3], rtol=1e-5)


def test_converged_against_hand_computed_paired_statistics():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([1.1, 1.9, 3.2, 3.8])  # a - b = [-0.1, 0.1, -0.2, 0.2]: mean 0, SE sqrt(0.1/3)/2
    se = math.sqrt((0.01 + 0.01 + 0.04 + 0.04) / 3) / 2
    r = converged(a, b, max_se=1.0)
    assert r["difference"] == pytest.approx(0.0, abs=1e-12) and r["se"] == pytest.approx(se, rel=1e-12)
    assert r["converged"] and not r["inconclusive"]
    assert not converged(a + 0.5, b, max_se=1.0)["converged"]  # 0.5 > max(2 SE = 0.18, 0.02)
    assert converged(a + 0.015, a)["converged"]  # below the 0.02 floor, SE 0
    assert not converged(a + 0.03, a)["converged"]  # above the floor, SE 0
    r = converged(a, b)  # SE 0.091 > 0.02: too few examples to tell
    assert not r["converged"] and r["inconclusive"]


def test_loose_solve_of_a_rough_score_is_called_unconverged():
    """The exact mixture score is smooth in t (even rtol=atol=1e-2 converges), so the hard case
    mimics the trained network: the exact score plus a term oscillating like its time features,
    sin(1000 t). On the same draws rtol=atol=1e-2 vs 1e-3 is not converged; the defaults vs 10x
    tighter are."""
    exact_score, k, _ = _mixture(17, seed=4, n=16)

    def score(x, t):
        _, sigma = PROCESS.alpha_sigma(t)
        wiggle = (jnp.sin(1000.0 * t) / sigma).reshape((-1,) + (1,) * (x.ndim - 1))
        return exact_score(x, t) + 0.3 * wiggle * jnp.tanh(x)

    key = jax.random.PRNGKey(5)
    loose, tight = (_bound(score, k, key, t_min=1e-3, rtol=tol, atol=tol) for tol in (1e-2, 1e-3))
    assert not converged(loose, tight)["converged"], converged(loose, tight)
    good = _bound(score, k, key, t_min=1e-3)
    better = _bound(score, k, key, t_min=1e-3, rtol=EVAL.ode_check_tolerance, atol=EVAL.ode_check_tolerance)
    assert converged(good, better)["converged"], converged(good, better)
