"""Classifier-free guidance (Ho & Salimans 2022) as a model a sampler can call."""
from __future__ import annotations

from gen_jax.core.param import cfg_combine


def guided(fn_cond, fn_uncond, scale):
    """fn(x, t) = uncond + scale (cond - uncond) of two predictions of the same kind (see
    ``param.cfg_combine``: scale 1 is the conditional model, 0 the unconditional one).

    Two network calls per evaluation; to batch them into one call, concatenate the inputs in
    your own fn and use ``param.cfg_combine`` on the halves. scale: scalar or (B,).
    """
    def fn(x, t):
        return cfg_combine(fn_cond(x, t), fn_uncond(x, t), scale)

    return fn
