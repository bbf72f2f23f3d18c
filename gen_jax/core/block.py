"""Block discrete denoising diffusion (BD3-LM, Arriola et al. 2025): autoregressive over blocks of
b tokens, masked (absorbing) diffusion within a block.

    -log p(x) = sum_k -log p(x^k | x^{<k}) <= sum_k NELBO_k,

where NELBO_k is the masked-diffusion bound (`gen_jax.core.masked`, MD4 / MDLM) of block k with
the clean blocks before it as context; each block has its own time t_k. b = 1 is an AR model
(the one token is either masked, costing -log p(x_k | x_<k), or not, costing nothing), b = L is
masked diffusion.

The model is ``logits_fn(x_t (B, L), x (B, L)) -> logits (B, L, V)``: logits[:, i] for i in
block k is read as p_theta(x_i | x_t^k, x^{<k}): it may look at the noisy tokens of block k and at
the clean tokens of blocks < k only (BD3-LM computes all blocks in one pass over [x_t, x] with a
block-causal attention mask, `gen_jax.models.block`). Logits at unmasked positions are ignored.
"""
from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp

from gen_jax.core.categorical import sample_categorical
from gen_jax.core.masked import (MaskingSchedule, check_schedule, check_tokens,
                                 discrete_alphas, vocab_size, masked_token_nlls)
from gen_jax.core.results import LikelihoodResult, SampleResult

__all__ = ["MaskingSchedule", "block_elbo", "block_ancestral_sample", "num_blocks"]


def _python_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a python int >= {minimum}, got {value!r}")
    return int(value)


def num_blocks(length, block_size) -> int:
    """L // b; ValueError unless block_size is a python int >= 1 that divides length."""
    block_size = _python_int(block_size, "block_size")
    if length % block_size:
        raise ValueError(f"block_size {block_size} must divide the sequence length {length}")
    return length // block_size


def _block_times(key, batch, blocks, antithetic):
    """(B, n) uniforms in [0, 1), one per example and block. Antithetic: one shared uniform u0,
    u_{b,k} = (u0 + b / B + k / n) mod 1, so each block's times are stratified over the batch
    (VDM, Kingma et al. 2021) and each example's n blocks are spread over [0, 1); every u_{b,k}
    is marginally uniform. With n = 1 this is `masked_elbo`'s draw exactly."""
    if antithetic:
        u0 = jax.random.uniform(key, ())
        return jnp.mod(u0 + jnp.arange(batch)[:, None] / batch + jnp.arange(blocks)[None] / blocks,
                       1.0)
    return jax.random.uniform(key, (blocks, batch)).T


def _vocab(logits_fn, x, mask_id):
    """V of `logits_fn(x_t, x)` (no compute), with masked.py's shape and mask-id checks."""
    return vocab_size(logits_fn, x, x, mask_id)


def block_elbo(key, logits_fn, x, schedule, mask_id, block_size, *, num_steps=None, t_min=0.0,
               antithetic=True, clip=None):
    """Unbiased one-sample estimate of the block-diffusion NELBO, -log p(x) <= nll, per sequence.

    Continuous time (num_steps=None): with times t_k (B, n), one per block of each example,
        nll = sum_k (1 - t_min) w(t_k) sum_{i in block k, masked in x_t} -log p(x_i | x_t^k, x^{<k})
              + reconstruction + prior,   w(t) = -alpha'(t) / (1 - alpha(t)),
    t_k uniform on [t_min, 1]; reconstruction L (1 - alpha(t_min)) log V and prior L alpha(1) log V
    are `masked_elbo`'s terms summed over blocks. Discrete time (num_steps=T): each block's T-step
    chain (alpha_0 = 1, alpha_T = 0), one uniformly drawn step per block,
        nll = sum_k T (alpha_{i-1} - alpha_i) / (1 - alpha_i) sum_{masked in block k} -log p(...),
    exactly the bound of `block_ancestral_sample(..., num_steps=T)` (temperature 1). With
    block_size = L both are `masked_elbo` with the same keys; with block_size = 1 and T = 1 every
    token is masked and nll is the AR NLL sum_i -log p(x_i | x_<i).

    clip=(lo, hi) (continuous time only) draws t_k uniformly on [lo, hi] instead: BD3-LM's
    clipped schedule, a lower-variance *training* loss (the integral over [lo, hi] only, no
    reconstruction or prior): not a bound.

    Args:
        key: PRNG key. logits_fn: (x_t (B, L) int, x (B, L) int) -> logits (B, L, V).
        x: (B, L) int tokens in [0, V). schedule: MaskingSchedule. mask_id: absorbing id (>= V).
        block_size: python int b dividing L.
        num_steps: None (continuous time) or a python int T >= 1 per block.
        t_min: python float in [0, 1), lower limit of the time integral (continuous time).
        antithetic: stratify the times over the batch and blocks (`_block_times`).
        clip: None or (lo, hi), 0 <= lo < hi <= 1 (continuous time).
    Returns:
        LikelihoodResult: nll (B,) nats; terms 'diffusion', 'reconstruction', 'prior' (B,) nats
        and 't' (B, n) the block times.
    """
    check_tokens(x)
    check_schedule(schedule)
    batch, length = x.shape
    blocks = num_blocks(length, block_size)
    if not (isinstance(t_min, numbers.Real) and 0.0 <= t_min < 1.0):
        raise ValueError(f"t_min must be a python float in [0, 1), got {t_min!r}")
    if num_steps is not None:
        num_steps = _python_int(num_steps, "num_steps")
        if t_min != 0.0 or clip is not None:
            raise ValueError("t_min and clip apply to the continuous-time NELBO only "
                             "(num_steps=None)")
    if clip is not None:
        if (len(clip) != 2 or not all(isinstance(c, numbers.Real) for c in clip)
                or not 0.0 <= clip[0] < clip[1] <= 1.0):
            raise ValueError(f"clip must be None or (lo, hi) with 0 <= lo < hi <= 1, got {clip!r}")
        if t_min != 0.0:
            raise ValueError("give t_min or clip, not both")
    lo, hi = (t_min, 1.0) if clip is None else (float(clip[0]), float(clip[1]))
    if num_steps is None and schedule.eps == 0.0 and lo == 0.0:
        raise ValueError("the continuous-time NELBO weight diverges at t=0 when schedule.eps == 0: "
                         "use eps > 0 or t_min > 0")
    vocab = _vocab(logits_fn, x, mask_id)
    time_key, mask_key = jax.random.split(key)
    u = _block_times(time_key, batch, blocks, antithetic)  # (B, n)
    if num_steps is None:
        t = lo + (hi - lo) * u
        alpha_t = schedule.alpha(t)
        weight = (hi - lo) * -schedule.dalpha_dt(t) / (1.0 - alpha_t)
        full = clip is None
        reconstruction = length * (1.0 - schedule.alpha(t_min)) * math.log(vocab) if full else 0.0
        prior = length * schedule.alpha(1.0) * math.log(vocab) if full else 0.0
    else:
        step = jnp.minimum(jnp.floor(u * num_steps).astype(jnp.int32) + 1, num_steps)
        t = step / num_steps
        alpha_s, alpha_t = discrete_alphas(schedule, step, num_steps)
        weight = num_steps * (alpha_s - alpha_t) / (1.0 - alpha_t)
        reconstruction = prior = 0.0
    keep = jnp.repeat(alpha_t, block_size, axis=1)  # (B, L): each token's block keep-probability
    x_t = jnp.where(jax.random.uniform(mask_key, x.shape) < keep, x,
                    jnp.asarray(mask_id, x.dtype))
    per_token = masked_token_nlls(logits_fn(x_t, x), x, x_t, mask_id)
    diffusion = jnp.sum(weight * per_token.reshape(batch, blocks, block_size).sum(-1), axis=-1)
    reconstruction = jnp.full((batch,), reconstruction, diffusion.dtype)
    prior = jnp.full((batch,), prior, diffusion.dtype)
    return LikelihoodResult(diffusion + reconstruction + prior,
                            dict(diffusion=diffusion, reconstruction=reconstruction, prior=prior,
                                 t=t))


def block_ancestral_sample(key, denoise_fn, state, batch, length, block_size, schedule,
                           num_steps, mask_id, *, temperature=1.0, top_k=None, top_p=None):
    """Block by block, each block by T masked ancestral steps given the clean blocks before it.

    Block k starts fully masked and steps t = i/T -> (i-1)/T for i = T..1, exactly as
    `masked_ancestral_sample` (each masked token is unmasked with probability
    (alpha_s - alpha_t)/(1 - alpha_t), drawn from the truncated p_theta(x_i | x_t^k, x^{<k})).
    Step i of block k uses key fold_in(key, k T + i), so block_size = L reproduces
    `masked_ancestral_sample` draw for draw.

    denoise_fn(state, tokens (B, b) int, k int32 scalar, commit) -> (logits (B, b, V), state):
    the logits of block k given its current tokens and the clean blocks < k held in `state`
    (e.g. a KV cache); `commit` is None, or the finished clean block k - 1 (B, b) to add to the
    state first (given on the first step of every block k >= 1, so one call both commits and
    denoises). One call per step: NFE = (L / b) T model calls per sample.

    Args:
        key: PRNG key. denoise_fn, state: as above. batch, length, block_size, num_steps: python
        ints (b divides L). schedule: MaskingSchedule. mask_id: absorbing id (>= V).
        temperature, top_k, top_p: passed to `sample_categorical`.
    Returns:
        SampleResult(samples (batch, length) int32 in [0, V), nfe = (L / b) T).
    """
    check_schedule(schedule)
    batch, length, num_steps = (_python_int(v, n) for n, v in (
        ("batch", batch), ("length", length), ("num_steps", num_steps)))
    blocks = num_blocks(length, block_size)
    masked = jnp.full((batch, block_size), mask_id, jnp.int32)
    out = jax.eval_shape(denoise_fn, state, masked, jnp.int32(0), None)[0]
    if len(out.shape) != 3 or out.shape[:2] != masked.shape:
        raise ValueError(f"denoise_fn must return logits (B, b, V) = {masked.shape} + (V,), got "
                         f"{out.shape}")
    if isinstance(mask_id, numbers.Integral) and 0 <= mask_id < out.shape[-1]:
        raise ValueError(f"mask_id={mask_id} collides with a real token id in [0, {out.shape[-1]})")

    def step(x, state, k, i, commit):
        draw_key, unmask_key = jax.random.split(jax.random.fold_in(key, k * num_steps + i))
        alpha_s, alpha_t = discrete_alphas(schedule, i, num_steps)
        logits, state = denoise_fn(state, x, k, commit)
        x0 = sample_categorical(draw_key, logits, temperature=temperature, top_k=top_k,
                                top_p=top_p)
        unmask = (x == mask_id) & (jax.random.uniform(unmask_key, x.shape)
                                   < (alpha_s - alpha_t) / (1.0 - alpha_t))
        return jnp.where(unmask, x0, x), state

    def run_block(state, k, commit):
        x, state = step(masked, state, k, jnp.int32(num_steps), commit)

        def body(carry, i):
            return step(*carry, k, i, None), None

        (x, state), _ = jax.lax.scan(body, (x, state), jnp.arange(num_steps - 1, 0, -1,
                                                                  dtype=jnp.int32))
        return x, state

    first, state = run_block(state, jnp.int32(0), None)

    def next_block(carry, k):
        state, prev = carry
        x, state = run_block(state, k, prev)
        return (state, x), x

    if blocks == 1:
        return SampleResult(first, num_steps)
    (_, _), rest = jax.lax.scan(next_block, (state, first), jnp.arange(1, blocks, dtype=jnp.int32))
    samples = jnp.concatenate([first[:, None], jnp.moveaxis(rest, 0, 1)], axis=1)
    return SampleResult(samples.reshape(batch, length), blocks * num_steps)
