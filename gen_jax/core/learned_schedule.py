"""A learnable monotone log-SNR schedule (Kingma et al. 2021, VDM, App. H / their NoiseNet).

An increasing scalar network of t,

    h(t) = |w_lin| t + mean_j |w_out_j| (2 sigmoid(|w_hid_j| (2t - 1) + b_hid_j) - 1),

(positive weights on increasing units, so h is monotone), rescaled to fixed endpoints:

    logSNR(t) = logsnr_max + (logsnr_min - logsnr_max) (h(t) - h(0)) / (h(1) - h(0)),

so logSNR(0) = logsnr_max, logSNR(1) = logsnr_min and logSNR decreases in t (VDM's
gamma = -logSNR rises from gamma_min to gamma_max). Parameters are a plain dict pytree; the time
derivative comes from ``jax.jvp``, and gradients reach the parameters through any loss (e.g.
``likelihood.continuous_elbo`` with ``LearnedLogSNR`` as the process).
"""
import dataclasses

import jax
import jax.numpy as jnp

from gen_jax.core.pytree import pytree_dataclass
from gen_jax.core.schedules import LogSNRSchedule
from gen_jax.core.timeshape import check_time

__all__ = ["init", "log_snr", "dlog_snr_dt", "LearnedLogSNR"]


def init(key, num_features: int = 1024):
    """Parameters of the monotone network: dict of float32 arrays.

    'linear_w' () starts at 1 (a linear log-SNR, VDM's fixed schedule); 'hidden_w',
    'hidden_b', 'out_w' (num_features,) are standard normal (the network uses the absolute
    values of the weights).
    """
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1; got {num_features}")
    k_hid_w, k_hid_b, k_out = jax.random.split(key, 3)
    return dict(
        linear_w=jnp.ones((), jnp.float32),
        hidden_w=jax.random.normal(k_hid_w, (num_features,), jnp.float32),
        hidden_b=jax.random.normal(k_hid_b, (num_features,), jnp.float32),
        out_w=jax.random.normal(k_out, (num_features,), jnp.float32),
    )


def _monotone_net(params, t):
    """h(t), increasing in t; t any shape, result like t."""
    t = jnp.asarray(t, jnp.float32)
    hidden = jnp.abs(params["hidden_w"]) * (2.0 * t[..., None] - 1.0) + params["hidden_b"]
    nonlinear = jnp.mean(jnp.abs(params["out_w"]) * (2.0 * jax.nn.sigmoid(hidden) - 1.0), axis=-1)
    return jnp.abs(params["linear_w"]) * t + nonlinear


def log_snr(params, t, logsnr_max: float = 13.3, logsnr_min: float = -5.0):
    """logSNR(t), decreasing from logsnr_max at t=0 to logsnr_min at t=1; t scalar or (B,)."""
    if not logsnr_max > logsnr_min:
        raise ValueError(f"logsnr_max must exceed logsnr_min; got {logsnr_max} <= {logsnr_min}")
    h0, h1 = _monotone_net(params, 0.0), _monotone_net(params, 1.0)
    fraction = (_monotone_net(params, t) - h0) / (h1 - h0)
    return logsnr_max + (logsnr_min - logsnr_max) * fraction


def dlog_snr_dt(params, t, logsnr_max: float = 13.3, logsnr_min: float = -5.0):
    """d logSNR / dt (<= 0) by forward-mode differentiation; shaped like t."""
    t = jnp.asarray(t, jnp.float32)
    return jax.jvp(lambda s: log_snr(params, s, logsnr_max, logsnr_min), (t,), (jnp.ones_like(t),))[1]


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class LearnedLogSNR(LogSNRSchedule):
    """The learned schedule as a ``schedules.LogSNRSchedule`` (VP: alpha^2 = sigmoid(logSNR),
    sigma^2 = sigmoid(-logSNR)). ``params`` are pytree leaves (differentiable); the endpoints
    are static. Wrap in ``sde.LogSNRSDE`` for SDE samplers and the PF-ODE."""
    params: dict
    logsnr_max: float = dataclasses.field(default=13.3, metadata=dict(static=True))
    logsnr_min: float = dataclasses.field(default=-5.0, metadata=dict(static=True))

    def log_snr(self, t):
        return log_snr(self.params, check_time(t), self.logsnr_max, self.logsnr_min)

    def dlog_snr_dt(self, t):
        return dlog_snr_dt(self.params, check_time(t), self.logsnr_max, self.logsnr_min)
