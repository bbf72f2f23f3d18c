"""Schedules against closed forms computed independently in numpy float64."""
import numpy as np
import pytest

from gen_jax.core.schedules import (
    LinearLogSNR, cosine_betas, discrete_schedule, discretize_process, karras_sigmas, linear_betas)
from gen_jax.core.sde import VESDE, VPSDE, LogSNRSDE, SubVPSDE


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("n", [1000, 250])
def test_linear_betas_are_ddpm_betas_scaled_by_1000_over_n(n):
    i = np.arange(n)
    expected = (1000.0 / n) * (1e-4 + i * (0.02 - 1e-4) / (n - 1))
    np.testing.assert_allclose(np.asarray(linear_betas(n)), expected, rtol=1e-6)


def test_linear_betas_at_1000_are_vp_beta_over_n():
    # DDPM at N=1000 is the VP SDE's discretization: beta_i = beta(t = i/(N-1)) / N (Song et al. 2021).
    vp = VPSDE()
    t = np.arange(1000) / 999.0
    np.testing.assert_allclose(np.asarray(linear_betas(1000)), (0.1 + t * 19.9) / 1000, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(vp.discrete_betas()), np.asarray(linear_betas(1000)), rtol=1e-6)


def test_cosine_schedule_matches_closed_form_alphas_cumprod():
    n, s = 200, 0.008
    sched = discrete_schedule(cosine_betas(n))
    u = np.arange(1, n + 1) / n
    abar = np.cos((u + s) / (1 + s) * np.pi / 2) ** 2 / np.cos(s / (1 + s) * np.pi / 2) ** 2
    # The last beta is capped at 0.999, so only steps before it follow the closed form.
    np.testing.assert_allclose(np.asarray(sched.alphas_cumprod[:-1]), abar[:-1], rtol=2e-5, atol=1e-7)
    assert np.isclose(float(cosine_betas(n)[-1]), 0.999)


def test_posterior_coefficients_match_gaussian_conditioning():
    betas = np.asarray(linear_betas(100), np.float64)
    sched = discrete_schedule(betas.astype(np.float32))
    abar = np.cumprod(1 - betas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    # Condition the joint Gaussian of (x_{i-1}, x_i) given x0: cov(x_{i-1}, x_i) = sqrt(alpha_i)(1 - abar_prev).
    gain = np.sqrt(1 - betas) * (1 - abar_prev) / (1 - abar)
    var = (1 - abar_prev) - np.sqrt(1 - betas) * (1 - abar_prev) * gain
    coef1 = np.sqrt(abar_prev) - gain * np.sqrt(abar)
    np.testing.assert_allclose(np.asarray(sched.alphas_cumprod), abar, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(sched.posterior_mean_coef2), gain, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(sched.posterior_mean_coef1), coef1, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(sched.posterior_variance), var, rtol=1e-4, atol=1e-9)
    log_var = np.asarray(sched.posterior_log_variance_clipped)
    np.testing.assert_allclose(log_var[1:], np.log(var[1:]), rtol=1e-4)
    assert log_var[0] == log_var[1]
    np.testing.assert_allclose(np.asarray(sched.times), np.arange(1, 101) / 100, rtol=1e-6)


def test_discretized_vp_converges_to_the_ddpm_chain():
    # abar from the continuous VP marginal vs prod(1 - beta_i) of VPSDE.discretize's betas:
    # both are the same process in the limit; the gap in log abar shrinks like 1/N.
    gaps = []
    for n in (100, 400):
        vp = VPSDE(N=n)
        sched = discretize_process(vp, n)
        t = np.arange(1, n + 1) / n
        log_m = -t**2 * 19.9 / 4 - t * 0.1 / 2
        np.testing.assert_allclose(np.log(np.asarray(sched.alphas_cumprod)), 2 * log_m, rtol=1e-4, atol=1e-6)
        ddpm = np.cumsum(np.log1p(-np.asarray(vp.discrete_betas(), np.float64)))
        gaps.append(np.max(np.abs(2 * log_m - ddpm)))
    assert gaps[0] > 3.5 * gaps[1]
    assert gaps[1] < 0.2  # ~ sum(beta_i^2)/2 = O(1/N)


def test_discretize_logsnr_schedule_divides_by_alpha_at_zero():
    schedule = LinearLogSNR()
    sched = discretize_process(schedule, 64)
    t = np.arange(1, 65) / 64
    lsnr = 13.3 + (-5.0 - 13.3) * t
    expected = _sigmoid(lsnr) / _sigmoid(13.3)
    np.testing.assert_allclose(np.asarray(sched.alphas_cumprod), expected, rtol=1e-5)
    via_sde = discretize_process(LogSNRSDE(schedule), 64)
    np.testing.assert_allclose(np.asarray(via_sde.betas), np.asarray(sched.betas), rtol=1e-5)


@pytest.mark.parametrize("process", [VESDE(), SubVPSDE()])
def test_discretize_process_rejects_non_vp(process):
    with pytest.raises(ValueError, match="VP-only"):
        discretize_process(process, 10)


def test_linear_logsnr_closed_form():
    sched = LinearLogSNR()
    t = np.array([0.0, 0.25, 1.0], np.float32)
    np.testing.assert_allclose(np.asarray(sched.log_snr(t)), 13.3 - 18.3 * t, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sched.dlog_snr_dt(t)), -18.3, rtol=1e-6)
    alpha, sigma = sched.alpha_sigma(t)
    np.testing.assert_allclose(np.asarray(alpha) ** 2, _sigmoid(13.3 - 18.3 * t), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(alpha) ** 2 + np.asarray(sigma) ** 2, 1.0, rtol=1e-6)


def test_karras_sigmas_match_edm_formula():
    n = 18
    sigmas = np.asarray(karras_sigmas(n))
    i = np.arange(n)
    expected = (80 ** (1 / 7) + i / (n - 1) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(sigmas[:-1], expected, rtol=1e-5)
    assert sigmas.shape == (n + 1,) and sigmas[-1] == 0.0
    assert np.isclose(sigmas[0], 80.0) and np.isclose(sigmas[-2], 0.002)
    assert np.all(np.diff(sigmas) < 0)


@pytest.mark.parametrize("make, match", [
    (lambda: linear_betas(0), "num_steps"),
    (lambda: linear_betas(10), "num_steps > 20"),
    (lambda: linear_betas(10.0), "int"),
    (lambda: cosine_betas(10, max_beta=1.5), "max_beta"),
    (lambda: cosine_betas(10, s=-0.1), "offset"),
    (lambda: discrete_schedule(np.array([0.1, 1.5])), r"\(0, 1\)"),
    (lambda: discrete_schedule(np.full((2, 3), 0.1)), "1-D"),
    (lambda: discrete_schedule(np.array([0.1])), "at least 2"),
    (lambda: discrete_schedule(np.full(4, 0.1), times=np.ones(3)), "times"),
    (lambda: LinearLogSNR(logsnr_max=-5.0, logsnr_min=13.3), "logsnr_max"),
    (lambda: karras_sigmas(10, rho=0.0), "rho"),
    (lambda: karras_sigmas(10, sigma_min=100.0), "sigma_min"),
    (lambda: karras_sigmas(1), "num_steps"),
])
def test_invalid_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
