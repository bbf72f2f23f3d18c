"""Input validation shared by the samplers: static information only (python ints and floats,
shapes, concrete time grids), so every sampler stays jit-able."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_num_steps(num_steps, minimum: int = 1, name: str = "num_steps") -> int:
    """num_steps as a python int; ValueError unless it is an int >= minimum."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(num_steps).__name__}")
    if num_steps < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {num_steps}")
    return int(num_steps)


def check_shape(shape) -> tuple:
    """shape (B, ...) as a tuple of positive ints."""
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError as e:
        raise ValueError(f"shape must be a tuple of ints (B, ...), got {shape!r}") from e
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"shape must be a non-empty tuple of positive ints (B, ...), got {shape}")
    return shape


def check_choice(value, choices, name: str):
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_positive(value, name: str):
    """value, with a ValueError if it is a python number <= 0 (traced values pass unchecked)."""
    if isinstance(value, (int, float, np.number)) and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_t_min(t_min, T: float = 1.0):
    if not isinstance(t_min, (int, float, np.number)) or not 0.0 < t_min < T:
        raise ValueError(f"t_min must be a float in (0, {T}), got {t_min!r}")
    return float(t_min)


def check_init(x_init, shape):
    """x_init, if given, must be a float array of the sample shape."""
    if x_init is None:
        return None
    if tuple(np.shape(x_init)) != shape:
        raise ValueError(f"x_init must have shape {shape}, got {tuple(np.shape(x_init))}")
    if not jnp.issubdtype(jnp.result_type(x_init), jnp.floating):
        raise ValueError(f"x_init must be a float array, got dtype {jnp.result_type(x_init)}")
    return x_init


def check_times(times, T: float, num_steps=None) -> np.ndarray:
    """An explicit time grid as a float64 numpy array (S + 1,), S = len(times) - 1 steps.

    ValueError unless times is concrete (not traced), 1-D with at least 2 finite entries,
    strictly decreasing, times[0] <= T and times[-1] >= 0; and, if num_steps is given, unless
    num_steps == S.
    """
    if isinstance(times, jax.core.Tracer):
        raise ValueError("times must be concrete (a list or numpy array built outside jit)")
    grid = np.asarray(times, np.float64)
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(f"times must be 1-D with at least 2 entries, got shape {grid.shape}")
    if not np.all(np.isfinite(grid)):
        raise ValueError(f"times must be finite, got {grid}")
    if not np.all(np.diff(grid) < 0):
        raise ValueError(f"times must be strictly decreasing, got {grid}")
    if grid[0] > T or grid[-1] < 0:
        raise ValueError(f"times must lie in [0, {T}], got [{grid[-1]}, {grid[0]}]")
    if num_steps is not None and check_num_steps(num_steps) != grid.shape[0] - 1:
        raise ValueError(
            f"num_steps ({num_steps}) must equal len(times) - 1 ({grid.shape[0] - 1})")
    return grid


def compute_dtype(x):
    """The dtype a sampler's updates are computed in: x's dtype, at least float32."""
    return jnp.promote_types(x.dtype, jnp.float32)
