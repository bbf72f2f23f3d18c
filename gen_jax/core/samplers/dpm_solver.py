"""DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", Alg. 2): multistep data-prediction solver of the probability-flow ODE
written in lambda = log(alpha / sigma) (half the log-SNR).

With h_i = lambda_i - lambda_{i-1} > 0 (time decreasing, lambda increasing):
  x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i expm1(-h_i) D_i,
first order: D_i = x0_hat(x_{i-1}); second order (2M), r = h_{i-1} / h_i:
  D_i = (1 + 1/(2r)) x0_hat(x_{i-1}) - 1/(2r) x0_hat(x_{i-2}).
A step to t = 0 (sigma = 0, lambda = +inf, alpha = 1) is the first-order step's limit,
x_i = x0_hat(x_{i-1}) (DPM-Solver's ``denoise_to_zero``, diffusers' ``final_sigmas_type='zero'``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core.results import SampleResult
from gen_jax.core.samplers._checks import (
    check_choice, check_init, check_num_steps, check_shape, check_t_min, check_times, compute_dtype)
from gen_jax.core.samplers._predict import resolve_model, x0_only
from gen_jax.core.samplers.log_snr_time import time_at_log_snr

SKIP_TYPES = ("logSNR", "time_uniform", "time_quadratic")


def dpm_solver_timesteps(process, num_steps, t_min=1e-3, skip_type="logSNR"):
    """The (N + 1,) decreasing times from T to t_min of Lu et al. 2022's named grids.

    'logSNR': uniform in lambda = log(alpha/sigma) between lambda(T) and lambda(t_min) (times by
    bisection on ``process.log_snr``); 'time_uniform': linspace(T, t_min, N + 1);
    'time_quadratic': linspace(sqrt(T), sqrt(t_min), N + 1)^2. A jnp array, computed in-graph
    (so a traced process works); for ``dpm_solver_pp_sample(times=...)`` build it outside jit,
    e.g. ``np.append(dpm_solver_timesteps(VPSDE(), 10), 0.0)`` to end with a step to t = 0.
    """
    num_steps = check_num_steps(num_steps)
    check_choice(skip_type, SKIP_TYPES, "skip_type")
    T = process.T
    t_min = check_t_min(t_min, T)
    if skip_type == "time_uniform":
        return jnp.linspace(T, t_min, num_steps + 1)
    if skip_type == "time_quadratic":
        return jnp.linspace(T ** 0.5, t_min ** 0.5, num_steps + 1) ** 2
    half_logsnr_ends = 0.5 * process.log_snr(jnp.array([T, t_min]))
    lambdas = jnp.linspace(half_logsnr_ends[0], half_logsnr_ends[1], num_steps + 1)
    inner = time_at_log_snr(process, 2.0 * lambdas[1:-1], t_min, T)
    return jnp.concatenate([jnp.array([T]), inner, jnp.array([t_min])])


def dpm_solver_pp_sample(key, denoiser, process, shape, num_steps=None, t_min=None, order=2, *,
                         times=None, skip_type=None, lower_order_final=True, prediction=None,
                         x_init=None):
    """DPM-Solver++(2M) along a decreasing time grid, one model call per step.

    Timesteps, one of:
      - ``num_steps`` (+ ``t_min``, default 1e-3, and ``skip_type``, default 'logSNR'):
        ``dpm_solver_timesteps(process, num_steps, t_min, skip_type)`` from T to t_min; returns
        x at t_min, not denoised.
      - ``times``: an explicit strictly decreasing grid (S + 1,) in [0, T], the model called at
        times[:-1] (num_steps, if given, must equal S; t_min and skip_type must be None). x
        starts at times[0] from the prior (or x_init) even if times[0] < T. A final 0 makes the
        last step go to sigma = 0 and return x0_hat(x at times[-2]): t = 0 means alpha = 1,
        sigma = 0 for every process (t=0 is data), whatever ``process.alpha_sigma(0)`` says.
    Step 1 is first order (no history yet). The last step is first order too when
    ``lower_order_final`` (default; keeps few-step sampling stable) or when it goes to t = 0;
    diffusers uses a second-order last step (to sigma > 0) from 15 steps on, DPM-Solver's
    reference code from 10 on: pass lower_order_final=False to match them there.
    order=1 makes every step first order (DDIM in lambda).

    denoiser: a ``param.Denoiser`` or a plain ``fn(x, t)`` with ``prediction=``; conversions use
    ``process.alpha_sigma``. process: a ``sde.Process`` (VP, sub-VP, VE, LogSNRSDE, ...; a
    log-SNR schedule through ``LogSNRSDE``). x_T is ``process.prior_sample``, or x_init (its dtype is kept; updates run in at least float32).
    Returns SampleResult(samples like shape, nfe = number of steps).
    """
    shape = check_shape(shape)
    check_choice(order, (1, 2), "order")
    T = process.T
    check_init(x_init, shape)
    fn, prediction = resolve_model(denoiser, prediction)
    to_zero = False
    if times is None:
        if num_steps is None:
            raise ValueError("give num_steps (with t_min, skip_type) or times")
        grid = dpm_solver_timesteps(process, num_steps, 1e-3 if t_min is None else t_min,
                                    skip_type or "logSNR")
    else:
        if t_min is not None or skip_type is not None:
            raise ValueError("t_min and skip_type have no effect with times=; leave them None")
        grid = check_times(times, T, num_steps)
        to_zero = bool(grid[-1] == 0.0)
        grid = jnp.asarray(grid[:-1] if to_zero else grid, jnp.float32)
    num_steps = grid.shape[0] - 1 + int(to_zero)
    alphas, sigmas = process.alpha_sigma(grid)
    lambdas = jnp.log(alphas) - jnp.log(sigmas)

    key_init, _ = jax.random.split(key)
    x = process.prior_sample(key_init, shape) if x_init is None else jnp.asarray(x_init)
    dtype = compute_dtype(x)

    def x0_at(x, i):
        batch = shape[0]
        x0 = x0_only(fn, prediction, x, jnp.full((batch,), grid[i]),
                     jnp.full((batch,), alphas[i]), jnp.full((batch,), sigmas[i]))
        return x0.astype(dtype)

    def update(x, i, d):
        """Exponential-integrator step from grid point i-1 to i with data estimate d."""
        h = lambdas[i] - lambdas[i - 1]
        return (sigmas[i] / sigmas[i - 1] * x - alphas[i] * jnp.expm1(-h) * d).astype(x.dtype)

    # Static per-step orders for steps 2..len(grid)-1 (the steps between positive times).
    last = grid.shape[0] - 1
    first_order = np.array([order == 1 or (i == last and lower_order_final and not to_zero)
                            for i in range(2, last + 1)], bool)

    def step(carry, inputs):
        x, x0_prev = carry
        i, use_first = inputs
        x0 = x0_at(x, i - 1)
        r = (lambdas[i - 1] - lambdas[i - 2]) / (lambdas[i] - lambdas[i - 1])
        d = jnp.where(use_first, x0, (1.0 + 0.5 / r) * x0 - 0.5 / r * x0_prev)
        return (update(x, i, d), x0), None

    if last >= 1:
        x0_prev = x0_at(x, 0)
        x = update(x, 1, x0_prev)
        (x, _), _ = jax.lax.scan(step, (x, x0_prev),
                                 (jnp.arange(2, last + 1), jnp.asarray(first_order)))
    if to_zero:
        x = x0_at(x, last).astype(x.dtype)
    return SampleResult(x, num_steps)
