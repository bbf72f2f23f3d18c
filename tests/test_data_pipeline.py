"""BatchIterator and eval_batches: determinism, coverage, resume and sharding, on index data."""
import numpy as np
import pytest

from gen_jax.data import BatchIterator, DataSpec, Dataset, eval_batches
from gen_jax.data.dataset import ArraySource

N = 23


@pytest.fixture(scope="module")
def dataset():
    """Example i is {'index': i, 'tokens': [i, i, i]}: batches reveal which examples they hold."""
    arrays = {"index": np.arange(N), "tokens": np.repeat(np.arange(N, dtype=np.int32)[:, None], 3, 1)}
    spec = DataSpec(name="index", kind="text", shape=(3,), num_levels=N)
    return Dataset(ArraySource(arrays), spec, "train", ("train",))


def take(it, k):
    return [next(it)["index"] for _ in range(k)]


def test_same_seed_same_batches_different_seed_different(dataset):
    a = take(BatchIterator(dataset, 5, seed=1), 10)
    b = take(BatchIterator(dataset, 5, seed=1), 10)
    c = take(BatchIterator(dataset, 5, seed=2), 10)
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    assert not np.array_equal(np.concatenate(a), np.concatenate(c))


def test_batches_hold_the_examples_they_index(dataset):
    batch = next(BatchIterator(dataset, 5, seed=0))
    np.testing.assert_array_equal(batch["tokens"], np.repeat(batch["index"][:, None], 3, 1))
    assert batch["tokens"].dtype == np.int32


def test_every_example_once_per_epoch_and_epochs_differ(dataset):
    it = BatchIterator(dataset, 5, seed=0)
    assert it.steps_per_epoch == N // 5
    epochs = [np.concatenate(take(it, it.steps_per_epoch)) for _ in range(3)]
    for order in epochs:  # drop_remainder: N // 5 * 5 distinct examples, none twice
        assert len(order) == 20 and len(set(order.tolist())) == 20
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    it = BatchIterator(dataset, 5, seed=0, drop_remainder=False)
    assert it.steps_per_epoch == 5
    sizes = [len(b) for b in take(it, 5)]
    assert sizes == [5, 5, 5, 5, 3]
    it = BatchIterator(dataset, 5, seed=0, drop_remainder=False)
    np.testing.assert_array_equal(np.sort(np.concatenate(take(it, 5))), np.arange(N))


def test_resume_equals_straight_iteration(dataset):
    straight = take(BatchIterator(dataset, 4, seed=3), 17)
    for s in (0, 4, 5, 11):  # 5 steps per epoch: resume mid-epoch and at epoch starts
        it = BatchIterator(dataset, 4, seed=3, start_step=s)
        resumed = take(it, 17 - s)
        np.testing.assert_array_equal(np.concatenate(resumed), np.concatenate(straight[s:]))
        assert it.state() == {"step": 17, "seed": 3}


def test_shards_partition_the_global_batch(dataset):
    full = BatchIterator(dataset, 6, seed=5)
    shards = [BatchIterator(dataset, 6, seed=5, shard_index=i, num_shards=3) for i in range(3)]
    for _ in range(7):
        parts = [next(s)["index"] for s in shards]
        assert all(len(p) == 2 for p in parts)
        np.testing.assert_array_equal(np.concatenate(parts), next(full)["index"])


def test_eval_batches_cover_each_example_once_with_weights(dataset):
    batches = list(eval_batches(dataset, 5))
    assert len(batches) == 5 and all(len(b["index"]) == 5 for b in batches)
    index = np.concatenate([b["index"] for b in batches])
    weight = np.concatenate([b["weight"] for b in batches])
    assert weight.dtype == np.float32
    np.testing.assert_array_equal(index[weight == 1], np.arange(N))
    assert weight.sum() == N and np.all(weight[N:] == 0)
    # Weighted mean of a per-example value is the exact dataset mean.
    assert np.sum(weight * index) / weight.sum() == pytest.approx(np.mean(np.arange(N)))
    sharded = [list(eval_batches(dataset, 6, shard_index=i, num_shards=2)) for i in range(2)]
    for whole, a, b in zip(eval_batches(dataset, 6), *sharded):
        for key in ("index", "weight"):
            np.testing.assert_array_equal(np.concatenate([a[key], b[key]]), whole[key])


def test_pipeline_rejects_bad_arguments(dataset):
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator(dataset, 0, seed=0)
    with pytest.raises(ValueError, match="exceeds"):
        BatchIterator(dataset, N + 1, seed=0)
    with pytest.raises(ValueError, match="divisible by num_shards"):
        BatchIterator(dataset, 5, seed=0, num_shards=2)
    with pytest.raises(ValueError, match="shard_index"):
        BatchIterator(dataset, 4, seed=0, shard_index=2, num_shards=2)
    with pytest.raises(ValueError, match="drop_remainder=False"):
        BatchIterator(dataset, 4, seed=0, drop_remainder=False, num_shards=2)
    with pytest.raises(ValueError, match="seed"):
        BatchIterator(dataset, 4, seed=-1)
    with pytest.raises(ValueError, match="start_step"):
        BatchIterator(dataset, 4, seed=0, start_step=-3)
    with pytest.raises(ValueError, match="divisible"):
        next(eval_batches(dataset, 5, num_shards=2))
