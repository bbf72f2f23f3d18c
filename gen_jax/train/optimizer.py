"""AdamW with linear warmup, cosine decay and global-norm clipping; EMA update of parameters."""
import jax
import jax.numpy as jnp
import optax


def learning_rate_schedule(peak_lr: float, total_steps: int, warmup_steps: int,
                           end_lr_ratio: float) -> optax.Schedule:
    """Linear warmup 0 -> peak_lr over `warmup_steps`, then cosine decay to
    `end_lr_ratio * peak_lr` at `total_steps` (Loshchilov & Hutter 2017, SGDR)."""
    if peak_lr <= 0:
        raise ValueError(f"learning rate must be > 0, got {peak_lr}")
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    if not 0.0 <= end_lr_ratio <= 1.0:
        raise ValueError(f"end_lr_ratio must be in [0, 1], got {end_lr_ratio}")
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=peak_lr, warmup_steps=warmup_steps,
        decay_steps=max(total_steps, warmup_steps + 1), end_value=end_lr_ratio * peak_lr)


def _decay_mask(params):
    """Weight decay on matrices/kernels only, not on biases, norm scales or other vectors."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def make_optimizer(*, learning_rate: float, total_steps: int, warmup_steps: int,
                   end_lr_ratio: float = 0.0, weight_decay: float = 0.0, b1: float = 0.9,
                   b2: float = 0.999, eps: float = 1e-8,
                   grad_clip_norm: float = 1.0) -> optax.GradientTransformation:
    """optax chain: clip by global norm (skipped when `grad_clip_norm` <= 0), then AdamW
    (Loshchilov & Hutter 2019) on the warmup + cosine schedule."""
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"Adam betas must be in [0, 1), got b1={b1}, b2={b2}")
    schedule = learning_rate_schedule(learning_rate, total_steps, warmup_steps, end_lr_ratio)
    adamw = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                        mask=_decay_mask)
    if grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(grad_clip_norm), adamw)
    return adamw


def ema_update(ema_params, params, decay: float):
    """ema <- decay * ema + (1 - decay) * params, leaf by leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p.astype(e.dtype), ema_params, params)
