"""Training objectives for Gaussian diffusion; each returns per-example losses (B,).

All take ``(key, model_fn, x0, process, prediction=...)`` with ``model_fn(x, t) -> prediction``
a plain callable of kind 'eps', 'x0', 'v' or 'score' and x0 (B, ...) data. Continuous-time
losses draw t ~ U[t_min, 1] (antithetic by default, see ``sample_times``) and
x_t = alpha x0 + sigma eps. ``reduce_mean`` chooses the mean (True) or the sum (False) over
the data dims; the defaults are stated per loss.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.core.param import NEEDS_DERIVATIVES, PREDICTIONS, Denoiser, convert, eps_x0_to_v
from gen_jax.core.schedules import DiscreteSchedule
from gen_jax.core.timeshape import expand_like


def sample_times(key, batch: int, t_min: float = 1e-5, antithetic: bool = True):
    """(B,) times in [t_min, 1]; batch is a static int, t_min a float (may be traced).

    antithetic: low-discrepancy t_i = (u + i/B) mod 1 with one u ~ U[0, 1) (Kingma et al. 2021),
    mapped affinely to [t_min, 1]; each t_i is still marginally uniform. Otherwise i.i.d.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    if isinstance(t_min, (int, float)) and not 0.0 <= t_min < 1.0:
        raise ValueError(f"t_min must lie in [0, 1), got {t_min}")
    if antithetic:
        u = jax.random.uniform(key, ())
        t = jnp.mod(u + jnp.arange(batch) / batch, 1.0)
    else:
        t = jax.random.uniform(key, (batch,))
    return t_min + (1.0 - t_min) * t


def _reduce(per_dim, reduce_mean):
    flat = per_dim.reshape(per_dim.shape[0], -1)
    return jnp.mean(flat, axis=-1) if reduce_mean else jnp.sum(flat, axis=-1)


def _noisy(key, x0, process, t_min, antithetic):
    key_t, key_eps = jax.random.split(key)
    t = sample_times(key_t, x0.shape[0], t_min, antithetic)
    eps = jax.random.normal(key_eps, x0.shape, x0.dtype)
    alpha, sigma = process.alpha_sigma(t)
    x_t = expand_like(alpha, x0) * x0 + expand_like(sigma, x0) * eps
    return t, eps, x_t, alpha, sigma


def eps_mse_loss(key, model_fn: Callable, x0, process, prediction: str = "eps",
                 t_min: float = 1e-5, antithetic: bool = True, reduce_mean: bool = True):
    """||eps - eps_hat(x_t, t)||^2 (Ho et al. 2020, L_simple), (B,); default mean over dims.

    eps_hat is the model's eps-prediction, converted from ``prediction`` if needed."""
    denoiser = Denoiser(process, fn=model_fn, prediction=prediction)
    t, eps, x_t, _, _ = _noisy(key, x0, process, t_min, antithetic)
    eps_hat = denoiser.eps(x_t, t)
    return _reduce(jnp.square(eps - eps_hat), reduce_mean)


def v_mse_loss(key, model_fn: Callable, x0, process, prediction: str = "v",
               t_min: float = 1e-5, antithetic: bool = True, reduce_mean: bool = True):
    """||v - v_hat(x_t, t)||^2 with v = alpha eps - sigma x0 (Salimans & Ho 2022), (B,);
    default mean over dims."""
    denoiser = Denoiser(process, fn=model_fn, prediction=prediction)
    t, eps, x_t, alpha, sigma = _noisy(key, x0, process, t_min, antithetic)
    v_hat = denoiser.v(x_t, t)
    return _reduce(jnp.square(eps_x0_to_v(eps, x0, alpha, sigma) - v_hat), reduce_mean)


def dsm_loss(key, model_fn: Callable, x0, process, prediction: str = "score",
             weighting: str = "sigma2", t_min: float = 1e-5, antithetic: bool = True,
             reduce_mean: bool = False):
    """Denoising score matching lambda(t) ||s(x_t, t) + eps/sigma||^2 (Song et al. 2021), (B,);
    default sum over dims (score_sde's reduce_mean=False).

    weighting 'sigma2': lambda = sigma(t)^2, i.e. ||sigma s + eps||^2 (the eps-MSE for an
    eps-network). weighting 'likelihood': lambda = g(t)^2 (Song et al. 2021, "Maximum
    likelihood training of score-based diffusion models"); then 1/2 (1 - t_min) times the batch
    mean of the summed loss estimates the score-matching term of their bound on -log p, in nats.
    The process needs ``sde`` for 'likelihood'.
    """
    if weighting not in ("sigma2", "likelihood"):
        raise ValueError(f"weighting must be 'sigma2' or 'likelihood', got {weighting!r}")
    denoiser = Denoiser(process, fn=model_fn, prediction=prediction)
    t, eps, x_t, _, sigma = _noisy(key, x0, process, t_min, antithetic)
    score = denoiser.score(x_t, t)
    if weighting == "sigma2":
        per_dim = jnp.square(expand_like(sigma, x0) * score + eps)
        return _reduce(per_dim, reduce_mean)
    g2 = jnp.square(process.sde(jnp.zeros_like(x0), t)[1])
    per_dim = jnp.square(score + eps / expand_like(sigma, x0))
    return _reduce(per_dim, reduce_mean) * g2


def ddpm_eps_loss(key, model_fn: Callable, x0, schedule: DiscreteSchedule,
                  prediction: str = "eps", reduce_mean: bool = True):
    """Discrete-time L_simple (Ho et al. 2020): step i ~ U{0..N-1},
    x_i = sqrt(abar_i) x0 + sqrt(1 - abar_i) eps, model called at ``schedule.times[i]``;
    ||eps - eps_hat||^2, (B,), default mean over dims. prediction: 'eps', 'x0', 'v' or 'score'.
    """
    kinds = tuple(k for k in PREDICTIONS if k not in NEEDS_DERIVATIVES)  # a chain has no d/dt
    if prediction not in kinds:
        raise ValueError(f"prediction must be one of {kinds}, got {prediction!r}")
    key_i, key_eps = jax.random.split(key)
    i = jax.random.randint(key_i, (x0.shape[0],), 0, schedule.betas.shape[0])
    abar = schedule.alphas_cumprod[i]
    alpha, sigma = jnp.sqrt(abar), jnp.sqrt(1.0 - abar)
    eps = jax.random.normal(key_eps, x0.shape, x0.dtype)
    x_t = expand_like(alpha, x0) * x0 + expand_like(sigma, x0) * eps
    out = model_fn(x_t, schedule.times[i])
    if jnp.shape(out) != x0.shape:
        raise ValueError(f"model output shape {jnp.shape(out)} must equal input shape {x0.shape}")
    eps_hat = convert(out, prediction, "eps", x_t, alpha, sigma)
    return _reduce(jnp.square(eps - eps_hat), reduce_mean)


__all__ = ["sample_times", "eps_mse_loss", "v_mse_loss", "dsm_loss", "ddpm_eps_loss"]
