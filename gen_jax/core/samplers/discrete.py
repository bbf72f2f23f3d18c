"""Samplers for a discrete-time DDPM chain (``schedules.DiscreteSchedule``): ancestral DDPM
(Ho et al. 2020) and DDIM (Song, Meng & Ermon 2021).

Step i in 0..N-1 (0 the least noisy) has x_i = sqrt(abar_i) x_0 + sqrt(1 - abar_i) eps, and the
network is called at the continuous time ``schedule.times[i]``. The model is a
``param.Denoiser`` or a plain ``fn(x, t)`` with ``prediction=``; its output is converted with
the schedule's own alpha_i = sqrt(abar_i), sigma_i = sqrt(1 - abar_i).
Call these inside ``jax.jit`` (close over the model; shape and step counts are static).
The state x keeps x_init's dtype (float32 when drawn); each update is computed in at least
float32 and rounded back to it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import param
from gen_jax.core.results import SampleResult
from gen_jax.core.samplers._checks import (
    check_choice, check_init, check_num_steps, check_shape, check_times, compute_dtype)
from gen_jax.core.samplers._predict import eps_and_x0, resolve_model

SPACINGS = ("trailing", "leading", "linspace")
_TIME_ATOL = 1e-6  # how close an entry of ddim_sample's times= must be to a schedule time
VARIANCES = ("small", "large")


def _start(key, shape, x_init):
    key_init, key_steps = jax.random.split(key)
    x = jax.random.normal(key_init, shape) if x_init is None else jnp.asarray(x_init)
    return x, key_steps


def _alpha_sigma(abar, batch):
    return jnp.full((batch,), jnp.sqrt(abar)), jnp.full((batch,), jnp.sqrt(1.0 - abar))


def _clip(x0, clip_x0):
    return x0 if clip_x0 is None else jnp.clip(x0, -clip_x0, clip_x0)


def ddpm_sample(key, denoiser, schedule, shape, *, prediction=None, variance="small",
                clip_x0=None, x_init=None):
    """Ancestral sampling of the DDPM reverse chain (Ho et al. 2020, Alg. 2), all N steps.

    Timesteps: every step i = N-1, ..., 0 of the schedule (no skipping). At each step
    x0_hat comes from the model, optionally clipped to [-clip_x0, clip_x0] (default None: no
    clipping, right for data that is not bounded; use 1.0 for images in [-1, 1]), and
    x_{i-1} = coef1_i x0_hat + coef2_i x_i + std_i z with z ~ N(0, I), no noise at i = 0.
    variance 'small': std_i^2 = posterior variance beta~_i (log clipped at i = 0, improved-
    diffusion's 'fixedsmall'); 'large': std_i^2 = beta_i (beta~_1 at i = 0, 'fixedlarge').

    key: PRNG key (x_N and one key per step by fold_in). shape: (B, ...). x_init: optional
    starting noise of ``shape``. Returns SampleResult(samples like shape, nfe = N).
    """
    shape = check_shape(shape)
    check_choice(variance, VARIANCES, "variance")
    check_init(x_init, shape)
    fn, prediction = resolve_model(denoiser, prediction)
    num_steps = schedule.betas.shape[0]
    if variance == "small":
        log_std = 0.5 * schedule.posterior_log_variance_clipped
    else:
        large = jnp.concatenate([schedule.posterior_variance[1:2], schedule.betas[1:]])
        log_std = 0.5 * jnp.log(large)
    x, key_steps = _start(key, shape, x_init)

    def step(x, i):
        alpha, sigma = _alpha_sigma(schedule.alphas_cumprod[i], shape[0])
        t = jnp.full((shape[0],), schedule.times[i])
        _, x0 = eps_and_x0(fn, prediction, x, t, alpha, sigma)
        x0 = _clip(x0, clip_x0)
        mean = schedule.posterior_mean_coef1[i] * x0 + schedule.posterior_mean_coef2[i] * x
        noise = jax.random.normal(jax.random.fold_in(key_steps, i), shape, compute_dtype(x))
        return (mean + jnp.where(i > 0, jnp.exp(log_std[i]), 0.0) * noise).astype(x.dtype), None

    x, _ = jax.lax.scan(step, x, jnp.arange(num_steps - 1, -1, -1))
    return SampleResult(x, num_steps)


def ddim_timesteps(num_train_steps: int, num_steps: int, spacing: str = "trailing") -> np.ndarray:
    """The num_steps discrete timesteps (ascending ints in 0..N-1) a DDIM sampler visits.

    Spacings of Lin et al. 2024 ("Common Diffusion Noise Schedules and Sample Steps are
    Flawed", Table 2), written 0-indexed (their 1-indexed t minus 1), N = num_train_steps, S =
    num_steps:
      'linspace': round(linspace(0, N-1, S))       e.g. N=1000, S=10: 0, 111, 222, ..., 999
      'leading':  arange(S) * (N // S)             e.g. 0, 100, ..., 900
      'trailing': round(N - arange(S) N / S) - 1   e.g. 999, 899, ..., 99 (sorted ascending)
    'trailing' and 'linspace' start at the noisiest step N-1; 'leading' does not.
    """
    num_train_steps = check_num_steps(num_train_steps, name="num_train_steps")
    num_steps = check_num_steps(num_steps)
    check_choice(spacing, SPACINGS, "spacing")
    if num_steps > num_train_steps:
        raise ValueError(f"num_steps ({num_steps}) must be <= the schedule's {num_train_steps} steps")
    if spacing == "linspace":
        steps = np.round(np.linspace(0, num_train_steps - 1, num_steps))
    elif spacing == "leading":
        steps = np.arange(num_steps) * (num_train_steps // num_steps)
    else:
        steps = np.round(num_train_steps - np.arange(num_steps) * num_train_steps / num_steps) - 1
    return np.sort(steps.astype(np.int64))


def _grid_from_times(schedule, times, num_steps):
    """Positions (S + 1,) on the chain extended by a clean state, 0 = t 0 (abar = 1), i + 1 =
    step i, for an explicit decreasing time grid (see ``ddim_sample``)."""
    if isinstance(schedule.times, jax.core.Tracer):
        raise ValueError("times= needs a concrete schedule (its times are traced)")
    chain_times = np.asarray(schedule.times, np.float64)
    grid = check_times(times, float(chain_times[-1]), num_steps)
    nearest = np.abs(grid[:, None] - chain_times[None, :]).argmin(axis=1)
    on_chain = np.abs(chain_times[nearest] - grid) <= _TIME_ATOL
    clean = np.zeros_like(on_chain)
    clean[-1] = grid[-1] == 0.0
    if not np.all(on_chain | clean):
        raise ValueError(
            f"times must be among schedule.times (or a final 0); {grid[~(on_chain | clean)]} "
            f"are not (within {_TIME_ATOL})")
    return np.where(clean, 0, nearest + 1)


def ddim_sample(key, denoiser, schedule, shape, num_steps=None, eta=0.0, spacing=None, *,
                times=None, prediction=None, clip_x0=None, x_init=None):
    """DDIM (Song, Meng & Ermon 2021, eq. 12) over a subset of the schedule's timesteps.

    Timesteps, one of:
      - ``num_steps`` and ``spacing``: ``ddim_timesteps(N, num_steps, spacing)`` visited from
        the noisiest down (spacing 'trailing' (default) | 'leading' | 'linspace', Lin et al.
        2024 Table 2), then a last step to abar = 1 (t = 0).
      - ``times``: an explicit strictly decreasing grid (S + 1,) of continuous times, the model
        called at times[:-1]. Every entry must be one of ``schedule.times`` (to 1e-6; with the
        default times (i + 1)/N, diffusers' integer timestep k is time (k + 1)/N), except a
        final 0, which means abar = 1 (diffusers' ``set_alpha_to_one=True``); a final schedule
        time stops at that step's abar (``set_alpha_to_one=False``) and returns x there.
        times[0] may be any schedule time (x starts as N(0, I) or x_init there). num_steps, if
        given, must equal S; spacing must be left None.
    From a visited step with abar to the next lower grid point with abar_prev:
      sigma = eta sqrt((1 - abar_prev)/(1 - abar)) sqrt(1 - abar/abar_prev),
      x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z.
    Going to abar_prev = 1 returns x0_hat (no noise). eta = 0: deterministic (the first-order
    DPM-Solver step in lambda, i.e. a first-order probability-flow ODE solver); eta = 1:
    DDPM-like variance. x0_hat can be clipped to [-clip_x0, clip_x0] (default: no clipping).

    Returns SampleResult(samples like shape, nfe = number of steps).
    """
    shape = check_shape(shape)
    check_init(x_init, shape)
    if isinstance(eta, (int, float)) and not eta >= 0.0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    deterministic = isinstance(eta, (int, float)) and eta == 0.0  # static: draw no noise
    fn, prediction = resolve_model(denoiser, prediction)
    if times is None:
        if num_steps is None:
            raise ValueError("give num_steps (with spacing) or times")
        steps = ddim_timesteps(schedule.betas.shape[0], num_steps, spacing or "trailing")
        grid = np.concatenate([steps[::-1] + 1, [0]])
    else:
        if spacing is not None:
            raise ValueError("spacing has no effect with times=; leave it None")
        grid = _grid_from_times(schedule, times, num_steps)
    abar = jnp.concatenate([jnp.ones((1,), schedule.alphas_cumprod.dtype), schedule.alphas_cumprod])
    chain_times = jnp.concatenate([jnp.zeros((1,), schedule.times.dtype), schedule.times])
    num_calls = grid.shape[0] - 1
    per_step = (abar[grid[:-1]], abar[grid[1:]], chain_times[grid[:-1]], jnp.arange(num_calls))
    x, key_steps = _start(key, shape, x_init)

    def step(x, inputs):
        abar_t, abar_s, time, k = inputs
        alpha, sigma = _alpha_sigma(abar_t, shape[0])
        eps, x0 = eps_and_x0(fn, prediction, x, jnp.full((shape[0],), time), alpha, sigma)
        x0 = _clip(x0, clip_x0)
        if clip_x0 is not None:  # keep eps consistent with the clipped x0
            eps = param.x0_to_eps(x0, x, alpha, sigma)
        if deterministic:
            return (jnp.sqrt(abar_s) * x0 + jnp.sqrt(1.0 - abar_s) * eps).astype(x.dtype), None
        noise_std = eta * jnp.sqrt((1.0 - abar_s) / (1.0 - abar_t) * (1.0 - abar_t / abar_s))
        direction = jnp.sqrt(jnp.maximum(1.0 - abar_s - noise_std**2, 0.0))
        noise = jax.random.normal(jax.random.fold_in(key_steps, k), shape, compute_dtype(x))
        return (jnp.sqrt(abar_s) * x0 + direction * eps + noise_std * noise).astype(x.dtype), None

    x, _ = jax.lax.scan(step, x, per_step)
    return SampleResult(x, num_calls)
