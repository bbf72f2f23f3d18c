"""Argument checks shared by the core, following the failure policy of ``gen_jax.core``.

Static arguments (counts, shapes, dtypes, python numbers) are checked at call or trace time and
raise ValueError naming the argument. Integer ids are checked by value: concrete ids outside
their range raise ValueError; traced ids (inside ``jax.jit``) cannot raise, so the check returns
a per-example validity mask and the caller returns NaN for the invalid examples.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_int(value, name: str, minimum: int = 1) -> int:
    """value as a python int; ValueError unless it is an int (python or numpy, not bool, float or
    str) >= minimum."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def is_concrete(x) -> bool:
    """True unless x is a tracer (its values are unknown while jit traces)."""
    return not isinstance(x, jax.core.Tracer)


def ids_in_range(ids, upper: int, name: str, mask=None):
    """Per-example validity of integer ids that must lie in [0, upper).

    ids: (B, ...) integer array; mask: optional array like ids, positions with mask == 0 are not
    checked (padding). Raises ValueError if ids is not an integer array or, when ids (and mask)
    are concrete, if any checked id is out of range. Returns (B,) bool, True where every checked
    id of the example is in range (all True for concrete ids).
    """
    dtype = jnp.result_type(ids)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"{name} must be integer ids in [0, {upper}), got dtype {dtype}")
    ids = jnp.asarray(ids)
    if ids.ndim < 1:
        raise ValueError(f"{name} must be batched (B, ...), got shape {ids.shape}")
    ok = (ids >= 0) & (ids < upper)
    if mask is not None:
        ok = ok | (jnp.asarray(mask) == 0)
    valid = jnp.all(ok.reshape(ids.shape[0], -1), axis=-1)
    if is_concrete(valid) and not bool(np.all(np.asarray(valid))):
        bad = np.asarray(ids)[~np.asarray(ok)]
        raise ValueError(f"{name} must lie in [0, {upper}), found {bad.size} out-of-range values "
                         f"in [{bad.min()}, {bad.max()}]")
    return valid


def nan_where_invalid(values, valid):
    """values (B, ...) with NaN for the examples where valid (B,) is False."""
    valid = valid.reshape(valid.shape + (1,) * (jnp.ndim(values) - 1))
    return jnp.where(valid, values, jnp.nan)


__all__ = ["check_int", "is_concrete", "ids_in_range", "nan_where_invalid"]
