"""Batching: a resumable, deterministically shuffled training iterator, and padded eval batches.

Training order: epoch e visits the examples in the permutation
np.random.default_rng([seed, e]).permutation(len(dataset)); step s reads global batch
s % steps_per_epoch of epoch s // steps_per_epoch. A batch is therefore a pure function of
(seed, step): resuming with start_step=s reproduces exactly the batches of an uninterrupted run.

Multi-host: every process builds the same iterator with shard_index=jax.process_index() and
num_shards=jax.process_count(); process i gets rows [i*b, (i+1)*b) of each global batch, with
b = batch_size // num_shards, so the processes together see the same global batch that a single
process would, whatever the number of hosts.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from gen_jax.data.dataset import Dataset


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_sharding(batch_size: int, shard_index, num_shards) -> tuple[int, int]:
    num_shards = _check_int("num_shards", num_shards, 1)
    shard_index = _check_int("shard_index", shard_index, 0)
    if shard_index >= num_shards:
        raise ValueError(f"shard_index must be < num_shards={num_shards}, got {shard_index}")
    if batch_size % num_shards:
        raise ValueError(f"batch_size={batch_size} (global) must be divisible by num_shards={num_shards}")
    return shard_index, num_shards


class BatchIterator:
    """Infinite iterator of training batches (dicts of numpy arrays, leading axis = local batch).

    batch_size: the global batch size (over all shards). seed: int, fixes every epoch's order.
    start_step: the step of the first batch yielded (resume). drop_remainder: if False, the last
    batch of each epoch holds the n % batch_size leftover examples (single shard only).
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, seed: int, start_step: int = 0,
                 drop_remainder: bool = True, shard_index: int = 0, num_shards: int = 1):
        self.dataset = dataset
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.seed = _check_int("seed", seed, 0)
        self.step = _check_int("start_step", start_step, 0)
        self.shard_index, self.num_shards = _check_sharding(self.batch_size, shard_index, num_shards)
        if not drop_remainder and self.num_shards > 1:
            raise ValueError("drop_remainder=False gives a short last batch that cannot be split evenly over shards")
        self.drop_remainder = bool(drop_remainder)
        n = len(dataset)
        if n == 0 or (self.drop_remainder and self.batch_size > n):
            raise ValueError(f"batch_size={self.batch_size} exceeds the {n} examples of {dataset.spec.name}/{dataset.split}")
        self.steps_per_epoch = n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)
        self._cached_epoch = None
        self._cached_permutation = None

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.num_shards

    def permutation(self, epoch: int) -> np.ndarray:
        """(n,) int64 order in which epoch `epoch` visits the examples."""
        if epoch != self._cached_epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._cached_permutation = rng.permutation(len(self.dataset))
            self._cached_epoch = epoch
        return self._cached_permutation

    def indices_at(self, step: int) -> np.ndarray:
        """Dataset indices of this shard's rows of the global batch at `step`."""
        epoch, position = divmod(_check_int("step", step, 0), self.steps_per_epoch)
        global_rows = self.permutation(epoch)[position * self.batch_size : (position + 1) * self.batch_size]
        local = self.local_batch_size
        return global_rows[self.shard_index * local : (self.shard_index + 1) * local]

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """This shard's batch at `step` (a pure function of seed and step)."""
        return self.dataset.get_batch(self.indices_at(step))

    def state(self) -> dict[str, int]:
        """What to save with a checkpoint: the next step to yield and the seed."""
        return {"step": self.step, "seed": self.seed}

    def __iter__(self) -> "BatchIterator":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self.batch_at(self.step)
        self.step += 1
        return batch


def eval_batches(dataset: Dataset, batch_size: int, *, shard_index: int = 0,
                 num_shards: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """Every example exactly once, in order, in global batches of `batch_size`.

    The last global batch is padded to full size by repeating the dataset's last example; each
    batch carries 'weight' float32 (local batch,) = 1 for real examples, 0 for padding, so
    sum(weight * value) / sum(weight) is the exact mean over the dataset. With num_shards > 1
    each process gets its rows [i*b, (i+1)*b) of every global batch (b = batch_size // num_shards).
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    shard_index, num_shards = _check_sharding(batch_size, shard_index, num_shards)
    n = len(dataset)
    local = batch_size // num_shards
    for start in range(0, n, batch_size):
        rows = np.arange(start, start + batch_size)[shard_index * local : (shard_index + 1) * local]
        batch = dataset.get_batch(np.minimum(rows, n - 1))
        batch["weight"] = (rows < n).astype(np.float32)
        yield batch
