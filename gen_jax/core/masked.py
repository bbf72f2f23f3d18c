"""Masked (absorbing-state) discrete diffusion: schedules, forward process, ELBO, ancestral sampler.

Each token of x (B, L) in {0..V-1} is kept with probability alpha(t) and otherwise replaced by the
absorbing id ``mask_id`` (= V by the project convention); alpha decreases from ~1 at t=0 to ~0 at
t=1 (Austin et al. 2021, D3PM absorbing; Shi et al. 2024, MD4; Sahoo et al. 2024, MDLM).

The model is ``logits_fn(x_t (B, L) int, t (B,)) -> logits (B, L, V)`` over the V real tokens,
read as p_theta(x0_i | x_t) at masked positions. Logits at unmasked positions are ignored:
unmasked tokens are carried over unchanged ("carry-over unmasking", MDLM).
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp

from gen_jax.core.categorical import sample_categorical
from gen_jax.core.checks import check_int, ids_in_range, nan_where_invalid
from gen_jax.core.pytree import pytree_dataclass
from gen_jax.core.results import LikelihoodResult, SampleResult
from gen_jax.core.timeshape import check_time

_SCHEDULE_KINDS = ("linear", "cosine", "poly")


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class MaskingSchedule:
    """Keep-probability alpha(t) = (1 - 2 eps) alpha~(t) + eps (MD4, Shi et al. 2024).

    alpha~ is 'linear' 1 - t, 'cosine' 1 - cos(pi/2 (1 - t)), or 'poly' 1 - t**exponent. The eps
    offset keeps alpha(0) = 1 - eps and alpha(1) = eps off 1 and 0, so the ELBO weight
    -alpha'/(1 - alpha) stays finite. ``exponent`` is used only by 'poly'.
    """

    kind: str = dataclasses.field(default="linear", metadata=dict(static=True))
    exponent: float = dataclasses.field(default=2.0, metadata=dict(static=True))
    eps: float = dataclasses.field(default=1e-4, metadata=dict(static=True))

    def __post_init__(self):
        if self.kind not in _SCHEDULE_KINDS:
            raise ValueError(f"MaskingSchedule kind must be one of {_SCHEDULE_KINDS}, got {self.kind!r}")
        if not (isinstance(self.exponent, numbers.Real) and self.exponent > 0):
            raise ValueError(f"MaskingSchedule exponent must be a positive float, got {self.exponent!r}")
        if not (isinstance(self.eps, numbers.Real) and 0.0 <= self.eps < 0.5):
            raise ValueError(f"MaskingSchedule eps must be in [0, 0.5), got {self.eps!r}")

    def _base_alpha(self, t):
        if self.kind == "linear":
            return 1.0 - t
        if self.kind == "cosine":  # 1 - cos(x) = 2 sin^2(x/2), without cancellation near t=1
            return 2.0 * jnp.sin(0.25 * jnp.pi * (1.0 - t)) ** 2
        return 1.0 - t**self.exponent

    def _base_dalpha_dt(self, t):
        if self.kind == "linear":
            return -jnp.ones_like(t)
        if self.kind == "cosine":
            return -0.5 * jnp.pi * jnp.sin(0.5 * jnp.pi * (1.0 - t))
        return -self.exponent * t ** (self.exponent - 1.0)

    def alpha(self, t):
        """Probability that a token is still unmasked at time t; same shape as t."""
        t = jnp.asarray(t, jnp.result_type(float, t))
        return (1.0 - 2.0 * self.eps) * self._base_alpha(t) + self.eps

    def dalpha_dt(self, t):
        """d alpha / dt (<= 0); same shape as t."""
        t = jnp.asarray(t, jnp.result_type(float, t))
        return (1.0 - 2.0 * self.eps) * self._base_dalpha_dt(t)


def check_tokens(x, name="x"):
    """ValueError unless x is (B, L) integer tokens (shared with ``core.block``)."""
    if jnp.ndim(x) != 2:
        raise ValueError(f"{name} must be (B, L) integer tokens, got shape {jnp.shape(x)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.integer):
        raise ValueError(f"{name} must have an integer dtype, got {jnp.result_type(x)}")


def _batch_times(t, batch):
    """Broadcast a scalar or (B,) time in [0, 1] to (B,) float."""
    t = check_time(t)
    if t.ndim == 0:
        return jnp.broadcast_to(t, (batch,))
    if t.shape != (batch,):
        raise ValueError(f"t must be a scalar or have shape ({batch},), got {t.shape}")
    return t


def check_schedule(schedule):
    """ValueError unless schedule is a MaskingSchedule."""
    if not isinstance(schedule, MaskingSchedule):
        raise ValueError(f"schedule must be a MaskingSchedule, got {type(schedule).__name__}")


def _mask_with_keep_prob(key, x, keep_prob, mask_id):
    """Keep each x[b, i] with probability keep_prob[b] (B,), else replace it by mask_id."""
    keep = jax.random.uniform(key, x.shape) < keep_prob[:, None]
    return jnp.where(keep, x, jnp.asarray(mask_id, x.dtype))


def mask_tokens(key, x, t, schedule, mask_id):
    """Forward process q(x_t | x): keep each token independently with probability alpha(t).

    Args:
        key: PRNG key. x: (B, L) int tokens. t: scalar or (B,) times in [0, 1].
        schedule: MaskingSchedule. mask_id: the absorbing token id.
    Returns:
        (B, L) tokens with the same dtype as x; masked entries equal mask_id.
    """
    check_tokens(x)
    check_schedule(schedule)
    t = _batch_times(t, x.shape[0])
    return _mask_with_keep_prob(key, x, schedule.alpha(t), mask_id)


def vocab_size(logits_fn, x_t, t, mask_id):
    """V from the model's output shape (no compute); checks it is (B, L, V) and mask_id >= V."""
    out = jax.eval_shape(logits_fn, x_t, t)
    if len(out.shape) != 3 or out.shape[:2] != x_t.shape:
        raise ValueError(f"logits_fn must return (B, L, V) = {x_t.shape} + (V,), got {out.shape}")
    vocab = out.shape[-1]
    if isinstance(mask_id, numbers.Integral) and 0 <= mask_id < vocab:
        raise ValueError(f"mask_id={mask_id} collides with a real token id in [0, {vocab})")
    return vocab


def masked_token_nlls(logits, x, x_t, mask_id):
    """(B, L) nats: -log p(x_i | x_t) where x_t is masked, 0 elsewhere (unmasked logits ignored)."""
    log_p = jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1)
    log_p_x = jnp.take_along_axis(log_p, x[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return jnp.where(x_t == mask_id, -log_p_x, 0.0)


def _masked_token_nll(logits, x, x_t, mask_id):
    """sum over masked positions of -log p(x_i | x_t); (B,) nats."""
    return jnp.sum(masked_token_nlls(logits, x, x_t, mask_id), axis=-1)


def _uniform_times(key, batch, antithetic):
    """(B,) in [0, 1): antithetic u_b = (u + b/B) mod 1 (VDM, Kingma et al. 2021), or iid."""
    if antithetic:
        return jnp.mod(jax.random.uniform(key, ()) + jnp.arange(batch) / batch, 1.0)
    return jax.random.uniform(key, (batch,))


def discrete_alphas(schedule, step, num_steps):
    """alpha at times step/T and (step-1)/T for integer steps in 1..T, with the chain's endpoints
    exactly clean (alpha = 1 at time 0) and fully masked (alpha = 0 at time 1)."""
    alpha_t = jnp.where(step == num_steps, 0.0, schedule.alpha(step / num_steps))
    alpha_s = jnp.where(step == 1, 1.0, schedule.alpha((step - 1) / num_steps))
    return alpha_s, alpha_t


def masked_elbo(key, logits_fn, x, schedule, mask_id, *, num_steps=None, t_min=0.0,
                antithetic=True):
    """Unbiased one-sample estimate of the masked-diffusion ELBO, -log p(x) <= nll, per sequence.

    Continuous time (num_steps=None; MD4, MDLM):
        nll = int_{t_min}^1 -alpha'(t)/(1 - alpha(t)) E_q[sum_{i masked in x_t} -log p(x_i | x_t)] dt
              + reconstruction + prior,
    with one t per example (antithetic across the batch when ``antithetic``). The reconstruction
    term decodes the tokens still masked at t_min uniformly, L (1 - alpha(t_min)) log V (as MD4
    does); the prior at t=1 masks each token with probability 1 - alpha(1) and otherwise draws it
    uniformly, so its KL to q(x_1 | x) is exactly L alpha(1) log V. Both are exact terms of a valid
    bound, not approximations.

    Discrete time (num_steps=T; D3PM, MD4): the chain on times i/T, i = 0..T, with x_0 = x
    clean and x_T fully masked,
        nll = sum_{i=1}^T (alpha_{i-1} - alpha_i) / (1 - alpha_i) E_q[sum_{masked} -log p(x_j | x_i)],
    with alpha_0 = 1, alpha_T = 0 and alpha_i = alpha(i/T) between; estimated with one uniformly
    drawn step per example (times T). It is exactly the bound on -log of the probability that
    ``masked_ancestral_sample(..., num_steps=T)`` (temperature 1, no truncation) generates x; it has
    no separate prior or reconstruction term.

    Args:
        key: PRNG key. logits_fn: (x_t (B, L) int, t (B,)) -> logits (B, L, V).
        x: (B, L) int tokens in [0, V): concrete out-of-range tokens raise ValueError, traced
            ones give nll = NaN for their example.
        schedule: MaskingSchedule. mask_id: absorbing id (>= V).
        num_steps: None for continuous time, or a python int T >= 1.
        t_min: python float in [0, 1), lower limit of the time integral (continuous time only).
        antithetic: stratify the per-example times across the batch.
    Returns:
        ``LikelihoodResult``: nll (B,) nats (the bound); terms (B,) 'diffusion',
        'reconstruction', 'prior' (nats) and 't' the times used.
    """
    check_tokens(x)
    check_schedule(schedule)
    if not (isinstance(t_min, numbers.Real) and 0.0 <= t_min < 1.0):
        raise ValueError(f"t_min must be a python float in [0, 1), got {t_min!r}")
    if num_steps is not None:
        num_steps = check_int(num_steps, "num_steps")
        if t_min != 0.0:
            raise ValueError("t_min applies to the continuous-time ELBO only (num_steps=None)")
    elif schedule.eps == 0.0 and t_min == 0.0:
        raise ValueError("the continuous-time ELBO weight diverges at t=0 when schedule.eps == 0: "
                         "use eps > 0 or t_min > 0")
    batch, length = x.shape
    vocab = vocab_size(logits_fn, x, jnp.zeros((batch,), jnp.float32), mask_id)
    valid = ids_in_range(x, vocab, "x")
    time_key, mask_key = jax.random.split(key)
    u = _uniform_times(time_key, batch, antithetic)
    if num_steps is None:
        t = t_min + (1.0 - t_min) * u
        alpha_t = schedule.alpha(t)
        weight = (1.0 - t_min) * -schedule.dalpha_dt(t) / (1.0 - alpha_t)
        reconstruction = length * (1.0 - schedule.alpha(t_min)) * math.log(vocab)
        prior = length * schedule.alpha(1.0) * math.log(vocab)
    else:
        step = jnp.minimum(jnp.floor(u * num_steps).astype(jnp.int32) + 1, num_steps)
        t = step / num_steps
        alpha_s, alpha_t = discrete_alphas(schedule, step, num_steps)
        weight = num_steps * (alpha_s - alpha_t) / (1.0 - alpha_t)
        reconstruction = prior = 0.0
    x_t = _mask_with_keep_prob(mask_key, x, alpha_t, mask_id)
    diffusion = weight * _masked_token_nll(logits_fn(x_t, t), x, x_t, mask_id)
    reconstruction = jnp.full((batch,), reconstruction, diffusion.dtype)
    prior = jnp.full((batch,), prior, diffusion.dtype)
    nll = nan_where_invalid(diffusion + reconstruction + prior, valid)
    return LikelihoodResult(nll, dict(diffusion=diffusion, reconstruction=reconstruction,
                                      prior=prior, t=t))


def masked_ancestral_sample(key, logits_fn, batch, length, schedule, num_steps, mask_id, *,
                            temperature=1.0, top_k=None, top_p=None):
    """Ancestral sampling of the reverse absorbing process (D3PM; MD4), T uniform steps.

    Starts fully masked at t=1 and steps t = i/T -> s = (i-1)/T for i = T..1: one model call per
    step; each still-masked token is unmasked with probability (alpha_s - alpha_t)/(1 - alpha_t),
    drawn from the (optionally truncated) p_theta(x0_i | x_t); unmasked tokens stay. The endpoints
    use alpha = 0 at t=1 and alpha = 1 at t=0, so the final step unmasks every token left (the same
    chain ``masked_elbo(..., num_steps=T)`` bounds). Runs as one ``lax.scan``.

    Args:
        key: PRNG key. logits_fn: (x_t (B, L) int, t (B,)) -> logits (B, L, V).
        batch, length: python ints, the output shape. schedule: MaskingSchedule.
        num_steps: python int T >= 1 (model calls). mask_id: absorbing id (>= V).
        temperature, top_k, top_p: passed to ``sample_categorical`` (temperature 0: greedy
            argmax draws; negative: ValueError).
    Returns:
        SampleResult(samples (batch, length) int32 tokens in [0, V), nfe = num_steps).
    """
    check_schedule(schedule)
    batch, length, num_steps = (check_int(value, name) for name, value in
                                (("batch", batch), ("length", length), ("num_steps", num_steps)))
    x_init = jnp.full((batch, length), mask_id, jnp.int32)
    vocab_size(logits_fn, x_init, jnp.ones((batch,), jnp.float32), mask_id)

    def step_fn(x, step):
        draw_key, unmask_key = jax.random.split(jax.random.fold_in(key, step))
        t = jnp.full((batch,), step / num_steps, jnp.float32)
        alpha_s, alpha_t = discrete_alphas(schedule, step, num_steps)
        unmask_prob = (alpha_s - alpha_t) / (1.0 - alpha_t)
        x0 = sample_categorical(draw_key, logits_fn(x, t), temperature=temperature, top_k=top_k,
                                top_p=top_p)
        unmask = (x == mask_id) & (jax.random.uniform(unmask_key, x.shape) < unmask_prob)
        return jnp.where(unmask, x0, x), None

    x, _ = jax.lax.scan(step_fn, x_init, jnp.arange(num_steps, 0, -1, dtype=jnp.int32))
    return SampleResult(x, num_steps)
