"""What the training loop needs from a model family, as plain data and pure functions."""
import dataclasses
from typing import Any, Callable, Iterable, Optional


@dataclasses.dataclass
class Components:
    """Everything model- and data-specific the loop needs.

    train_batches(start_step, shard_index, num_shards) -> iterator of host-local batch dicts
      (numpy, leading dim global_batch / num_shards), the one at position s a function of s.
    eval_batches() -> iterable of this host's slices of the global eval batches, each with a
      'weight' field (0 on padding rows).
    params: initial parameter pytree.
    loss_fn(params, batch, key) -> (B,) training objective (minimized as a batch mean).
    nll_fn(params, batch, key) -> (B,) nats, an (upper bound on) -log P(x) for eval.
    num_dims: dimensions per example (bits/dim = nats / (num_dims ln 2)).
    sample_fn(params, key, num) -> samples; write_samples(samples, path_stem) -> file written.
    view: the model's `gen_jax.families.ModelView` (pure apply / rebuild), for evaluations
      beyond nll_fn (the family's other estimators and samplers); spec: the data's
      `gen_jax.data.DataSpec`.
    data_fingerprint: JSON-ready dict identifying the data read (e.g. {'train':
      gen_jax.data.fingerprint(train_ds), 'eval': ...}), saved with checkpoints and compared
      on resume; None: not checked.
    """
    train_batches: Callable[[int, int, int], Iterable[dict]]
    eval_batches: Optional[Callable[[], Iterable[dict]]]
    params: Any
    loss_fn: Callable
    nll_fn: Optional[Callable]
    num_dims: int
    sample_fn: Optional[Callable] = None
    write_samples: Optional[Callable] = None
    view: Any = None
    spec: Any = None
    data_fingerprint: Optional[dict] = None
