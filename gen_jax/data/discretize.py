"""K-level integer data <-> bin centres in [-1, 1], and binarization.

Convention (DESIGN.md): level k in {0..K-1} maps to x = (2k + 1)/K - 1, the centre of the k-th
of K equal bins tiling [-1, 1]. gen_jax.core keeps its own copy of this map for the likelihood
code; the two must agree (tests check this one against the formula).
"""
from __future__ import annotations

import numpy as np


def _check_levels(num_levels) -> int:
    if isinstance(num_levels, bool) or not isinstance(num_levels, (int, np.integer)) or num_levels < 2:
        raise ValueError(f"num_levels must be an integer >= 2, got {num_levels!r}")
    return int(num_levels)


def to_centers(k, num_levels: int) -> np.ndarray:
    """Integer levels k in [0, K) (any shape) -> float32 bin centres (2k + 1)/K - 1."""
    K = _check_levels(num_levels)
    k = np.asarray(k)
    if not np.issubdtype(k.dtype, np.integer):
        raise ValueError(f"to_centers: levels must be integers, got dtype {k.dtype}")
    return ((2.0 * k.astype(np.float64) + 1.0) / K - 1.0).astype(np.float32)


def from_centers(x, num_levels: int) -> np.ndarray:
    """Floats in [-1, 1] (any shape) -> int32 level of the nearest bin centre, clipped to [0, K)."""
    K = _check_levels(num_levels)
    x = np.asarray(x, dtype=np.float64)
    k = np.floor((x + 1.0) * K / 2.0)
    return np.clip(k, 0, K - 1).astype(np.int32)


def binarize(levels, threshold: int = 128) -> np.ndarray:
    """Deterministic binarization: level >= threshold -> 1, else 0, as uint8 (any shape).

    For 8-bit images the default threshold 128 splits 0..255 in half.
    """
    levels = np.asarray(levels)
    if not np.issubdtype(levels.dtype, np.integer):
        raise ValueError(f"binarize: levels must be integers, got dtype {levels.dtype}")
    return (levels >= threshold).astype(np.uint8)
