"""Losses with the Gaussian-data oracle as the model: Monte Carlo means (5 SE) against the
closed-form minimum risk integrated over t by quadrature in numpy float64."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from gen_jax.core.gaussian_data import GaussianData
from gen_jax.core.losses import ddpm_eps_loss, dsm_loss, eps_mse_loss, sample_times, v_mse_loss
from gen_jax.core.schedules import discretize_process
from gen_jax.core.sde import VESDE, VPSDE

MEAN = np.array([0.3, -0.5, 1.0, 0.0])
STD = np.array([0.5, 1.0, 0.2, 2.0])
DATA = GaussianData(jnp.asarray(MEAN, jnp.float32), jnp.asarray(STD, jnp.float32))
B = 20000


def _vp_alpha_sigma(t):
    log_m = -t**2 * (20.0 - 0.1) / 4 - t * 0.1 / 2
    return np.exp(log_m), np.sqrt(1 - np.exp(2 * log_m))


def _ve_alpha_sigma(t):
    return np.ones_like(t), 0.01 * 5000.0**t


def _min_eps_mse(alpha, sigma):
    """sum_d Var(eps_d | x_t) = alpha^2 s_d^2 / (alpha^2 s_d^2 + sigma^2), numpy float64."""
    a2s2 = alpha[..., None] ** 2 * STD**2
    return np.sum(a2s2 / (a2s2 + sigma[..., None] ** 2), -1)


def _time_average(integrand, t_min):
    """(1/(1 - t_min)) int_{t_min}^1 integrand(t) dt by adaptive quadrature."""
    value, _ = integrate.quad(lambda t: float(integrand(np.array(t))), t_min, 1.0, limit=200, points=[1e-2, 1e-1])
    return value / (1.0 - t_min)


def _assert_mc_mean(losses, expected):
    losses = np.asarray(losses, np.float64)
    se = losses.std() / np.sqrt(losses.size)
    assert abs(losses.mean() - expected) < 5 * se, (losses.mean(), expected, se)


@pytest.fixture(scope="module")
def x0():
    return DATA.sample(jax.random.PRNGKey(0), B)


def test_sample_times_range_spacing_and_uniformity():
    t_min = 0.01
    t = np.asarray(jax.jit(sample_times, static_argnums=(1, 3))(jax.random.PRNGKey(1), 64, t_min, True))
    assert t.min() >= t_min and t.max() <= 1.0
    np.testing.assert_allclose(np.diff(np.sort(t)), (1 - t_min) / 64, rtol=1e-4)
    # Each antithetic time is marginally uniform on [t_min, 1]: KS test over keys.
    first = jax.jit(jax.vmap(lambda k: sample_times(k, 8, t_min)[3]))(jax.random.split(jax.random.PRNGKey(2), 2000))
    assert stats.kstest(np.asarray(first), stats.uniform(t_min, 1 - t_min).cdf).pvalue > 1e-3
    iid = np.asarray(jax.jit(lambda k: sample_times(k, 2000, t_min, antithetic=False))(jax.random.PRNGKey(3)))
    assert stats.kstest(iid, stats.uniform(t_min, 1 - t_min).cdf).pvalue > 1e-3


def test_eps_mse_of_oracle_is_the_closed_form_minimum(x0):
    vp = VPSDE()
    oracle = functools.partial(DATA.eps, vp)
    loss = jax.jit(lambda k, x: eps_mse_loss(k, oracle, x, vp, reduce_mean=False))
    expected = _time_average(lambda t: _min_eps_mse(*_vp_alpha_sigma(t)), 1e-5)
    _assert_mc_mean(loss(jax.random.PRNGKey(4), x0), expected)
    # A model that always predicts 0 pays E||eps||^2 = D; reduce_mean divides by D.
    zero = jax.jit(lambda k, x: eps_mse_loss(k, lambda x, t: jnp.zeros_like(x), x, vp))
    _assert_mc_mean(zero(jax.random.PRNGKey(5), x0), 1.0)


def test_v_mse_of_oracle_is_the_closed_form_minimum(x0):
    vp = VPSDE()

    def oracle_v(x, t):
        alpha, sigma = vp.alpha_sigma(t)
        return alpha[:, None] * DATA.eps(vp, x, t) - sigma[:, None] * DATA.x0(vp, x, t)

    def min_v_mse(t):
        # Var(v | x_t) for v = alpha eps - sigma x0 by Gaussian conditioning, summed over dims.
        a, s = (c[..., None] for c in _vp_alpha_sigma(t))
        cov = a * s * (1 - STD**2)
        var_xt = a**2 * STD**2 + s**2
        return np.sum(a**2 + s**2 * STD**2 - cov**2 / var_xt, -1)

    loss = jax.jit(lambda k, x: v_mse_loss(k, oracle_v, x, vp, reduce_mean=False))
    _assert_mc_mean(loss(jax.random.PRNGKey(6), x0), _time_average(min_v_mse, 1e-5))


def test_dsm_with_sigma2_weighting_is_the_eps_mse(x0):
    vp = VPSDE()
    key = jax.random.PRNGKey(7)

    @jax.jit
    def both(key, x):
        dsm = dsm_loss(key, functools.partial(DATA.score, vp), x[:256], vp, prediction="score")
        eps = eps_mse_loss(key, functools.partial(DATA.eps, vp), x[:256], vp, reduce_mean=False)
        return dsm, eps

    dsm, eps = both(key, x0)
    np.testing.assert_allclose(np.asarray(dsm), np.asarray(eps), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_likelihood_weighted_dsm_of_oracle_matches_closed_form(name, x0):
    # E||score + eps/sigma||^2 at the exact score = min_eps_mse / sigma^2; weighted by g^2.
    process, alpha_sigma = (VPSDE(), _vp_alpha_sigma) if name == "vp" else (VESDE(), _ve_alpha_sigma)
    t_min = 1e-3

    def integrand(t):
        alpha, sigma = alpha_sigma(t)
        g2 = 0.1 + t * 19.9 if name == "vp" else sigma**2 * 2 * np.log(5000.0)
        return g2 * _min_eps_mse(alpha, sigma) / sigma**2

    loss = jax.jit(lambda k, x: dsm_loss(k, functools.partial(DATA.score, process), x, process,
                                         weighting="likelihood", t_min=t_min))
    _assert_mc_mean(loss(jax.random.PRNGKey(8), x0), _time_average(integrand, t_min))


def test_ddpm_eps_loss_of_oracle_is_the_minimum(x0):
    vp = VPSDE()
    n = 100
    schedule = discretize_process(vp, n)
    loss = jax.jit(lambda k, x: ddpm_eps_loss(k, functools.partial(DATA.eps, vp), x, schedule, reduce_mean=False))
    t = np.arange(1, n + 1) / n
    expected = np.mean(_min_eps_mse(*_vp_alpha_sigma(t)))
    _assert_mc_mean(loss(jax.random.PRNGKey(9), x0), expected)


def test_invalid_inputs_raise(x0):
    vp = VPSDE()
    model = functools.partial(DATA.eps, vp)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="weighting"):
        dsm_loss(key, model, x0[:4], vp, prediction="eps", weighting="uniform")
    with pytest.raises(ValueError, match="prediction"):
        eps_mse_loss(key, model, x0[:4], vp, prediction="noise")
    with pytest.raises(ValueError, match="prediction"):
        ddpm_eps_loss(key, model, x0[:4], discretize_process(vp, 10), prediction="noise")
    with pytest.raises(ValueError, match="output shape"):
        jax.jit(lambda x: eps_mse_loss(key, lambda x, t: x[:, :2], x, vp))(x0[:4])
    with pytest.raises(ValueError, match="t_min"):
        sample_times(key, 4, t_min=1.0)
    with pytest.raises(ValueError, match="batch"):
        sample_times(key, 0)
