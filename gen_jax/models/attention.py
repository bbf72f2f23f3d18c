"""Multi-head scaled dot-product attention (no cache): softmax(q k^T / sqrt(D)) v.

On accelerators this is `jax.nn.dot_product_attention`. On CPU it is written out and split
into up to `CPU_BATCH_CHUNKS` independent chunks of the batch: XLA:CPU runs a batched GEMM of
small matrices (here (L, D) x (D, L) per example and head) on a single thread, but runs
independent operations concurrently, so the chunks keep every core busy. On the 2-core
benchmark machine this cut the AR train step by ~8% (benchmarks/train_step.py).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

CPU_BATCH_CHUNKS = 4


def _attend(q, k, v, causal):
    """q, k, v (B, L, H, D) -> (B, L, H, D); scores and softmax in at least float32."""
    length = q.shape[1]
    q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q * q.shape[-1] ** -0.5, k, v))  # (B, H, L, D)
    scores = jnp.matmul(q, jnp.swapaxes(k, -1, -2),
                        preferred_element_type=jnp.promote_types(q.dtype, jnp.float32))
    if causal:
        scores = jnp.where(jnp.tril(jnp.ones((length, length), bool)), scores, -jnp.inf)
    weights = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.swapaxes(weights @ v, 1, 2)


def _attention_cpu(q, k, v, causal):
    bounds = np.linspace(0, q.shape[0], min(q.shape[0], CPU_BATCH_CHUNKS) + 1).astype(int)
    chunks = [_attend(q[i:j], k[i:j], v[i:j], causal) for i, j in zip(bounds[:-1], bounds[1:])]
    return jnp.concatenate(chunks) if len(chunks) > 1 else chunks[0]


def attention(q, k, v, *, causal):
    """q, k, v (B, L, heads, head_dim), same dtype -> (B, L, heads, head_dim).

    causal=True lets position i attend to positions <= i only.
    """
    if not q.shape == k.shape == v.shape or q.ndim != 4:
        raise ValueError(f"attention needs q, k, v of one shape (B, L, heads, head_dim); got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    return lax.platform_dependent(
        q, k, v, cpu=functools.partial(_attention_cpu, causal=causal),
        default=functools.partial(jax.nn.dot_product_attention, is_causal=causal))
