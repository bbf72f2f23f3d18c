"""Training state: one pytree holding everything a resumed run needs to continue exactly."""
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from gen_jax.core.pytree import pytree_dataclass


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Parameters, optimizer state, EMA and bookkeeping of one run.

    Fields:
        step: int32 scalar, number of batches consumed (the data position).
        params: model parameter pytree.
        opt_state: optax state for `params`.
        ema_params: exponential moving average of `params` (same structure).
        rng: raw uint32 PRNG key (2,); step s uses `fold_in(rng, s)`, so randomness
            depends on the step only, never on device count or restarts.
        skipped_steps: int32 scalar, steps whose loss, gradients or updated params were
            non-finite and therefore did not update params / opt_state / ema_params.
        consecutive_skips: int32 scalar, how many of the latest steps in a row were skipped
            (0 after an accepted step); the loop stops a run when it grows too long.
    """
    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any
    rng: jax.Array
    skipped_steps: jax.Array
    consecutive_skips: jax.Array


def create_train_state(params, optimizer, rng) -> TrainState:
    """Fresh state at step 0; `rng` is a raw uint32 key (e.g. `jax.random.PRNGKey(seed)`)."""
    rng = jnp.asarray(rng)
    if rng.shape != (2,) or rng.dtype != jnp.uint32:
        raise ValueError(f"rng must be a raw uint32 key of shape (2,), got {rng.dtype}{rng.shape}")
    # Own copies: the train step donates the state, which must not delete the caller's params.
    params = jax.tree.map(jnp.copy, params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        ema_params=jax.tree.map(jnp.copy, params),
        rng=rng,
        skipped_steps=jnp.zeros((), jnp.int32),
        consecutive_skips=jnp.zeros((), jnp.int32),
    )


def step_key(state: TrainState) -> jax.Array:
    """The PRNG key for the batch at `state.step`."""
    return jax.random.fold_in(state.rng, state.step)
