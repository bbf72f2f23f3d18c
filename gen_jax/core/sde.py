"""Forward diffusion SDEs dx = f(x, t) dt + g(t) dw on t in [0, 1] (Song et al. 2021,
"Score-Based Generative Modeling through SDEs"), their marginals, priors and reverse-time
versions.

Every process exposes ``alpha_sigma(t)`` with the marginal x_t = alpha(t) x_0 + sigma(t) eps.
Shapes: x is (B, ...), t is (B,) (a scalar is broadcast); per-example coefficients come back
(B,). Hyperparameters are static pytree fields, so a process can be passed to ``jax.jit``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def check_time(t, name: str = "t"):
    """Return t as a float array; ValueError if t is not a scalar or (B,), or if a concrete
    (python / numpy) value lies outside [0, 1]. Traced values are not inspected."""
    if isinstance(t, (bool, np.bool_)):
        raise ValueError(f"{name} must be a float time in [0, 1], got a bool")
    if isinstance(t, (int, float, np.number, np.ndarray)):
        value = np.asarray(t, np.float64)
        if value.size and not (np.all(value >= 0.0) and np.all(value <= 1.0)):
            raise ValueError(f"{name} must lie in [0, 1], got values in [{value.min()}, {value.max()}]")
    t = jnp.asarray(t)
    if t.ndim > 1:
        raise ValueError(f"{name} must be a scalar or have shape (B,), got shape {t.shape}")
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(jnp.result_type(float))
    return t


def batch_time(t, x):
    """t (scalar or (B,)) as a (B,) float array matching x's batch size B = x.shape[0]."""
    t = check_time(t)
    if t.ndim == 0:
        return jnp.broadcast_to(t, x.shape[:1])
    if t.shape[0] != x.shape[0]:
        raise ValueError(f"t has batch size {t.shape[0]} but x has {x.shape[0]} (x.shape={x.shape})")
    return t


def expand_like(a, x):
    """Reshape a per-example array a (scalar or (B,)) to broadcast against x (B, ...)."""
    a = jnp.asarray(a)
    if a.ndim == 0:
        return a
    if a.ndim != 1:
        raise ValueError(f"expected a scalar or (B,) coefficient, got shape {a.shape}")
    return a.reshape(a.shape + (1,) * (x.ndim - 1))


def _std_normal_logp(z, scale=1.0):
    """log N(z; 0, scale^2 I) summed over non-batch dims, (B,) nats."""
    d = math.prod(z.shape[1:])
    sq = jnp.sum(jnp.square(z).reshape(z.shape[0], -1), axis=-1)
    return -0.5 * d * math.log(2 * math.pi * scale**2) - 0.5 * sq / scale**2


def _euler_discretize(process, x, t):
    """Euler-Maruyama step of size 1/N: f = drift * dt, G = g * sqrt(dt)."""
    dt = process.T / process.N
    drift, diffusion = process.sde(x, t)
    return drift * dt, diffusion * math.sqrt(dt)


def _static(default):
    return dataclasses.field(default=default, metadata=dict(static=True))


class _Process:
    """Shared behaviour: end time, the standard-normal prior, reverse process."""

    @property
    def T(self) -> float:
        return 1.0

    def marginal_prob(self, x0, t):
        """Mean (like x0) and std (B,) of q(x_t | x_0)."""
        t = batch_time(t, x0)
        alpha, sigma = self.alpha_sigma(t)
        return expand_like(alpha, x0) * x0, sigma

    def prior_sample(self, key, shape):
        return jax.random.normal(key, shape)

    def prior_logp(self, z):
        """log p_T(z), (B,) nats summed over non-batch dims."""
        return _std_normal_logp(z)

    def reverse(self, score_fn: Callable, probability_flow: bool = False) -> "ReverseProcess":
        """Reverse-time SDE (or probability-flow ODE) driven by ``score_fn(x, t)``."""
        return ReverseProcess(self, score_fn, bool(probability_flow))


@dataclasses.dataclass(frozen=True)
class _VPFamily(_Process):
    """Linear beta(t) = b0 + t (b1 - b0); log m(t) = -t^2 (b1 - b0)/4 - t b0/2."""
    beta_min: float = _static(0.1)
    beta_max: float = _static(20.0)
    N: int = _static(1000)

    def __post_init__(self):
        for name in ("beta_min", "beta_max"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "N", int(self.N))
        if not 0.0 < self.beta_min < self.beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got {self.beta_min}, {self.beta_max}")
        if self.N < 2:
            raise ValueError(f"N (number of discretization steps) must be >= 2, got {self.N}")

    def beta(self, t):
        return self.beta_min + check_time(t) * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t):
        t = check_time(t)
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class VPSDE(_VPFamily):
    """Variance-preserving SDE: dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw.

    alpha = m(t), sigma = sqrt(1 - m^2) (via expm1). ``discretize`` is DDPM's chain with
    beta_i = b0/N + i (b1 - b0)/(N (N - 1)).
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

    def discretize(self, x, t):
        """DDPM step i = floor(t (N - 1)): x_{i+1} = sqrt(1 - beta_i) x_i + sqrt(beta_i) z,
        returned as (f, G) with x_{i+1} = x_i + f + G z."""
        if self.beta_max / self.N >= 1.0:
            raise ValueError(f"the DDPM chain needs beta_max / N < 1, got {self.beta_max} / {self.N}")
        t = batch_time(t, x)
        i = (t * (self.N - 1) / self.T).astype(jnp.int32)
        beta = self.discrete_betas()[i]
        f = expand_like(jnp.sqrt(1.0 - beta), x) * x - x
        return f, jnp.sqrt(beta)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SubVPSDE(_VPFamily):
    """Sub-VP SDE: dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - exp(-2 b0 t - (b1 - b0) t^2))) dw.

    alpha = m(t), sigma = 1 - m(t)^2. ``discretize`` is Euler-Maruyama with dt = 1/N.
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

    def discretize(self, x, t):
        return _euler_discretize(self, x, batch_time(t, x))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class VESDE(_Process):
    """Variance-exploding SDE: dx = sigma(t) sqrt(2 ln(smax/smin)) dw,
    sigma(t) = smin (smax/smin)^t.

    Marginal as score_sde: alpha = 1, sigma = sigma(t) (so x_0 carries N(0, smin^2) noise).
    Prior N(0, smax^2 I). ``discretize`` is SMLD's chain over N geometric sigmas.
    """
    sigma_min: float = _static(0.01)
    sigma_max: float = _static(50.0)
    N: int = _static(1000)

    def __post_init__(self):
        for name in ("sigma_min", "sigma_max"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "N", int(self.N))
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.N < 2:
            raise ValueError(f"N (number of discretization steps) must be >= 2, got {self.N}")

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

    def discrete_sigmas(self):
        """(N,) geometric sigmas from sigma_min to sigma_max."""
        return jnp.exp(jnp.linspace(math.log(self.sigma_min), math.log(self.sigma_max), self.N))

    def discretize(self, x, t):
        """SMLD step i = floor(t (N - 1)): x_{i+1} = x_i + sqrt(sigma_i^2 - sigma_{i-1}^2) z
        (sigma_{-1} = 0), as (f = 0, G)."""
        t = batch_time(t, x)
        i = (t * (self.N - 1) / self.T).astype(jnp.int32)
        sigmas = self.discrete_sigmas()
        sigma = sigmas[i]
        previous = jnp.where(i == 0, 0.0, sigmas[jnp.maximum(i - 1, 0)])
        return jnp.zeros_like(x), jnp.sqrt(sigma**2 - previous**2)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LogSNRSDE(_Process):
    """The VP SDE whose marginal has alpha^2 = sigmoid(logSNR(t)), sigma^2 = sigmoid(-logSNR(t))
    for a schedule with ``log_snr(t)`` (e.g. ``LinearLogSNR`` or a learned one).

    With lambda = logSNR: f(x, t) = 1/2 sigma^2 lambda'(t) x and g(t)^2 = -sigma^2 lambda'(t)
    (Kingma et al. 2021, appendix). lambda' comes from ``schedule.dlog_snr_dt`` when the
    schedule has one, else from ``jax.jvp``. ``discretize`` is Euler-Maruyama with dt = 1/N.
    """
    schedule: object
    N: int = _static(1000)

    def __post_init__(self):
        object.__setattr__(self, "N", int(self.N))
        if self.N < 2:
            raise ValueError(f"N (number of discretization steps) must be >= 2, got {self.N}")

    def log_snr(self, t):
        return self.schedule.log_snr(check_time(t))

    def dlog_snr_dt(self, t):
        t = check_time(t)
        if hasattr(self.schedule, "dlog_snr_dt"):
            return self.schedule.dlog_snr_dt(t)
        return jax.jvp(self.schedule.log_snr, (t,), (jnp.ones_like(t),))[1]

    def beta(self, t):
        """g(t)^2 = -sigma^2(t) dlogSNR/dt, (B,)."""
        return -jax.nn.sigmoid(-self.log_snr(t)) * self.dlog_snr_dt(t)

    def sde(self, x, t):
        t = batch_time(t, x)
        beta = self.beta(t)
        return -0.5 * expand_like(beta, x) * x, jnp.sqrt(beta)

    def alpha_sigma(self, t):
        logsnr = self.log_snr(t)
        return jnp.sqrt(jax.nn.sigmoid(logsnr)), jnp.sqrt(jax.nn.sigmoid(-logsnr))

    def discretize(self, x, t):
        return _euler_discretize(self, x, batch_time(t, x))


def probability_flow_drift(process, score_fn: Callable, x, t):
    """Probability-flow ODE drift dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t), like x."""
    t = batch_time(t, x)
    drift, diffusion = process.sde(x, t)
    return drift - 0.5 * expand_like(diffusion**2, x) * score_fn(x, t)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ReverseProcess:
    """Reverse-time SDE dx = [f - g^2 score] dt + g dw-bar, or with ``probability_flow`` the ODE
    dx = [f - 1/2 g^2 score] dt (Song et al. 2021, eq. 6 and 13).

    Written in forward time as score_sde does: a sampler integrates from t = 1 to t ~ 0 with a
    negative dt (x <- x + drift dt + diffusion sqrt(|dt|) z). ``discretize`` gives the reverse
    of ``forward.discretize`` (the reverse-diffusion predictor): x_{i-1} = x_i - rev_f + rev_G z.
    """
    forward: object
    score_fn: Callable = _static(None)
    probability_flow: bool = _static(False)

    @property
    def T(self) -> float:
        return self.forward.T

    @property
    def N(self) -> int:
        return self.forward.N

    def _factor(self):
        return 0.5 if self.probability_flow else 1.0

    def sde(self, x, t):
        """(drift like x, diffusion (B,)); diffusion is 0 for the probability-flow ODE."""
        t = batch_time(t, x)
        drift, diffusion = self.forward.sde(x, t)
        drift = drift - self._factor() * expand_like(diffusion**2, x) * self.score_fn(x, t)
        if self.probability_flow:
            diffusion = jnp.zeros_like(diffusion)
        return drift, diffusion

    def discretize(self, x, t):
        """(rev_f like x, rev_G (B,)): rev_f = f - G^2 score (1/2 G^2 for the ODE)."""
        t = batch_time(t, x)
        f, g = self.forward.discretize(x, t)
        rev_f = f - self._factor() * expand_like(g**2, x) * self.score_fn(x, t)
        if self.probability_flow:
            g = jnp.zeros_like(g)
        return rev_f, g


__all__ = [
    "check_time", "batch_time", "expand_like", "VPSDE", "SubVPSDE", "VESDE", "LogSNRSDE",
    "ReverseProcess", "probability_flow_drift",
]
