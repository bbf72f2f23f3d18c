"""Conditioning embeddings: Fourier features of a scalar time, and class labels with a null id.

Time: sinusoidal features of `time_scale * t` (Vaswani et al. 2017 frequencies, as used for
timesteps by DDPM and DiT) followed by a 2-layer SiLU MLP (DiT, Peebles & Xie 2023). The
scalar may be t in [0, 1] (default time_scale=1000, so the features resolve the same range as
integer DDPM steps) or a log-SNR (use time_scale=1).

Labels: an embedding table with num_classes + 1 rows; id num_classes is the null label used for
classifier-free guidance (Ho & Salimans 2022).
"""
import math

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.models.matmul import Linear


def sinusoidal_features(s, dim, max_period=10000.0):
    """Fourier features (B, dim) float32 of scalars s (B,): [cos(s w_i), sin(s w_i)].

    w_i = max_period^(-i / (dim/2)), i = 0..dim/2-1 (geometric frequencies from 1 down to
    1/max_period).
    """
    if dim % 2:
        raise ValueError(f"sinusoidal_features needs an even dim, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = s.astype(jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class TimeEmbedding(nnx.Module):
    """t (B,) float -> (B, features): sinusoidal features of time_scale * t, then Linear-SiLU-Linear."""

    def __init__(self, features, *, time_scale=1000.0, frequency_dim=256,
                 dtype=jnp.float32, param_dtype=jnp.float32, rngs):
        self.time_scale = time_scale
        self.frequency_dim = frequency_dim
        self.dense_in = Linear(frequency_dim, features, dtype=dtype, param_dtype=param_dtype,
                               rngs=rngs)
        self.dense_out = Linear(features, features, dtype=dtype, param_dtype=param_dtype,
                                rngs=rngs)

    def __call__(self, t):
        feats = sinusoidal_features(self.time_scale * t, self.frequency_dim)
        return self.dense_out(jax.nn.silu(self.dense_in(feats)))


class LabelEmbedding(nnx.Module):
    """label (B,) int in {0..num_classes} -> (B, features); id num_classes is the null label."""

    def __init__(self, num_classes, features, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs):
        self.num_classes = num_classes
        self.null_id = num_classes
        self.table = nnx.Embed(num_classes + 1, features, dtype=dtype, param_dtype=param_dtype,
                               rngs=rngs)

    def __call__(self, label):
        return self.table(label)
