"""Time and shape helpers shared by processes, wrappers and likelihoods.

Continuous time t lies in [0, 1] (t=0 data, t=1 noise). A time is a scalar or a (B,) array;
per-example coefficients (B,) broadcast against data x (B, ...) through ``expand_like``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_time(t, name: str = "t"):
    """t as a float array; ValueError if t is a bool, not a scalar or (B,), or (when concrete:
    python, numpy or a concrete jax array) has values outside [0, 1]. Only tracers pass unchecked."""
    if isinstance(t, (bool, np.bool_)):
        raise ValueError(f"{name} must be a float time in [0, 1], got a bool")
    t = jnp.asarray(t)
    if t.ndim > 1:
        raise ValueError(f"{name} must be a scalar or have shape (B,), got shape {t.shape}")
    if t.dtype == jnp.bool_:
        raise ValueError(f"{name} must be a float time in [0, 1], got a bool array")
    if not isinstance(t, jax.core.Tracer):
        value = np.asarray(t, np.float64)
        if value.size and not (np.all(value >= 0.0) and np.all(value <= 1.0)):
            raise ValueError(f"{name} must lie in [0, 1], got values in [{value.min()}, {value.max()}]")
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


__all__ = ["check_time", "batch_time", "expand_like"]
