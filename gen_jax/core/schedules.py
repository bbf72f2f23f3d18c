"""Noise schedules: discrete beta schedules (DDPM linear, cosine), the log-SNR view (VDM) and
EDM's sigma grid.

Conventions: discrete steps are integers 0..N-1, 0 the least noisy; continuous time t in [0, 1],
t=0 data, t=1 noise. ``DiscreteSchedule.times[i]`` is the continuous time at which a network is
called for step i.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core.checks import check_int
from gen_jax.core.pytree import pytree_dataclass
from gen_jax.core.timeshape import check_time


def _check_num_steps(num_steps, minimum=1):
    return check_int(num_steps, "num_steps", minimum)


def linear_betas(num_steps: int) -> jax.Array:
    """DDPM linear betas (Ho et al. 2020), (N,) float32.

    betas go linearly from 1e-4 to 0.02 at N=1000; both ends are scaled by 1000/N
    (improved-diffusion), so the process is the same at any N. Needs N > 20 so that betas < 1.
    """
    _check_num_steps(num_steps)
    scale = 1000.0 / num_steps
    beta_start, beta_end = scale * 1e-4, scale * 0.02
    if beta_end >= 1.0:
        raise ValueError(
            f"linear_betas needs num_steps > 20 (largest beta {beta_end:.3f} must be < 1), got {num_steps}")
    return jnp.asarray(np.linspace(beta_start, beta_end, num_steps, dtype=np.float64), jnp.float32)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> jax.Array:
    """Cosine betas (Nichol & Dhariwal 2021), (N,) float32.

    abar(u) = cos^2((u + s)/(1 + s) * pi/2) / cos^2(s/(1 + s) * pi/2) at u = i/N;
    beta_i = min(1 - abar((i+1)/N) / abar(i/N), max_beta).
    """
    _check_num_steps(num_steps)
    if not s >= 0.0:
        raise ValueError(f"cosine offset s must be >= 0, got {s}")
    if not 0.0 < max_beta < 1.0:
        raise ValueError(f"max_beta must be in (0, 1), got {max_beta}")
    u = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((u + s) / (1.0 + s) * np.pi / 2) ** 2
    abar = f / f[0]
    betas = np.minimum(1.0 - abar[1:] / abar[:-1], max_beta)
    return jnp.asarray(betas, jnp.float32)


class DiscreteSchedule(NamedTuple):
    """A discrete-time Gaussian diffusion (DDPM); every field is (N,), step 0 the least noisy.

    q(x_i | x_0) = N(sqrt(alphas_cumprod[i]) x_0, (1 - alphas_cumprod[i]) I);
    q(x_{i-1} | x_i, x_0) = N(posterior_mean_coef1[i] x_0 + posterior_mean_coef2[i] x_i,
    posterior_variance[i] I) (Ho et al. 2020, eq. 6-7). ``posterior_log_variance_clipped[0]``
    uses step 1's value because the true variance at step 0 is 0. ``times[i]`` in (0, 1] is the
    continuous time at which a network is called for step i.
    """
    betas: jax.Array
    alphas: jax.Array
    alphas_cumprod: jax.Array
    alphas_cumprod_prev: jax.Array
    posterior_variance: jax.Array
    posterior_log_variance_clipped: jax.Array
    posterior_mean_coef1: jax.Array
    posterior_mean_coef2: jax.Array
    times: jax.Array


def discrete_schedule(betas, times=None) -> DiscreteSchedule:
    """Build a ``DiscreteSchedule`` from betas (N,), N >= 2, values in (0, 1).

    times: (N,) network times for each step, default (i + 1)/N.
    """
    betas = jnp.asarray(betas)
    if betas.ndim != 1:
        raise ValueError(f"betas must be 1-D (N,), got shape {betas.shape}")
    n = betas.shape[0]
    if n < 2:
        raise ValueError(f"a discrete schedule needs at least 2 steps, got {n}")
    if not jnp.issubdtype(betas.dtype, jnp.floating):
        betas = betas.astype(jnp.float32)
    if not isinstance(betas, jax.core.Tracer):
        b = np.asarray(betas)
        if not (np.all(b > 0.0) and np.all(b < 1.0)):
            raise ValueError(f"betas must lie in (0, 1), got range [{b.min()}, {b.max()}]")
    if times is None:
        times = jnp.arange(1, n + 1, dtype=betas.dtype) / n
    times = jnp.asarray(times, betas.dtype)
    if times.shape != (n,):
        raise ValueError(f"times must have shape ({n},) like betas, got {times.shape}")

    return _schedule_from_betas(betas, times)


@jax.jit
def _schedule_from_betas(betas, times):
    alphas = 1.0 - betas
    log_abar = jnp.cumsum(jnp.log1p(-betas))
    alphas_cumprod = jnp.exp(log_abar)
    alphas_cumprod_prev = jnp.concatenate([jnp.ones((1,), betas.dtype), alphas_cumprod[:-1]])
    one_minus_abar = -jnp.expm1(log_abar)
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / one_minus_abar
    posterior_log_variance_clipped = jnp.log(
        jnp.concatenate([posterior_variance[1:2], posterior_variance[1:]]))
    posterior_mean_coef1 = betas * jnp.sqrt(alphas_cumprod_prev) / one_minus_abar
    posterior_mean_coef2 = (1.0 - alphas_cumprod_prev) * jnp.sqrt(alphas) / one_minus_abar
    return DiscreteSchedule(
        betas=betas,
        alphas=alphas,
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        posterior_variance=posterior_variance,
        posterior_log_variance_clipped=posterior_log_variance_clipped,
        posterior_mean_coef1=posterior_mean_coef1,
        posterior_mean_coef2=posterior_mean_coef2,
        times=times,
    )


def discretize_process(process, num_steps: int) -> DiscreteSchedule:
    """N-step DDPM chain matching a variance-preserving process at t_i = (i + 1)/N.

    alphas_cumprod[i] = alpha(t_i)^2 / alpha(0)^2, computed in log space from
    ``process.log_snr`` (log alpha^2 = -softplus(-logSNR) for VP processes), and
    times[i] = t_i. Only VP processes (alpha^2 + sigma^2 = 1, e.g. VPSDE, LogSNRSDE,
    LinearLogSNR) have a DDPM chain; sub-VP and VE raise ValueError. The process must be a
    pytree with ``alpha_sigma`` and ``log_snr`` (every gen_jax process and schedule is).
    """
    _check_num_steps(num_steps, minimum=2)
    t = jnp.arange(num_steps + 1, dtype=jnp.float32) / num_steps
    alpha, sigma, betas = _vp_chain(process, t)
    if not isinstance(alpha, jax.core.Tracer):
        total = np.asarray(alpha, np.float64) ** 2 + np.asarray(sigma, np.float64) ** 2
        if np.max(np.abs(total - 1.0)) > 1e-4:
            raise ValueError(
                f"discretize_process is VP-only (alpha^2 + sigma^2 = 1); {type(process).__name__} "
                f"has alpha^2 + sigma^2 in [{total.min():.4g}, {total.max():.4g}]")
    return discrete_schedule(betas, times=t[1:])


@jax.jit
def _vp_chain(process, t):
    """alpha, sigma on the grid t (N + 1,) and the betas (N,) of the chain through t[1:]."""
    alpha, sigma = process.alpha_sigma(t)
    log_abar = -jax.nn.softplus(-process.log_snr(t))
    return alpha, sigma, -jnp.expm1(jnp.diff(log_abar))


class LogSNRSchedule(abc.ABC):
    """Interface of a variance-preserving noise schedule given by its log-SNR (Kingma et al.
    2021): alpha^2 = sigmoid(logSNR(t)), sigma^2 = sigmoid(-logSNR(t)), logSNR decreasing in t.

    Subclasses define ``log_snr(t)``; ``dlog_snr_dt`` defaults to forward-mode autodiff of it
    (override it with a closed form when there is one). t: scalar or (B,) in [0, 1]; results
    are shaped like t. A schedule can stand in for a process wherever only the marginal is used
    (``continuous_elbo``, ``discretize_process``); ``sde.LogSNRSDE`` makes it a full process.
    """

    #: smallest time at which the marginal is non-degenerate (finite logSNR).
    smallest_time = 0.0

    @abc.abstractmethod
    def log_snr(self, t):
        """logSNR(t) = log(alpha^2 / sigma^2), like t."""

    def dlog_snr_dt(self, t):
        """d logSNR / dt (<= 0), like t."""
        t = check_time(t)
        return jax.jvp(self.log_snr, (t,), (jnp.ones_like(t),))[1]

    def alpha_sigma(self, t):
        """(alpha, sigma), each shaped like t, with x_t = alpha x_0 + sigma eps."""
        logsnr = self.log_snr(t)
        return jnp.sqrt(jax.nn.sigmoid(logsnr)), jnp.sqrt(jax.nn.sigmoid(-logsnr))


def _static_float(obj, name):
    object.__setattr__(obj, name, float(getattr(obj, name)))


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class LinearLogSNR(LogSNRSchedule):
    """VDM's fixed schedule (Kingma et al. 2021): logSNR(t) linear from logsnr_max at t=0 to
    logsnr_min at t=1 (VDM's gamma = -logSNR, gamma_min=-13.3, gamma_max=5).

    alpha^2 = sigmoid(logSNR), sigma^2 = sigmoid(-logSNR). t: (B,) or scalar.
    """
    logsnr_max: float = dataclasses.field(default=13.3, metadata=dict(static=True))
    logsnr_min: float = dataclasses.field(default=-5.0, metadata=dict(static=True))

    def __post_init__(self):
        _static_float(self, "logsnr_max")
        _static_float(self, "logsnr_min")
        if not self.logsnr_max > self.logsnr_min:
            raise ValueError(
                f"logsnr_max must exceed logsnr_min, got {self.logsnr_max} <= {self.logsnr_min}")

    def log_snr(self, t):
        t = check_time(t)
        return self.logsnr_max + (self.logsnr_min - self.logsnr_max) * t

    def dlog_snr_dt(self, t):
        t = check_time(t)
        return jnp.full_like(t, self.logsnr_min - self.logsnr_max)


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  rho: float = 7.0) -> jax.Array:
    """EDM noise levels (Karras et al. 2022, eq. 5), (N + 1,) float32, descending, last = 0.

    sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i < N.
    """
    _check_num_steps(num_steps, minimum=2)
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if not rho > 0.0:
        raise ValueError(f"rho must be > 0, got {rho}")
    ramp = np.arange(num_steps, dtype=np.float64) / (num_steps - 1)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return jnp.asarray(np.append(sigmas, 0.0), jnp.float32)


__all__ = [
    "linear_betas", "cosine_betas", "DiscreteSchedule", "discrete_schedule",
    "discretize_process", "LogSNRSchedule", "LinearLogSNR", "karras_sigmas",
]
