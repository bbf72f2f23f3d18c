"""Reverse-SDE samplers (Song et al. 2021, "Score-Based Generative Modeling through SDEs"):
Euler-Maruyama and predictor-corrector with a Langevin corrector.

The reverse SDE dx = [f(x, t) - g(t)^2 score(x, t)] dt + g(t) dw-bar is integrated from t = T
to t_min with negative dt. ``model`` is a ``score_fn(x, t)`` returning grad_x log p_t(x) like x,
or a ``param.Denoiser`` (its ``score`` is used); ``sde`` is any process of ``gen_jax.core.sde``
(``sde``, ``alpha_sigma``, ``prior_sample``). Call inside ``jax.jit``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.core.results import SampleResult
from gen_jax.core.samplers._checks import (
    check_init, check_num_steps, check_positive, check_shape, check_t_min, compute_dtype)
from gen_jax.core.samplers._continuous import start, tweedie_denoise, uniform_times
from gen_jax.core.samplers._predict import call_checked, resolve_score
from gen_jax.core.timeshape import expand_like


def _euler_maruyama_step(sde, score_fn, x, t, dt, noise):
    """x + [f - g^2 score] dt + g sqrt(-dt) z for one reverse step (dt < 0), t (B,); x's dtype."""
    drift, diffusion = sde.sde(x, t)
    drift = drift - expand_like(diffusion**2, x) * call_checked(score_fn, x, t)
    return (x + drift * dt + expand_like(diffusion * jnp.sqrt(-dt), x) * noise).astype(x.dtype)


def euler_maruyama_sample(key, model, sde, shape, num_steps, t_min=1e-3, *, denoise=True,
                          x_init=None):
    """Euler-Maruyama on the reverse SDE.

    Timesteps: num_steps equal steps in t from T = 1 to t_min (``linspace(T, t_min, N + 1)``),
    noise added on every step. denoise=True (default) then returns Tweedie's E[x_0 | x_{t_min}]
    = (x + sigma^2 score)/alpha, one more score call; denoise=False returns x at t_min.
    x_init: optional x_T of ``shape`` (default: ``sde.prior_sample``).
    Returns SampleResult(samples like shape, nfe = num_steps + denoise).
    """
    shape = check_shape(shape)
    num_steps = check_num_steps(num_steps)
    t_min = check_t_min(t_min, sde.T)
    check_init(x_init, shape)
    score_fn = resolve_score(model)
    times = uniform_times(sde, num_steps, t_min)
    x, key_steps = start(key, sde, shape, x_init)

    def step(x, k):
        t = jnp.full((shape[0],), times[k])
        noise = jax.random.normal(jax.random.fold_in(key_steps, k), shape, compute_dtype(x))
        return _euler_maruyama_step(sde, score_fn, x, t, times[k + 1] - times[k], noise), None

    x, _ = jax.lax.scan(step, x, jnp.arange(num_steps))
    if denoise:
        x = tweedie_denoise(sde, score_fn, x, t_min)
    return SampleResult(x, num_steps + int(denoise))


def _langevin_step(score_fn, x, t, snr, noise):
    """One Langevin corrector step (Song et al. 2021, Alg. 4): x + eps score + sqrt(2 eps) z
    with eps = 2 (snr ||z|| / ||score||)^2, the norms averaged over the batch as in score_sde
    (the algorithm's alpha_i taken as 1). Returned in x's dtype."""
    score = call_checked(score_fn, x, t).astype(noise.dtype)
    batch = x.shape[0]
    score_norm = jnp.mean(jnp.linalg.norm(score.reshape(batch, -1), axis=-1))
    noise_norm = jnp.mean(jnp.linalg.norm(noise.reshape(batch, -1), axis=-1))
    step_size = 2.0 * (snr * noise_norm / score_norm) ** 2
    return (x + step_size * score + jnp.sqrt(2.0 * step_size) * noise).astype(x.dtype)


def pc_sample(key, model, sde, shape, num_steps, snr=0.16, n_corrector=1, t_min=1e-3, *,
              denoise=True, x_init=None):
    """Predictor-corrector sampling (Song et al. 2021, Alg. 2-4): an Euler-Maruyama predictor
    step, then n_corrector Langevin corrector steps at the new time.

    Timesteps: as ``euler_maruyama_sample`` (num_steps equal steps from T to t_min); the
    corrector runs at each new time, t_min included. Langevin step size from the target
    signal-to-noise ratio ``snr``: eps = 2 (snr ||z|| / ||score||)^2 (Alg. 4 with alpha_i = 1)
    with both norms averaged over the batch, as score_sde does: per-example norms make eps
    heavy-tailed (1/chi^2) when few dimensions dominate the score, and bias the samples. So an
    example's result depends on the rest of its batch (not on how the batch is sharded).
    denoise as in ``euler_maruyama_sample``.
    Returns SampleResult(samples like shape, nfe = num_steps (1 + n_corrector) + denoise).
    """
    shape = check_shape(shape)
    num_steps = check_num_steps(num_steps)
    n_corrector = check_num_steps(n_corrector, minimum=0, name="n_corrector")
    check_positive(snr, "snr")
    t_min = check_t_min(t_min, sde.T)
    check_init(x_init, shape)
    score_fn = resolve_score(model)
    times = uniform_times(sde, num_steps, t_min)
    x, key_steps = start(key, sde, shape, x_init)
    noise_dtype = compute_dtype(x)

    def step(x, k):
        t_next = jnp.full((shape[0],), times[k + 1])
        keys = jax.random.split(jax.random.fold_in(key_steps, k), n_corrector + 1)
        noise = jax.random.normal(keys[0], shape, noise_dtype)
        x = _euler_maruyama_step(sde, score_fn, x, jnp.full((shape[0],), times[k]),
                                 times[k + 1] - times[k], noise)

        def correct(x, key):
            noise = jax.random.normal(key, shape, noise_dtype)
            return _langevin_step(score_fn, x, t_next, snr, noise), None

        x, _ = jax.lax.scan(correct, x, keys[1:])
        return x, None

    x, _ = jax.lax.scan(step, x, jnp.arange(num_steps))
    if denoise:
        x = tweedie_denoise(sde, score_fn, x, t_min)
    return SampleResult(x, num_steps * (1 + n_corrector) + int(denoise))
