"""Flow matching / rectified flow (Lipman et al. 2023, "Flow Matching for Generative Modeling";
Liu et al. 2023, "Flow Straight and Fast"; Esser et al. 2024, SD3, for logit-normal times) as a
Gaussian path in the log-SNR view, so every sampler and likelihood of the diffusion core applies.

An affine path x_t = alpha(t) x_0 + sigma(t) eps, eps ~ N(0, I), t in [0, 1] (0 data, 1 noise);
the default is the linear interpolant alpha = 1 - t, sigma = t (logSNR = 2 log((1 - t) / t)).
Its conditional velocity is u = dx_t/dt = alpha' x_0 + sigma' eps (linear path: eps - x_0), and
the marginal velocity v(x, t) = E[u | x_t = x] is the flow model's vector field. The SDE with
these marginals (for the existing PF-ODE code) has
    f(x, t) = (alpha'/alpha) x,    g(t)^2 = d(sigma^2)/dt - 2 (alpha'/alpha) sigma^2 = -sigma^2 logSNR',
so its probability-flow drift f - g^2/2 score equals v (Lipman et al. 2023, Thm. 3; Kingma et al.
2021, App. for g).

Endpoints: sigma(0) = 0 and alpha(1) = 0 make the log-SNR infinite and f, the score and some
conversions divide by zero there. The path therefore ends at T = 1 - t_eps (where alpha = t_eps
> 0 and logSNR is finite); its prior is N(0, sigma(T)^2 I), which ignores the alpha(T) x_0 part
of the marginal (a KL of order t_eps^2 |x_0|^2). At the data end every consumer takes a
t_min > 0. Velocity samplers and the conversions x0 = x - t v, eps = x + (1 - t) v of the linear
path are finite on all of [0, 1].

Shapes: x (B, ...), t (B,) (a scalar is broadcast); coefficients are (B,). The velocity's
conversions to eps / x0 / score are in the one conversion table, ``core.param.convert`` (kind
'velocity'); a velocity network is seen through ``Denoiser(path, fn, prediction="velocity")``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core.likelihood import continuous_elbo
from gen_jax.core.param import Denoiser, convert, velocity_target
from gen_jax.core.pytree import pytree_dataclass
from gen_jax.core.samplers.log_snr_time import time_at_log_snr
from gen_jax.core.schedules import LinearLogSNR
from gen_jax.core.sde import LogSNRSDE, Process
from gen_jax.core.timeshape import batch_time, check_time, expand_like

T_SAMPLINGS = ("uniform", "logit_normal")


def linear_alpha(t):
    """alpha(t) = 1 - t of the linear (rectified-flow) path."""
    return 1.0 - t


def linear_sigma(t):
    """sigma(t) = t of the linear (rectified-flow) path."""
    return t


def _static(default):
    return dataclasses.field(default=default, metadata=dict(static=True))


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class AffinePath(Process):
    """The Gaussian path x_t = alpha(t) x_0 + sigma(t) eps on [0, T], T = 1 - t_eps.

    alpha_fn, sigma_fn: elementwise jax functions of t (module-level functions, so the path is
      hashable); derivatives come from ``jax.jvp``. Defaults: the linear path 1 - t, t.
      They must give alpha > 0, sigma > 0 and a strictly decreasing log-SNR on [t_eps, T]
      (checked on a grid).
    t_eps: the path stops at T = 1 - t_eps, in (0, 0.1).
    A ``core.sde.Process`` (T, alpha_sigma, log_snr, dlog_snr_dt, marginal_prob, prior_sample,
    prior_logp, sde, smallest_time = t_eps), plus ``coefficients`` (with derivatives).
    """
    alpha_fn: Callable = _static(linear_alpha)
    sigma_fn: Callable = _static(linear_sigma)
    t_eps: float = _static(1e-5)

    def __post_init__(self):
        if not (callable(self.alpha_fn) and callable(self.sigma_fn)):
            raise ValueError("alpha_fn and sigma_fn must be callables of t")
        if isinstance(self.t_eps, bool) or not isinstance(self.t_eps, (int, float)) or not (
                0.0 < self.t_eps < 0.1):
            raise ValueError(f"t_eps must be a float in (0, 0.1), got {self.t_eps!r}")
        object.__setattr__(self, "t_eps", float(self.t_eps))
        with jax.ensure_compile_time_eval():
            grid = jnp.linspace(self.t_eps, self.T, 65)
            alpha, sigma = (np.asarray(v, np.float64) for v in self.alpha_sigma(grid))
        if not (np.all(alpha > 0) and np.all(sigma > 0)):
            raise ValueError("alpha_fn and sigma_fn must be > 0 on [t_eps, 1 - t_eps]")
        if not np.all(np.diff(np.log(alpha) - np.log(sigma)) < 0):
            raise ValueError("alpha_fn / sigma_fn must give a strictly decreasing log-SNR on "
                             "[t_eps, 1 - t_eps] (t=0 data, t=1 noise)")

    @property
    def T(self) -> float:
        return 1.0 - self.t_eps

    @property
    def smallest_time(self) -> float:
        return self.t_eps

    def alpha_sigma(self, t):
        """(alpha, sigma), each shaped like t."""
        t = check_time(t)
        return self.alpha_fn(t), self.sigma_fn(t)

    def coefficients(self, t):
        """(alpha, sigma, d alpha/dt, d sigma/dt), each shaped like t."""
        t = check_time(t)
        ones = jnp.ones_like(t)
        alpha, d_alpha = jax.jvp(self.alpha_fn, (t,), (ones,))
        sigma, d_sigma = jax.jvp(self.sigma_fn, (t,), (ones,))
        return alpha, sigma, d_alpha, d_sigma

    def log_snr(self, t):
        """2 log(alpha / sigma): +inf at t=0 for sigma(0)=0; finite on (0, T]."""
        alpha, sigma = self.alpha_sigma(t)
        return 2.0 * (jnp.log(alpha) - jnp.log(sigma))

    def dlog_snr_dt(self, t):
        """2 (alpha'/alpha - sigma'/sigma); linear path: -2 / (t (1 - t))."""
        alpha, sigma, d_alpha, d_sigma = self.coefficients(t)
        return 2.0 * (d_alpha / alpha - d_sigma / sigma)

    def sde(self, x, t):
        """(f like x, g (B,)): f = (alpha'/alpha) x, g^2 = 2 sigma sigma' - 2 (alpha'/alpha) sigma^2."""
        t = batch_time(t, x)
        alpha, sigma, d_alpha, d_sigma = self.coefficients(t)
        rate = d_alpha / alpha
        g2 = 2.0 * sigma * d_sigma - 2.0 * rate * sigma**2
        return expand_like(rate, x) * x, jnp.sqrt(g2)

    def prior_sigma(self):
        """sigma(T): the prior's scale."""
        return self.sigma_fn(jnp.asarray(self.T, jnp.float32))

    def prior_sample(self, key, shape):
        """z ~ N(0, sigma(T)^2 I) of the given shape."""
        return self.prior_sigma() * jax.random.normal(key, shape)

    def prior_logp(self, z):
        """log N(z; 0, sigma(T)^2 I), (B,) nats summed over non-batch dims."""
        scale = self.prior_sigma()
        d = math.prod(z.shape[1:])
        sq = jnp.sum(jnp.square(z).reshape(z.shape[0], -1), axis=-1)
        return -0.5 * d * jnp.log(2 * math.pi * scale**2) - 0.5 * sq / scale**2

    def time_at_log_snr(self, log_snr):
        """t in [0, T] with log_snr(t) = log_snr (bisection), elementwise."""
        return time_at_log_snr(self, log_snr, 0.0, self.T)


def linear_path(t_eps: float = 1e-5) -> AffinePath:
    """The rectified-flow path x_t = (1 - t) x_0 + t eps on [0, 1 - t_eps]."""
    return AffinePath(linear_alpha, linear_sigma, t_eps)


# ------------------------------------------------------------------------------------------
# Training objective
# ------------------------------------------------------------------------------------------
def sample_flow_times(key, batch: int, sampling: str = "uniform", m: float = 0.0, s: float = 1.0,
                      antithetic: bool = True):
    """(B,) training times in [0, 1]: 'uniform' (Lipman et al. 2023) or 'logit_normal'
    t = sigmoid(m + s n), n ~ N(0, 1) (Esser et al. 2024, SD3).

    antithetic: stratified u_i = (u + i/B) mod 1 with one u ~ U[0, 1) (as VDM), then
    t = u (uniform) or sigmoid(m + s Phi^-1(u)) (logit-normal); each t_i keeps its marginal.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    if sampling not in T_SAMPLINGS:
        raise ValueError(f"sampling must be one of {T_SAMPLINGS}, got {sampling!r}")
    if isinstance(s, (int, float)) and not s > 0:
        raise ValueError(f"s (the logit-normal scale) must be > 0, got {s}")
    if antithetic:
        u = jnp.mod(jax.random.uniform(key, ()) + jnp.arange(batch) / batch, 1.0)
    else:
        u = jax.random.uniform(key, (batch,))
    if sampling == "uniform":
        return u
    return jax.nn.sigmoid(m + s * jax.scipy.special.ndtri(u))


def flow_matching_loss(key, velocity_fn: Callable, x0, path, *, t_sampling: str = "uniform",
                       m: float = 0.0, s: float = 1.0, antithetic: bool = True,
                       reduce_mean: bool = True):
    """Conditional flow-matching loss ||v(x_t, t) - u||^2 (Lipman et al. 2023, eq. 9), (B,).

    x_t = alpha x_0 + sigma eps, u = alpha' x_0 + sigma' eps, t from ``sample_flow_times``.
    Its minimiser over v is E[u | x_t], the marginal velocity. reduce_mean: mean (True) or sum
    over the data dims.
    """
    key_t, key_eps = jax.random.split(key)
    t = sample_flow_times(key_t, x0.shape[0], t_sampling, m, s, antithetic)
    eps = jax.random.normal(key_eps, x0.shape, x0.dtype)
    alpha, sigma, d_alpha, d_sigma = path.coefficients(t)
    x_t = expand_like(alpha, x0) * x0 + expand_like(sigma, x0) * eps
    err = jnp.square(velocity_fn(x_t, t) - velocity_target(x0, eps, d_alpha, d_sigma))
    flat = err.reshape(err.shape[0], -1)
    return jnp.mean(flat, -1) if reduce_mean else jnp.sum(flat, -1)


# ------------------------------------------------------------------------------------------
# The log-SNR view: the same model as a VP process with a linear log-SNR schedule
# ------------------------------------------------------------------------------------------
def log_snr_view(path, velocity_fn: Callable, t_min: float, t_max=None):
    """(process, denoiser): the path between t_min and t_max (default T) as VDM's VP process
    with logSNR linear from logSNR(t_min) at s=0 to logSNR(t_max) at s=1, and the model's eps.

    The path's x_t is c(t) times the VP variable of the same log-SNR, c = sqrt(alpha^2 +
    sigma^2), and eps is the same; so eps_vp(z, s) = eps(c z, t(s)) with t(s) the path time of
    logSNR(s) makes the two the same model, and VDM's continuous ELBO (which depends only on
    the log-SNR end points and eps as a function of the log-SNR) bounds the flow's reverse SDE.
    Sampling s uniformly is VDM's importance sampling uniform in log-SNR.
    """
    t_max = path.T if t_max is None else t_max
    if not 0.0 < t_min < t_max <= path.T:
        raise ValueError(f"need 0 < t_min < t_max <= T = {path.T}, got t_min={t_min}, "
                         f"t_max={t_max}")
    with jax.ensure_compile_time_eval():
        ends = [float(path.log_snr(jnp.float32(t))) for t in (t_min, t_max)]
    schedule = LinearLogSNR(logsnr_max=ends[0], logsnr_min=ends[1])
    process = LogSNRSDE(schedule)

    def eps(z, s):
        t = path.time_at_log_snr(schedule.log_snr(s))
        alpha, sigma, d_alpha, d_sigma = path.coefficients(t)
        x = expand_like(jnp.sqrt(alpha**2 + sigma**2), z) * z
        return convert(velocity_fn(x, t), "velocity", "eps", x, alpha, sigma, d_alpha, d_sigma)

    return process, Denoiser(process, fn=eps, prediction="eps")


def flow_elbo(key, path, velocity_fn: Callable, x_int, num_levels: int, *, t_min: float,
              t_max=None, antithetic: bool = True):
    """VDM's continuous-time ELBO (Kingma et al. 2021, eq. 17) of K-level data under the flow
    model's reverse SDE on [t_min, t_max], in nats: (total (B,), terms) as ``continuous_elbo``
    (decoder at t_min, prior KL at t_max). Through ``log_snr_view``."""
    process, denoiser = log_snr_view(path, velocity_fn, t_min, t_max)
    return continuous_elbo(key, denoiser, process, x_int, num_levels, antithetic=antithetic)


__all__ = [
    "T_SAMPLINGS", "AffinePath", "linear_path", "linear_alpha", "linear_sigma", "sample_flow_times",
    "flow_matching_loss", "log_snr_view", "flow_elbo",
]
