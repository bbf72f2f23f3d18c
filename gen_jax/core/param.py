"""Conversions between the five things a diffusion or flow network can predict, one table
``convert(out, from_kind, to_kind, x_t, alpha, sigma, d_alpha, d_sigma)`` over them, and one
wrapper (``Denoiser``) that gives samplers and likelihoods all of them from whichever the network
outputs.

With x_t = alpha x_0 + sigma eps:
  eps-prediction (Ho et al. 2020), x0-prediction, v = alpha eps - sigma x_0 (Salimans & Ho 2022),
  score = grad log q_t(x_t) = -eps / sigma, and the flow-matching velocity
  u = d x_t / dt = alpha' x_0 + sigma' eps (Lipman et al. 2023; linear path: eps - x_0), which
  needs the time derivatives d_alpha = alpha', d_sigma = sigma'.
alpha, sigma (and the derivatives) are scalars or (B,) and broadcast over the trailing dims of
x (B, ...). The v conversions hold for any (alpha, sigma), not only alpha^2 + sigma^2 = 1.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.core.pytree import pytree_dataclass
from gen_jax.core.timeshape import batch_time, expand_like

PREDICTIONS = ("eps", "x0", "v", "score", "velocity")
NEEDS_DERIVATIVES = ("velocity",)


def eps_to_x0(eps, x_t, alpha, sigma):
    """x_0 = (x_t - sigma eps) / alpha."""
    return (x_t - expand_like(sigma, x_t) * eps) / expand_like(alpha, x_t)


def x0_to_eps(x0, x_t, alpha, sigma):
    """eps = (x_t - alpha x_0) / sigma."""
    return (x_t - expand_like(alpha, x_t) * x0) / expand_like(sigma, x_t)


def eps_x0_to_v(eps, x0, alpha, sigma):
    """v = alpha eps - sigma x_0 (Salimans & Ho 2022)."""
    return expand_like(alpha, eps) * eps - expand_like(sigma, eps) * x0


def v_to_eps(v, x_t, alpha, sigma):
    """eps = (sigma x_t + alpha v) / (alpha^2 + sigma^2)."""
    a, s = expand_like(alpha, x_t), expand_like(sigma, x_t)
    return (s * x_t + a * v) / (a**2 + s**2)


def v_to_x0(v, x_t, alpha, sigma):
    """x_0 = (alpha x_t - sigma v) / (alpha^2 + sigma^2)."""
    a, s = expand_like(alpha, x_t), expand_like(sigma, x_t)
    return (a * x_t - s * v) / (a**2 + s**2)


def eps_to_score(eps, sigma):
    """score = -eps / sigma."""
    return -eps / expand_like(sigma, eps)


def score_to_eps(score, sigma):
    """eps = -sigma score."""
    return -expand_like(sigma, score) * score


# Velocity. With x = alpha x_0 + sigma eps and u = alpha' x_0 + sigma' eps, the 2x2 system
# [[alpha, sigma], [alpha', sigma']] has determinant det = alpha sigma' - sigma alpha' (> 0 when
# the log-SNR decreases; linear path: 1), so x_0 = (sigma' x - sigma u) / det and
# eps = (alpha u - alpha' x) / det.
def velocity_target(x0, eps, d_alpha, d_sigma):
    """u = alpha' x_0 + sigma' eps (linear path: eps - x_0), like x0."""
    return expand_like(d_alpha, x0) * x0 + expand_like(d_sigma, x0) * eps


def velocity_to_x0(u, x_t, alpha, sigma, d_alpha, d_sigma):
    """x_0 = (sigma' x - sigma u) / det (linear path: x - t u), like x_t."""
    a, s, da, ds = (expand_like(c, x_t) for c in (alpha, sigma, d_alpha, d_sigma))
    return (ds * x_t - s * u) / (a * ds - s * da)


def velocity_to_eps(u, x_t, alpha, sigma, d_alpha, d_sigma):
    """eps = (alpha u - alpha' x) / det (linear path: x + (1 - t) u), like x_t."""
    a, s, da, ds = (expand_like(c, x_t) for c in (alpha, sigma, d_alpha, d_sigma))
    return (a * u - da * x_t) / (a * ds - s * da)


def _eps_from(out, kind, x_t, alpha, sigma, d_alpha, d_sigma):
    if kind == "eps":
        return out
    if kind == "x0":
        return x0_to_eps(out, x_t, alpha, sigma)
    if kind == "v":
        return v_to_eps(out, x_t, alpha, sigma)
    if kind == "velocity":
        return velocity_to_eps(out, x_t, alpha, sigma, d_alpha, d_sigma)
    return score_to_eps(out, sigma)


def _x0_from(out, kind, x_t, alpha, sigma, d_alpha, d_sigma):
    if kind == "x0":
        return out
    if kind == "v":
        return v_to_x0(out, x_t, alpha, sigma)
    if kind == "velocity":
        return velocity_to_x0(out, x_t, alpha, sigma, d_alpha, d_sigma)
    return eps_to_x0(_eps_from(out, kind, x_t, alpha, sigma, d_alpha, d_sigma), x_t, alpha, sigma)


def convert(out, from_kind: str, to_kind: str, x_t, alpha, sigma, d_alpha=None, d_sigma=None):
    """A prediction ``out`` (like x_t) of kind ``from_kind`` as kind ``to_kind`` (both in
    PREDICTIONS), at x_t = alpha x_0 + sigma eps; alpha, sigma scalars or (B,); d_alpha,
    d_sigma (their time derivatives, like alpha) are needed when either kind is 'velocity'.

    The identity when the kinds agree; x0 from v or velocity goes direct (no detour through eps,
    which divides by sigma), everything else through eps = E[eps | x_t]; velocity is formed from
    (x0, eps).
    """
    for name, kind in (("from_kind", from_kind), ("to_kind", to_kind)):
        if kind not in PREDICTIONS:
            raise ValueError(f"{name} must be one of {PREDICTIONS}, got {kind!r}")
    if (from_kind in NEEDS_DERIVATIVES or to_kind in NEEDS_DERIVATIVES) and (
            d_alpha is None or d_sigma is None):
        raise ValueError(f"converting {from_kind!r} to {to_kind!r} needs d_alpha and d_sigma "
                         f"(the time derivatives of alpha and sigma)")
    if from_kind == to_kind:
        return out
    c = (x_t, alpha, sigma, d_alpha, d_sigma)
    if to_kind == "x0":
        return _x0_from(out, from_kind, *c)
    eps = _eps_from(out, from_kind, *c)
    if to_kind == "eps":
        return eps
    if to_kind == "score":
        return eps_to_score(eps, sigma)
    x0 = _x0_from(out, from_kind, *c)
    if to_kind == "velocity":
        return velocity_target(x0, eps, d_alpha, d_sigma)
    return eps_x0_to_v(eps, x0, alpha, sigma)


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class Denoiser:
    """A network ``fn(x, t) -> prediction`` of kind ``prediction`` (one of PREDICTIONS: 'eps',
    'x0', 'v', 'score', 'velocity') seen through a process with ``alpha_sigma(t)``.

    Methods take x (B, ...) and t (B,) (a scalar is broadcast to (B,) before fn is called) and
    return arrays like x; each calls fn once (``eps_and_x0`` too) and converts with ``convert``
    (the velocity's d_alpha, d_sigma from ``jax.jvp`` of ``alpha_sigma`` in t).
    Raises ValueError if fn's output shape differs from x's.
    """
    process: object
    fn: Callable = dataclasses.field(default=None, metadata=dict(static=True))
    prediction: str = dataclasses.field(default="eps", metadata=dict(static=True))

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if not callable(self.fn):
            raise ValueError(f"fn must be a callable fn(x, t), got {type(self.fn).__name__}")

    def _call(self, x, t):
        t = batch_time(t, x)
        out = self.fn(x, t)
        if jnp.shape(out) != x.shape:
            raise ValueError(
                f"model output shape {jnp.shape(out)} must equal input shape {x.shape} "
                f"(prediction={self.prediction!r})")
        return out, t

    def _as(self, to_kinds, x, t):
        out, t = self._call(x, t)
        if self.prediction in NEEDS_DERIVATIVES or any(k in NEEDS_DERIVATIVES for k in to_kinds):
            (alpha, sigma), (d_alpha, d_sigma) = jax.jvp(self.process.alpha_sigma, (t,),
                                                         (jnp.ones_like(t),))
        else:
            (alpha, sigma), d_alpha, d_sigma = self.process.alpha_sigma(t), None, None
        return tuple(convert(out, self.prediction, kind, x, alpha, sigma, d_alpha, d_sigma)
                     for kind in to_kinds)

    def eps_and_x0(self, x, t):
        """(E[eps | x_t], E[x_0 | x_t]) from one network call."""
        return self._as(("eps", "x0"), x, t)

    def eps(self, x, t):
        return self._as(("eps",), x, t)[0]

    def x0(self, x, t):
        return self._as(("x0",), x, t)[0]

    def v(self, x, t):
        return self._as(("v",), x, t)[0]

    def score(self, x, t):
        return self._as(("score",), x, t)[0]

    def velocity(self, x, t):
        """d x_t / dt along the path: the probability-flow ODE's drift."""
        return self._as(("velocity",), x, t)[0]


def cfg_combine(cond, uncond, guidance_scale):
    """Classifier-free guidance (Ho & Salimans 2022): uncond + w (cond - uncond).

    w = guidance_scale (w = 1: the conditional prediction, w = 0: the unconditional one; the
    paper's w is this w - 1). guidance_scale: scalar or (B,). Works on eps, x0, v or score.
    """
    if jnp.shape(cond) != jnp.shape(uncond):
        raise ValueError(
            f"cond and uncond must have the same shape, got {jnp.shape(cond)} and {jnp.shape(uncond)}")
    w = expand_like(guidance_scale, cond)
    return uncond + w * (cond - uncond)


__all__ = [
    "PREDICTIONS", "eps_to_x0", "x0_to_eps", "eps_x0_to_v", "v_to_eps", "v_to_x0",
    "eps_to_score", "score_to_eps", "velocity_target", "velocity_to_x0", "velocity_to_eps",
    "convert", "Denoiser", "cfg_combine",
]
