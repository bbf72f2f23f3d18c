"""K-level integer data <-> bin centres in [-1, 1], and binarization, on numpy arrays.

Level k in {0..K-1} maps to x = (2k + 1)/K - 1, the centre of the k-th of K equal bins tiling
[-1, 1]. The map itself is ``gen_jax.core.units`` (``level_centres``, ``nearest_levels``), the
one definition the likelihoods use too; here it runs in float64 numpy.
"""
from __future__ import annotations

import numpy as np

from gen_jax.core.units import check_num_levels, level_centres, nearest_levels


def to_centers(k, num_levels: int) -> np.ndarray:
    """Integer levels k in [0, K) (any shape) -> float32 bin centres (2k + 1)/K - 1."""
    K = check_num_levels(num_levels)
    k = np.asarray(k)
    if not np.issubdtype(k.dtype, np.integer):
        raise ValueError(f"to_centers: levels must be integers, got dtype {k.dtype}")
    return level_centres(k.astype(np.float64), K).astype(np.float32)


def from_centers(x, num_levels: int) -> np.ndarray:
    """Floats in [-1, 1] (any shape) -> int32 level of the nearest bin centre, clipped to [0, K)."""
    K = check_num_levels(num_levels)
    return nearest_levels(np.asarray(x, dtype=np.float64), K).astype(np.int32)


def binarize(levels, threshold: int = 128) -> np.ndarray:
    """Deterministic binarization: level >= threshold -> 1, else 0, as uint8 (any shape).

    For 8-bit images the default threshold 128 splits 0..255 in half.
    """
    levels = np.asarray(levels)
    if not np.issubdtype(levels.dtype, np.integer):
        raise ValueError(f"binarize: levels must be integers, got dtype {levels.dtype}")
    return (levels >= threshold).astype(np.uint8)
