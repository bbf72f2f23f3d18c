"""Forward diffusion SDEs dx = f(x, t) dt + g(t) dw on t in [0, 1] (Song et al. 2021,
"Score-Based Generative Modeling through SDEs"): VP, sub-VP, VE and log-SNR processes.

The protocol, declared by the abstract base class ``Process``; every process implements it:
  T                      end time (1.0).
  alpha_sigma(t)         (alpha, sigma) (B,), with marginal x_t = alpha(t) x_0 + sigma(t) eps.
  log_snr(t)             log(alpha^2 / sigma^2) (B,).
  dlog_snr_dt(t)         its time derivative (B,) (<= 0).
  marginal_prob(x0, t)   (mean like x0, std (B,)) of q(x_t | x_0).
  prior_sample(key, shape), prior_logp(z)   the prior p_T and its log-density, (B,) nats.
  sde(x, t)              (drift f like x, diffusion g (B,)).
  smallest_time          smallest t with a non-degenerate marginal (finite logSNR).
Shapes: x is (B, ...), t is (B,) (a scalar is broadcast); concrete times must lie in [0, 1].
Hyperparameters are static pytree fields, so a process can be passed to ``jax.jit``.
``LogSNRSDE`` wraps a ``schedules.LogSNRSchedule`` (``LinearLogSNR``,
``learned_schedule.LearnedLogSNR``), the smaller interface log_snr / dlog_snr_dt / alpha_sigma.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.core.checks import check_int
from gen_jax.core.pytree import pytree_dataclass
from gen_jax.core.schedules import LogSNRSchedule
from gen_jax.core.timeshape import batch_time, check_time, expand_like


def _std_normal_logp(z, scale=1.0):
    """log N(z; 0, scale^2 I) summed over non-batch dims, (B,) nats."""
    d = math.prod(z.shape[1:])
    sq = jnp.sum(jnp.square(z).reshape(z.shape[0], -1), axis=-1)
    return -0.5 * d * math.log(2 * math.pi * scale**2) - 0.5 * sq / scale**2


def _static(default):
    return dataclasses.field(default=default, metadata=dict(static=True))


def _check_num_discretization_steps(process):
    object.__setattr__(process, "N", check_int(process.N, "N (number of discretization steps)", 2))


class Process(abc.ABC):
    """The interface every forward process implements (see the module docstring). Subclasses
    define ``alpha_sigma``, ``log_snr``, ``dlog_snr_dt`` and ``sde``; the standard-normal prior,
    T = 1 and ``marginal_prob`` are shared defaults."""

    #: smallest time at which the marginal is non-degenerate (finite logSNR).
    smallest_time = 0.0

    @property
    def T(self) -> float:
        return 1.0

    @abc.abstractmethod
    def alpha_sigma(self, t):
        """(alpha (B,), sigma (B,)) of the marginal x_t = alpha x_0 + sigma eps."""

    @abc.abstractmethod
    def log_snr(self, t):
        """log(alpha^2 / sigma^2), (B,)."""

    @abc.abstractmethod
    def dlog_snr_dt(self, t):
        """d logSNR / dt, (B,)."""

    @abc.abstractmethod
    def sde(self, x, t):
        """(drift f(x, t) like x, diffusion g(t) (B,))."""

    def marginal_prob(self, x0, t):
        """Mean (like x0) and std (B,) of q(x_t | x_0)."""
        t = batch_time(t, x0)
        alpha, sigma = self.alpha_sigma(t)
        return expand_like(alpha, x0) * x0, sigma

    def prior_sample(self, key, shape):
        """A draw of the prior p_T, standard normal of ``shape``."""
        return jax.random.normal(key, shape)

    def prior_logp(self, z):
        """log p_T(z), (B,) nats summed over non-batch dims."""
        return _std_normal_logp(z)


@dataclasses.dataclass(frozen=True)
class _VPFamily(Process):
    """Linear beta(t) = b0 + t (b1 - b0); log m(t) = -t^2 (b1 - b0)/4 - t b0/2. N is the
    number of steps of the matching DDPM chain (``VPSDE.discrete_betas``)."""
    beta_min: float = _static(0.1)
    beta_max: float = _static(20.0)
    N: int = _static(1000)

    smallest_time = 1e-5  # sigma(0) = 0; score_sde's likelihood time

    def __post_init__(self):
        object.__setattr__(self, "beta_min", float(self.beta_min))
        object.__setattr__(self, "beta_max", float(self.beta_max))
        _check_num_discretization_steps(self)
        if not 0.0 < self.beta_min < self.beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got {self.beta_min}, {self.beta_max}")

    def beta(self, t):
        return self.beta_min + check_time(t) * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t):
        t = check_time(t)
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class VPSDE(_VPFamily):
    """Variance-preserving SDE: dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw.

    alpha = m(t), sigma = sqrt(1 - m^2) (via expm1).
    """

    def sde(self, x, t):
        t = batch_time(t, x)
        beta = self.beta(t)
        return -0.5 * expand_like(beta, x) * x, jnp.sqrt(beta)

    def alpha_sigma(self, t):
        log_m = self.log_mean_coeff(t)
        return jnp.exp(log_m), jnp.sqrt(-jnp.expm1(2.0 * log_m))

    def log_snr(self, t):
        log_m = self.log_mean_coeff(t)
        return 2.0 * log_m - jnp.log(-jnp.expm1(2.0 * log_m))

    def dlog_snr_dt(self, t):
        return self.beta(t) / jnp.expm1(2.0 * self.log_mean_coeff(t))

    def discrete_betas(self):
        """DDPM betas (N,): linspace(b0/N, b1/N, N)."""
        return jnp.linspace(self.beta_min / self.N, self.beta_max / self.N, self.N)


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class SubVPSDE(_VPFamily):
    """Sub-VP SDE: dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - exp(-2 b0 t - (b1 - b0) t^2))) dw.

    alpha = m(t), sigma = 1 - m(t)^2.
    """

    def sde(self, x, t):
        t = batch_time(t, x)
        beta = self.beta(t)
        discount = -jnp.expm1(-2.0 * self.beta_min * t - (self.beta_max - self.beta_min) * t**2)
        return -0.5 * expand_like(beta, x) * x, jnp.sqrt(beta * discount)

    def alpha_sigma(self, t):
        log_m = self.log_mean_coeff(t)
        return jnp.exp(log_m), -jnp.expm1(2.0 * log_m)

    def log_snr(self, t):
        log_m = self.log_mean_coeff(t)
        return 2.0 * log_m - 2.0 * jnp.log(-jnp.expm1(2.0 * log_m))

    def dlog_snr_dt(self, t):
        m2 = jnp.exp(2.0 * self.log_mean_coeff(t))
        return self.beta(t) * (1.0 + m2) / jnp.expm1(2.0 * self.log_mean_coeff(t))


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class VESDE(Process):
    """Variance-exploding SDE: dx = sigma(t) sqrt(2 ln(smax/smin)) dw,
    sigma(t) = smin (smax/smin)^t.

    Marginal as score_sde: alpha = 1, sigma = sigma(t) (so x_0 carries N(0, smin^2) noise).
    Prior N(0, smax^2 I). N (score_sde's number of SMLD steps) is kept as a setting.
    """
    sigma_min: float = _static(0.01)
    sigma_max: float = _static(50.0)
    N: int = _static(1000)

    def __post_init__(self):
        object.__setattr__(self, "sigma_min", float(self.sigma_min))
        object.__setattr__(self, "sigma_max", float(self.sigma_max))
        _check_num_discretization_steps(self)
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")

    @property
    def _log_ratio(self):
        return math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t):
        return self.sigma_min * jnp.exp(check_time(t) * self._log_ratio)

    def sde(self, x, t):
        t = batch_time(t, x)
        return jnp.zeros_like(x), self.sigma(t) * math.sqrt(2.0 * self._log_ratio)

    def alpha_sigma(self, t):
        sigma = self.sigma(t)
        return jnp.ones_like(sigma), sigma

    def log_snr(self, t):
        return -2.0 * jnp.log(self.sigma(t))

    def dlog_snr_dt(self, t):
        return jnp.full_like(check_time(t), -2.0 * self._log_ratio)

    def prior_sample(self, key, shape):
        return self.sigma_max * jax.random.normal(key, shape)

    def prior_logp(self, z):
        return _std_normal_logp(z, self.sigma_max)


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class LogSNRSDE(Process):
    """The VP SDE whose marginal has alpha^2 = sigmoid(logSNR(t)), sigma^2 = sigmoid(-logSNR(t))
    for a ``schedules.LogSNRSchedule`` (e.g. ``LinearLogSNR`` or ``LearnedLogSNR``).

    With lambda = logSNR: f(x, t) = 1/2 sigma^2 lambda'(t) x and g(t)^2 = -sigma^2 lambda'(t)
    (Kingma et al. 2021, appendix); lambda' is ``schedule.dlog_snr_dt``. N is kept as a setting.
    """
    schedule: LogSNRSchedule
    N: int = _static(1000)

    def __post_init__(self):
        if not isinstance(self.schedule, LogSNRSchedule):
            raise ValueError(
                f"schedule must be a schedules.LogSNRSchedule, got {type(self.schedule).__name__}")
        _check_num_discretization_steps(self)

    @property
    def smallest_time(self):
        return self.schedule.smallest_time

    def log_snr(self, t):
        return self.schedule.log_snr(check_time(t))

    def dlog_snr_dt(self, t):
        return self.schedule.dlog_snr_dt(check_time(t))

    def beta(self, t):
        """g(t)^2 = -sigma^2(t) dlogSNR/dt, (B,)."""
        return -jax.nn.sigmoid(-self.log_snr(t)) * self.dlog_snr_dt(t)

    def sde(self, x, t):
        t = batch_time(t, x)
        beta = self.beta(t)
        return -0.5 * expand_like(beta, x) * x, jnp.sqrt(beta)

    def alpha_sigma(self, t):
        return self.schedule.alpha_sigma(check_time(t))


def probability_flow_drift(process, score_fn: Callable, x, t):
    """Probability-flow ODE drift dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t) (Song et al. 2021,
    eq. 13), like x. ValueError if score_fn's output shape differs from x's."""
    t = batch_time(t, x)
    drift, diffusion = process.sde(x, t)
    score = score_fn(x, t)
    if jnp.shape(score) != x.shape:
        raise ValueError(f"score_fn output shape {jnp.shape(score)} must equal x's shape {x.shape}")
    return drift - 0.5 * expand_like(diffusion**2, x) * score


__all__ = [
    "Process", "VPSDE", "SubVPSDE", "VESDE", "LogSNRSDE", "probability_flow_drift",
]
