"""Pure, sharded train and eval steps for any per-example loss.

`loss_fn(params, batch, key) -> (B,)` is the per-example objective (each family's `loss`,
`gen_jax.families`); the step minimizes its batch mean. The batch is sharded over the
mesh's 'data' axis and the state placed by `param_shardings`, so the same jitted function runs
on 1 device, N devices or many hosts with the same result up to float reduction order.
"""
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from gen_jax.train.optimizer import ema_update
from gen_jax.train.sharding import batch_sharding, param_shardings, replicated
from gen_jax.train.state import TrainState, step_key

LossFn = Callable[[object, dict, jax.Array], jax.Array]


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def tree_all_finite(tree) -> jax.Array:
    """Scalar bool: every floating-point leaf of `tree` is free of NaN and inf."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def microbatch_split(batch, microbatches: int):
    """Leaves (B, ...) -> (microbatches, B / microbatches, ...); microbatch i holds rows
    i, i + m, i + 2m, ... so that each device's rows of a 'data'-sharded batch stay on it."""
    def split(x):
        if x.shape[0] % microbatches:
            raise ValueError(f"microbatches ({microbatches}) must divide the batch size "
                             f"({x.shape[0]})")
        x = x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:])
        return jnp.swapaxes(x, 0, 1)
    return jax.tree.map(split, batch)


def mean_loss_and_grad(loss_fn: LossFn, params, batch, key, microbatches: int = 1):
    """(batch-mean loss, its gradient in params). With microbatches m > 1 the batch is split
    (`microbatch_split`) and the m microbatch means and gradients are averaged over a
    `lax.scan` (gradient accumulation: one microbatch's activations alive at a time);
    microbatch i draws its randomness from fold_in(key, i). For a loss that ignores the key this
    equals the m = 1 result up to float summation order."""
    def mean_loss(p, b, k):
        return jnp.mean(loss_fn(p, b, k))

    if microbatches == 1:
        return jax.value_and_grad(mean_loss)(params, batch, key)

    def accumulate(total, inputs):
        index, micro = inputs
        loss, grads = jax.value_and_grad(mean_loss)(params, micro, jax.random.fold_in(key, index))
        return jax.tree.map(jnp.add, total, (loss, grads)), None

    zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    (loss, grads), _ = jax.lax.scan(
        accumulate, zero, (jnp.arange(microbatches), microbatch_split(batch, microbatches)))
    return jax.tree.map(lambda x: x / microbatches, (loss, grads))


def train_step_fn(loss_fn: LossFn, optimizer: optax.GradientTransformation, *, ema_decay: float,
                  learning_rate_fn: Callable | None = None, microbatches: int = 1):
    """The un-jitted step `(state, batch) -> (state, metrics)`.

    microbatches: gradient accumulation over this many slices of the batch
    (`mean_loss_and_grad`), inside the one step.

    If the loss, any gradient or any updated parameter is non-finite (a finite gradient times
    a huge learning rate can overflow) the update is skipped: params, opt_state and ema_params
    are returned unchanged, `skipped_steps` and `consecutive_skips` are incremented; `step`
    advances either way (the batch was consumed); an accepted step resets `consecutive_skips`.
    The EMA decay at step s is min(ema_decay, (1 + s)/(10 + s)). Metrics are scalars: loss
    (batch mean), grad_norm, skipped (0/1), skipped_steps, consecutive_skips and, if given,
    learning_rate.
    """
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    if isinstance(microbatches, bool) or not isinstance(microbatches, int) or microbatches < 1:
        raise ValueError(f"microbatches must be an integer >= 1, got {microbatches!r}")

    def step(state: TrainState, batch):
        loss, grads = mean_loss_and_grad(loss_fn, state.params, batch, step_key(state),
                                         microbatches)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & tree_all_finite(params)
        # EMA warmup (as TF's ExponentialMovingAverage with num_updates): short runs and the
        # first steps average over the steps actually taken, not over the initialization.
        decay = jnp.minimum(ema_decay, (1.0 + state.step) / (10.0 + state.step))
        ema_params = ema_update(state.ema_params, params, decay)
        skipped = jnp.logical_not(finite).astype(jnp.int32)
        new_state = TrainState(
            step=state.step + 1,
            params=_select(finite, params, state.params),
            opt_state=_select(finite, opt_state, state.opt_state),
            ema_params=_select(finite, ema_params, state.ema_params),
            rng=state.rng,
            skipped_steps=state.skipped_steps + skipped,
            consecutive_skips=(state.consecutive_skips + 1) * skipped,
        )
        metrics = dict(loss=loss, grad_norm=grad_norm, skipped=skipped,
                       skipped_steps=new_state.skipped_steps,
                       consecutive_skips=new_state.consecutive_skips)
        if learning_rate_fn is not None:
            metrics["learning_rate"] = learning_rate_fn(state.step)
        return new_state, metrics

    return step


def jit_train_step(step_fn, mesh, state: TrainState, strategy: str = "replicated"):
    """jit `step_fn` with the state placed by `strategy`, the batch sharded over 'data', the
    input state donated and scalar metrics replicated."""
    state_sh = param_shardings(mesh, state, strategy)
    return jax.jit(step_fn, in_shardings=(state_sh, batch_sharding(mesh)),
                   out_shardings=(state_sh, replicated(mesh)), donate_argnums=(0,))


def place_state(state: TrainState, mesh, strategy: str = "replicated") -> TrainState:
    """Put a host state on the mesh with the shardings `jit_train_step` expects."""
    return jax.device_put(state, param_shardings(mesh, state, strategy))


def eval_step_fn(nll_fn: LossFn):
    """The un-jitted eval step `(params, batch, key) -> (sum of weight * nll, sum of weight)`.

    `nll_fn(params, batch, key) -> (B,)` per-example nats; `batch['weight']` (B,) is 0 on
    padding rows (absent: all ones), so partial final batches do not bias the mean.
    """

    def step(params, batch, key):
        nll = nll_fn(params, batch, key)
        weight = batch.get("weight")
        weight = jnp.ones_like(nll) if weight is None else weight.astype(nll.dtype)
        return jnp.sum(jnp.where(weight > 0, weight * nll, 0.0)), jnp.sum(weight)

    return step


def jit_eval_step(step_fn, mesh, params, strategy: str = "replicated"):
    return jax.jit(step_fn, in_shardings=(param_shardings(mesh, params, strategy),
                                          batch_sharding(mesh), replicated(mesh)),
                   out_shardings=replicated(mesh))
