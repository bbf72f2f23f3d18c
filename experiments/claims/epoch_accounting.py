"""Exact bookkeeping of data-constrained training: a training set of exactly `unique_tokens`
tokens (the first sequences of the train split), and epochs = tokens seen / unique tokens."""
import numpy as np

from gen_jax.data.dataset import ArraySource, Dataset


def check_budget(unique_tokens: int, seq_len: int, batch_size: int) -> int:
    """Sequences in the budget; ValueError naming unique_tokens unless it is a positive multiple
    of seq_len * batch_size (so an epoch is a whole number of steps and, with the loop's
    drop-remainder batching, every token is seen exactly once per epoch)."""
    if isinstance(unique_tokens, bool) or not isinstance(unique_tokens, int) or unique_tokens < 1:
        raise ValueError(f"unique_tokens must be an integer > 0, got {unique_tokens!r}")
    if unique_tokens % (seq_len * batch_size):
        raise ValueError(f"unique_tokens={unique_tokens} must be a multiple of seq_len * "
                         f"batch_size = {seq_len} * {batch_size} = {seq_len * batch_size}")
    return unique_tokens // seq_len


def token_subset(dataset: Dataset, unique_tokens: int, batch_size: int) -> Dataset:
    """The first unique_tokens / L sequences of a text `dataset` (tokens (N, L)), in memory;
    ValueError naming unique_tokens if the split is too small or the budget is not whole batches."""
    seq_len = dataset.spec.shape[0]
    num = check_budget(unique_tokens, seq_len, batch_size)
    if num > len(dataset):
        raise ValueError(f"unique_tokens={unique_tokens} needs {num} sequences of {seq_len}; "
                         f"the {dataset.split} split has {len(dataset)}")
    if dataset.spec.pad_id is not None:
        raise ValueError("token_subset needs unpadded text (every token real); "
                         f"{dataset.spec.name!r} pads with id {dataset.spec.pad_id}")
    tokens = dataset.get_batch(np.arange(num))["tokens"]
    return Dataset(ArraySource({"tokens": tokens}), dataset.spec, dataset.split, dataset.splits)


def epochs_seen(steps: int, batch_size: int, seq_len: int, unique_tokens: int) -> float:
    """Passes over the unique tokens after `steps`: steps * batch_size * seq_len / unique_tokens."""
    return steps * batch_size * seq_len / unique_tokens
