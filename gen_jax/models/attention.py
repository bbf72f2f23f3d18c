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


def _attend(q, k, v, causal, mask=None):
    """q, k, v (B, L, H, D) -> (B, L, H, D); scores and softmax in at least float32."""
    length = q.shape[1]
    q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q * q.shape[-1] ** -0.5, k, v))  # (B, H, L, D)
    scores = jnp.matmul(q, jnp.swapaxes(k, -1, -2),
                        preferred_element_type=jnp.promote_types(q.dtype, jnp.float32))
    if causal:
        scores = jnp.where(jnp.tril(jnp.ones((length, length), bool)), scores, -jnp.inf)
    if mask is not None:
        scores = jnp.where(mask, scores, -jnp.inf)
    weights = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.swapaxes(weights @ v, 1, 2)


def _attention_cpu(q, k, v, mask=None, *, causal):
    bounds = np.linspace(0, q.shape[0], min(q.shape[0], CPU_BATCH_CHUNKS) + 1).astype(int)
    chunks = [_attend(q[i:j], k[i:j], v[i:j], causal, mask)
              for i, j in zip(bounds[:-1], bounds[1:])]
    return jnp.concatenate(chunks) if len(chunks) > 1 else chunks[0]


def block_causal_mask(length: int, block_size: int) -> np.ndarray:
    """(L, L) bool: position i attends to j iff block(j) <= block(i), block(i) = i // block_size
    (bidirectional within a block, causal across blocks; BD3-LM, Arriola et al. 2025)."""
    block = np.arange(length) // block_size
    return block[None, :] <= block[:, None]


def block_diffusion_mask(length: int, block_size: int) -> np.ndarray:
    """(2L, 2L) bool mask of BD3-LM's vectorised training pass over [x_t, x] (noisy tokens first,
    then the clean ones, both at positions 0..L-1; Arriola et al. 2025, Sec. 3.2): noisy block k
    attends to noisy block k and clean blocks < k; clean tokens attend block-causally to clean
    tokens. No clean token sees a noisy one."""
    block = np.arange(length) // block_size
    same = block[None, :] == block[:, None]
    earlier = block[None, :] < block[:, None]
    top = np.concatenate([same, earlier], axis=1)
    bottom = np.concatenate([np.zeros((length, length), bool), same | earlier], axis=1)
    return np.concatenate([top, bottom], axis=0)


def _masked_dot_product_attention(q, k, v, mask):
    return jax.nn.dot_product_attention(q, k, v, mask=mask[None, None])


def attention(q, k, v, *, causal, mask=None, implementation=None):
    """q, k, v (B, L, heads, head_dim), same dtype -> (B, L, heads, head_dim).

    causal=True lets position i attend to positions <= i only. mask: None, or a boolean (L, L)
    array, True where query i may attend to key j (e.g. `block_causal_mask`,
    `block_diffusion_mask`); it needs causal=False, and every row must allow some key.
    implementation: None / 'xla' (platform-dependent: written out on CPU, XLA's
    `jax.nn.dot_product_attention` elsewhere) or 'cudnn' (`jax.nn.dot_product_attention` with
    cuDNN flash attention, no CPU fallback: NVIDIA GPUs with bf16/fp16 inputs only).
    """
    if not q.shape == k.shape == v.shape or q.ndim != 4:
        raise ValueError(f"attention needs q, k, v of one shape (B, L, heads, head_dim); got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    if implementation not in (None, "xla", "cudnn"):
        raise ValueError(f"implementation must be None, 'xla' or 'cudnn', got {implementation!r}")
    if implementation == "cudnn":
        return jax.nn.dot_product_attention(
            q, k, v, mask=None if mask is None else jnp.asarray(mask)[None, None],
            is_causal=causal, implementation="cudnn")
    if mask is not None:
        if causal:
            raise ValueError("attention takes causal=True or a mask, not both")
        length = q.shape[1]
        if jnp.shape(mask) != (length, length) or jnp.result_type(mask) != jnp.bool_:
            raise ValueError(f"attention mask must be a boolean ({length}, {length}) array, got "
                             f"{jnp.result_type(mask)} {jnp.shape(mask)}")
        return lax.platform_dependent(
            q, k, v, jnp.asarray(mask), cpu=functools.partial(_attention_cpu, causal=False),
            default=_masked_dot_product_attention)
    return lax.platform_dependent(
        q, k, v, cpu=functools.partial(_attention_cpu, causal=causal),
        default=functools.partial(jax.nn.dot_product_attention, is_causal=causal))
