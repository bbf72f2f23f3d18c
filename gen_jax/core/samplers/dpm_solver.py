"""DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", Alg. 2): multistep data-prediction solver of the probability-flow ODE
written in lambda = log(alpha / sigma) (half the log-SNR).

With h_i = lambda_i - lambda_{i-1} > 0 (time decreasing, lambda increasing):
  x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i expm1(-h_i) D_i,
first order: D_i = x0_hat(x_{i-1}); second order (2M), r = h_{i-1} / h_i:
  D_i = (1 + 1/(2r)) x0_hat(x_{i-1}) - 1/(2r) x0_hat(x_{i-2}).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.core.samplers._checks import check_choice, check_init, check_num_steps, check_shape, check_t_min
from gen_jax.core.samplers._predict import resolve_model, x0_only
from gen_jax.core.samplers.log_snr_time import time_at_log_snr


def dpm_solver_pp_sample(key, denoiser, process, shape, num_steps, t_min=1e-3, order=2, *,
                         prediction=None, x_init=None):
    """DPM-Solver++(2M) from t = T to t_min in num_steps steps, one model call per step.

    Timesteps: uniform in lambda = log(alpha/sigma) between lambda(T) and lambda(t_min), the
    times found by bisection on ``process.log_snr``. The first step is first order (no history
    yet) and so is the last ("lower order final", which keeps few-step sampling stable);
    order=1 makes every step first order (DDIM in lambda). Returns x at t_min, not denoised.

    denoiser: a ``param.Denoiser`` or a plain ``fn(x, t)`` with ``prediction=``; conversions use
    ``process.alpha_sigma``. process: anything with ``alpha_sigma`` and ``log_snr`` (VP, sub-VP,
    VE, LogSNRSDE, ...). x_T is ``process.prior_sample`` when the process has one, else
    N(0, sigma(T)^2 I); or x_init. Returns (samples like shape, NFE = num_steps).
    """
    shape = check_shape(shape)
    num_steps = check_num_steps(num_steps)
    check_choice(order, (1, 2), "order")
    T = getattr(process, "T", 1.0)
    t_min = check_t_min(t_min, T)
    check_init(x_init, shape)
    fn, prediction = resolve_model(denoiser, prediction)

    half_logsnr_ends = 0.5 * process.log_snr(jnp.array([T, t_min]))
    lambdas = jnp.linspace(half_logsnr_ends[0], half_logsnr_ends[1], num_steps + 1)
    times = time_at_log_snr(process, 2.0 * lambdas[1:-1], t_min, T)
    times = jnp.concatenate([jnp.array([T]), times, jnp.array([t_min])])
    alphas, sigmas = process.alpha_sigma(times)
    lambdas = jnp.log(alphas) - jnp.log(sigmas)  # recompute at the bisected times

    key_init, _ = jax.random.split(key)
    if x_init is not None:
        x = jnp.asarray(x_init)
    elif hasattr(process, "prior_sample"):
        x = process.prior_sample(key_init, shape)
    else:
        x = sigmas[0] * jax.random.normal(key_init, shape)

    def x0_at(x, i):
        batch = shape[0]
        return x0_only(fn, prediction, x, jnp.full((batch,), times[i]),
                       jnp.full((batch,), alphas[i]), jnp.full((batch,), sigmas[i]))

    def update(x, i, d):
        """Exponential-integrator step from i-1 to i with data estimate d."""
        h = lambdas[i] - lambdas[i - 1]
        return sigmas[i] / sigmas[i - 1] * x - alphas[i] * jnp.expm1(-h) * d

    x0_prev = x0_at(x, 0)
    x = update(x, 1, x0_prev)
    if num_steps == 1:
        return x, 1

    def step(carry, i):
        x, x0_prev = carry
        x0 = x0_at(x, i - 1)
        if order == 2:
            r = (lambdas[i - 1] - lambdas[i - 2]) / (lambdas[i] - lambdas[i - 1])
            d = (1.0 + 0.5 / r) * x0 - 0.5 / r * x0_prev
            d = jnp.where(i == num_steps, x0, d)
        else:
            d = x0
        return (update(x, i, d), x0), None

    (x, _), _ = jax.lax.scan(step, (x, x0_prev), jnp.arange(2, num_steps + 1))
    return x, num_steps
