"""EDM deterministic sampler (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models", Alg. 1) and an adapter from any process's x0-predictor to
EDM's denoiser D(x; sigma).

EDM parameterization: x = x_0 + sigma n, n ~ N(0, I); D(x, sigma) ~ E[x_0 | x]; the PF-ODE is
dx/dsigma = (x - D(x, sigma)) / sigma.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.core.results import SampleResult
from gen_jax.core.samplers._checks import check_init, check_shape
from gen_jax.core.samplers._predict import call_checked
from gen_jax.core.samplers.log_snr_time import time_at_log_snr
from gen_jax.core.schedules import karras_sigmas
from gen_jax.core.timeshape import expand_like


def edm_heun_sample(key, denoise_fn, shape, num_steps, sigma_min=0.002, sigma_max=80.0,
                    rho=7.0, *, x_init=None):
    """Karras et al. 2022 Alg. 1 (deterministic, no churn): Heun steps on the EDM PF-ODE.

    Timesteps: ``schedules.karras_sigmas(num_steps, sigma_min, sigma_max, rho)``, sigma_0 =
    sigma_max down to sigma_{N-1} = sigma_min, then sigma_N = 0. Heun (2nd order) on every
    step except the last, an Euler step to sigma = 0 (which returns D(x, sigma_min)).

    denoise_fn(x (B, ...), sigma (B,)) -> D like x: a denoiser in the EDM/VE parameterization;
    for a network trained on another process use ``edm_denoiser``. x_T = sigma_max z (or
    x_init, already at scale sigma_max). num_steps >= 2. No process argument: EDM's process is
    fixed (x = x_0 + sigma n). Returns SampleResult(samples like shape, nfe = 2 num_steps - 1).
    """
    shape = check_shape(shape)
    check_init(x_init, shape)
    sigmas = karras_sigmas(num_steps, sigma_min, sigma_max, rho)
    key_init, _ = jax.random.split(key)
    x = sigmas[0] * jax.random.normal(key_init, shape) if x_init is None else jnp.asarray(x_init)

    def slope(x, sigma):
        d = call_checked(denoise_fn, x, jnp.full((shape[0],), sigma))
        return (x - d) / sigma

    def heun(x, i):
        d = slope(x, sigmas[i])
        dsigma = sigmas[i + 1] - sigmas[i]
        x_euler = (x + dsigma * d).astype(x.dtype)
        return (x + 0.5 * dsigma * (d + slope(x_euler, sigmas[i + 1]))).astype(x.dtype), None

    x, _ = jax.lax.scan(heun, x, jnp.arange(num_steps - 1))
    last = x + (sigmas[num_steps] - sigmas[num_steps - 1]) * slope(x, sigmas[num_steps - 1])
    return SampleResult(last.astype(x.dtype), 2 * num_steps - 1)


def edm_denoiser(x0_fn, process):
    """D(x, sigma) for EDM samplers from ``x0_fn(x, t)``, an x_0-predictor under ``process``
    (e.g. ``param.Denoiser(VPSDE(), fn=fn, prediction='eps').x0``).

    With x_t = alpha x_0 + sigma_p eps, x_t / alpha = x_0 + (sigma_p/alpha) eps is EDM's x at
    sigma = sigma_p / alpha = exp(-logSNR/2). So D(x, sigma) = x0_fn(alpha(t) x, t) with t the
    time where logSNR(t) = -2 log sigma (bisection on ``process.log_snr``). VE processes have
    alpha = 1 and sigma_p = sigma. Sigmas outside the process's range [sigma(0), sigma(T)]
    are clamped to its end times, so pick sigma_min/sigma_max inside it (VPSDE(): about
    [0, 152]; VESDE(): [0.01, 50]; LinearLogSNR(): [exp(-6.65), exp(2.5)]).
    """
    T = process.T

    def denoise(x, sigma):
        t = time_at_log_snr(process, -2.0 * jnp.log(sigma), 0.0, T)
        alpha, _ = process.alpha_sigma(t)
        return x0_fn(expand_like(alpha, x) * x, t)

    return denoise
