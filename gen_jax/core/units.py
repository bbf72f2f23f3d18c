"""Units and levels: nats -> bits (per dimension), K-level data <-> bin centres, uniform
dequantization.

K-level data k in {0..K-1} sits at the centre x = (2k + 1)/K - 1 of the k-th of K equal bins
tiling [-1, 1] (bin k is [2k/K - 1, 2(k+1)/K - 1), width 2/K). Every likelihood returns nats
per example; ``nats_to_bits_per_dim`` gives -log2 P / D for likelihoods of the discrete data, and
``dequantized_bits_per_dim`` adds log2(K / width of [-1, 1]) for densities of dequantized data.
``level_centres`` and ``nearest_levels`` are the one definition of the map, shared by
``gen_jax.data.discretize`` (numpy) and the core (jax).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gen_jax.core.checks import check_int, ids_in_range

LN2 = math.log(2.0)
DATA_RANGE = 2.0  # width of [-1, 1], the interval the K bins tile


def check_num_levels(num_levels) -> int:
    """num_levels K as a python int; ValueError unless it is an int >= 2."""
    return check_int(num_levels, "num_levels", minimum=2)


def check_levels(k, num_levels, name: str = "k"):
    """Validate batched K-level data k (B, ...) and return its per-example validity (B,) bool.

    ValueError if k is not an integer array with a batch axis and at least one more axis, if K is
    not an int >= 2, or if concrete k has values outside [0, K). Traced k is checked in-graph:
    the result is False for examples with an out-of-range value (callers return NaN for them).
    """
    check_num_levels(num_levels)
    if jnp.ndim(k) < 2:
        raise ValueError(f"{name} must be batched levels (B, ...), got shape {jnp.shape(k)}")
    return ids_in_range(k, num_levels, name)


def level_centres(k, num_levels: int):
    """(2k + 1)/K - 1 for float levels k of either array library (numpy or jax), like k.

    Written as (2k + 1 - K) / K: the numerator is an exact integer, so the result is the
    correctly rounded centre in any float precision (one rounding, not two)."""
    return (2.0 * k + 1.0 - num_levels) / num_levels


def nearest_levels(x, num_levels: int):
    """Index of the bin of [-1, 1] containing x, clipped to [0, K) (floats, numpy or jax)."""
    xp = x.__array_namespace__()
    return xp.clip(xp.floor((x + 1.0) * num_levels / DATA_RANGE), 0, num_levels - 1)


def levels_to_centers(k, num_levels: int):
    """K-level ints k (any shape) -> float32 bin centres (2k + 1)/K - 1 in (-1, 1).

    Values are not range-checked here (``check_levels`` does that for batched data)."""
    check_num_levels(num_levels)
    dtype = jnp.result_type(k)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"levels must be integers, got dtype {dtype}")
    return level_centres(jnp.asarray(k).astype(jnp.float32), num_levels)


def centers_to_levels(x, num_levels: int):
    """Floats in [-1, 1] (any shape) -> int32 level of the bin containing x, clipped to [0, K)."""
    check_num_levels(num_levels)
    return nearest_levels(jnp.asarray(x), num_levels).astype(jnp.int32)


def uniform_dequantize(key, k_int, num_levels: int):
    """Uniform dequantization y = 2 (k + u)/K - 1, u ~ U[0, 1): y in bin k, float32 like k_int."""
    check_num_levels(num_levels)
    u = jax.random.uniform(key, jnp.shape(k_int), jnp.float32)
    return DATA_RANGE * (jnp.asarray(k_int).astype(jnp.float32) + u) / num_levels - 1.0


def nats_to_bits(nats):
    """nats -> bits (divide by ln 2). Bits per token: nats_to_bits(token_weighted_mean(...))."""
    return nats / LN2


def nats_to_bits_per_dim(nats, num_dims: int):
    """(B,) nats per example -> (B,) bits per dimension: nats / (D ln 2).

    For a likelihood of the discrete data itself (AR NLL, VLB/ELBO with a K-level decoder) this
    is -log2 P(x) / D, exact or an upper bound. For a *density* of continuous data use
    ``dequantized_bits_per_dim`` instead.
    """
    num_dims = check_int(num_dims, "num_dims", minimum=1)
    return nats / (num_dims * LN2)


bits_per_dim = nats_to_bits_per_dim  # the shared-contract name


def dequantized_bits_per_dim(nll_of_y_nats, num_dims: int, num_levels: int,
                             data_range: float = DATA_RANGE):
    """Bits/dim of K-level data from the NLL (nats, (B,)) of its uniform dequantization y.

    bpd = -log p(y) / (D ln 2) + log2(K / data_range): each bin has width data_range / K, so by
    Jensen E_u[-log2 (p(y) width^D)] / D >= -log2 P(k) / D, an upper bound on the discrete
    NLL (Theis et al. 2016). score_sde's "+8" is K=256, data_range=1 (data in [0, 1]); "+7" is
    K=256, data_range=2 (data in [-1, 1], this package's convention).
    """
    num_levels = check_num_levels(num_levels)
    if not data_range > 0:
        raise ValueError(f"data_range must be positive; got {data_range}")
    return nats_to_bits_per_dim(nll_of_y_nats, num_dims) + math.log2(num_levels / data_range)


__all__ = [
    "LN2", "DATA_RANGE", "check_num_levels", "check_levels", "level_centres", "nearest_levels",
    "levels_to_centers", "centers_to_levels", "uniform_dequantize", "nats_to_bits",
    "nats_to_bits_per_dim", "bits_per_dim", "dequantized_bits_per_dim",
]
