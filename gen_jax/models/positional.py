"""Rotary position embeddings (RoPE; Su et al. 2021, "RoFormer").

Pairs of feature channels are rotated by an angle proportional to the token position, so the
attention score between a query at position m and a key at position n depends only on m - n.
Uses the "rotate half" layout: channel i is paired with channel i + head_dim/2.
"""
import jax.numpy as jnp


def rope_angles(positions, head_dim, base=10000.0):
    """Rotation angles, float32 (..., head_dim/2), for integer `positions` (...)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    inv_freq = base ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
    return positions.astype(jnp.float32)[..., None] * inv_freq


def apply_rope(x, positions, base=10000.0):
    """Rotate queries or keys x (B, L, heads, head_dim) by their positions (B, L).

    Computed in float32 and cast back to x.dtype.
    """
    angles = rope_angles(positions, x.shape[-1], base)[:, :, None, :]  # (B, L, 1, D/2)
    cos, sin = jnp.cos(angles), jnp.sin(angles)
    x32 = x.astype(jnp.float32)
    x1, x2 = jnp.split(x32, 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x.dtype)
