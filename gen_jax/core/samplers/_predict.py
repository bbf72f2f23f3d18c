"""One network evaluation -> the quantity a sampler needs, under the sampler's own (alpha, sigma).

Samplers accept either a ``param.Denoiser`` (its ``fn`` and ``prediction`` are used) or a plain
callable ``fn(x, t)`` together with ``prediction`` in {'eps', 'x0', 'v', 'score'}. Conversions
use the (alpha, sigma) of the schedule being sampled, so a discrete DDPM chain is sampled with
its own alphas_cumprod even when the Denoiser carries a continuous process. A velocity network
is defined by its own path's time derivatives, so it must come as a Denoiser (``prediction=
'velocity'``), which is used as an x0-predictor under its own path.
"""
from __future__ import annotations

import jax.numpy as jnp

from gen_jax.core import param


def resolve_model(model, prediction):
    """(fn, prediction) from a Denoiser or from a plain callable plus its prediction type."""
    if isinstance(model, param.Denoiser):
        if prediction is not None and prediction != model.prediction:
            raise ValueError(
                f"prediction={prediction!r} conflicts with the Denoiser's {model.prediction!r}")
        if model.prediction in param.NEEDS_DERIVATIVES:
            return model.x0, "x0"
        return model.fn, model.prediction
    if not callable(model):
        raise ValueError(f"model must be a Denoiser or a callable fn(x, t), got {type(model).__name__}")
    kinds = tuple(k for k in param.PREDICTIONS if k not in param.NEEDS_DERIVATIVES)
    if prediction in param.NEEDS_DERIVATIVES:
        raise ValueError(f"a {prediction!r} network needs its path: pass "
                         f"Denoiser(path, fn, prediction={prediction!r})")
    if prediction is None:
        raise ValueError(f"a plain callable needs prediction= one of {kinds}")
    if prediction not in kinds:
        raise ValueError(f"prediction must be one of {kinds}, got {prediction!r}")
    return model, prediction


def call_checked(fn, x, t):
    """fn(x, t) with a ValueError if the output shape differs from x's."""
    out = fn(x, t)
    if jnp.shape(out) != x.shape:
        raise ValueError(f"model output shape {jnp.shape(out)} must equal input shape {x.shape}")
    return out


def eps_and_x0(fn, prediction, x, t, alpha, sigma):
    """(eps_hat, x0_hat) from one call of fn at x = alpha x0 + sigma eps; alpha, sigma (B,),
    through the one conversion table ``param.convert``."""
    out = call_checked(fn, x, t)
    return (param.convert(out, prediction, "eps", x, alpha, sigma),
            param.convert(out, prediction, "x0", x, alpha, sigma))


def x0_only(fn, prediction, x, t, alpha, sigma):
    """x0_hat from one call of fn (``param.convert``: direct for 'x0' and 'v')."""
    return param.convert(call_checked(fn, x, t), prediction, "x0", x, alpha, sigma)


def resolve_score(model):
    """score_fn(x, t) from a Denoiser (its ``score``, under the Denoiser's own process) or a
    plain callable that already returns the score."""
    if isinstance(model, param.Denoiser):
        return model.score
    if not callable(model):
        raise ValueError(
            f"model must be a Denoiser or a callable score_fn(x, t), got {type(model).__name__}")
    return model
