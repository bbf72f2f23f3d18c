"""Invert a process's log-SNR: the time t at which log(alpha^2 / sigma^2) takes a given value."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def time_at_log_snr(process, log_snr, t_lo: float = 0.0, t_hi: float = 1.0, num_iters: int = 40):
    """t in [t_lo, t_hi] with process.log_snr(t) = log_snr, by bisection (scalar or 1-D, elementwise).

    log-SNR decreases in t for every process here; targets outside
    [log_snr(t_hi), log_snr(t_lo)] come back clamped to t_hi or t_lo. 40 halvings of [0, 1]
    reach float32 resolution. jit/vmap-friendly (a fixed-length fori_loop unrolled by 8, so
    XLA fuses the halvings instead of paying one loop step each).
    """
    log_snr = jnp.asarray(log_snr, jnp.result_type(float))
    lo = jnp.full(log_snr.shape, t_lo, log_snr.dtype)
    hi = jnp.full(log_snr.shape, t_hi, log_snr.dtype)

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        later = process.log_snr(mid) > log_snr  # still too clean: the answer is after mid
        return jnp.where(later, mid, lo), jnp.where(later, hi, mid)

    lo, hi = jax.lax.fori_loop(0, num_iters, halve, (lo, hi), unroll=8)
    return 0.5 * (lo + hi)
