"""Pieces shared by the continuous-time (SDE / ODE) samplers: the time grid, the starting point
and the final Tweedie denoising step."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.core.samplers._predict import call_checked
from gen_jax.core.timeshape import expand_like


def uniform_times(process, num_steps: int, t_min: float):
    """(N + 1,) times from T down to t_min, equally spaced in t."""
    return jnp.linspace(process.T, t_min, num_steps + 1)


def start(key, process, shape, x_init):
    """(x_T, key for the steps): x_T from ``process.prior_sample`` unless x_init is given."""
    key_init, key_steps = jax.random.split(key)
    x = process.prior_sample(key_init, shape) if x_init is None else jnp.asarray(x_init)
    return x, key_steps


def tweedie_denoise(process, score_fn, x, t_min: float):
    """E[x_0 | x_t] = (x + sigma^2 score(x, t)) / alpha at t = t_min (Tweedie / Efron); 1 NFE.
    Returned in x's dtype."""
    t = jnp.full((x.shape[0],), t_min)
    alpha, sigma = process.alpha_sigma(t)
    score = call_checked(score_fn, x, t)
    return ((x + expand_like(sigma**2, x) * score) / expand_like(alpha, x)).astype(x.dtype)
