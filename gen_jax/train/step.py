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


def train_step_fn(loss_fn: LossFn, optimizer: optax.GradientTransformation, *, ema_decay: float,
                  learning_rate_fn: Callable | None = None):
    """The un-jitted step `(state, batch) -> (state, metrics)`.

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

    def step(state: TrainState, batch):
        key = step_key(state)

        def mean_loss(params):
            return jnp.mean(loss_fn(params, batch, key))

        loss, grads = jax.value_and_grad(mean_loss)(state.params)
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
