"""`DataSpec` (what an example is) and `Dataset` (a random-access split plus its spec)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gen_jax.data.tokenizers import ByteTokenizer, CharTokenizer


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Static description of one example, enough to build a model and convert NLLs to bits/dim.

    kind: 'image' (example {'image': uint8 (H, W, C)} with levels 0..K-1) or 'text'
      (example {'tokens': int32 (L,)} with ids 0..vocab-1).
    shape: (H, W, C) or (L,).
    num_levels: K for images, the vocabulary size for text.
    num_dims: dimensions per example (H*W*C or L): the D of bits/dim.
    entropy_nats_per_example: exact entropy of the data distribution (synthetic data only).
    tokenizer: turns token ids back into text (text only; None where ids are not text).
    pad_id: id used to pad text examples shorter than L (then the example also has a
      'token_mask' bool (L,) field, True on real tokens); None when every token is real.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    num_levels: int
    entropy_nats_per_example: float | None = None
    tokenizer: CharTokenizer | ByteTokenizer | None = None
    pad_id: int | None = None

    def __post_init__(self):
        if self.kind not in ("image", "text"):
            raise ValueError(f"DataSpec.kind must be 'image' or 'text', got {self.kind!r}")
        expected_rank = 3 if self.kind == "image" else 1
        if len(self.shape) != expected_rank:
            raise ValueError(f"DataSpec: a {self.kind} shape has {expected_rank} dims, got {self.shape}")

    @property
    def num_dims(self) -> int:
        return int(np.prod(self.shape))


def stack_examples(examples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """List of example dicts -> dict of arrays with a leading batch axis."""
    return {key: np.stack([ex[key] for ex in examples]) for key in examples[0]}


@dataclasses.dataclass(frozen=True)
class ArraySource:
    """In-memory random-access source: field name -> array with a leading example axis."""

    arrays: Mapping[str, np.ndarray]

    def __post_init__(self):
        lengths = {len(a) for a in self.arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"ArraySource: fields have different lengths {sorted(lengths)}")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {key: a[index] for key, a in self.arrays.items()}

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {key: a[indices] for key, a in self.arrays.items()}


def read_records(source, indices: Sequence[int]) -> list:
    """source[i] for i in indices, read as one batch (`__getitems__`) where the source supports it."""
    indices = [int(i) for i in indices]
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        try:
            return list(getitems(indices))
        except TypeError:  # tfds.testing.mock_data sources (tfds 4.9.10) only implement __getitem__
            pass
    return [source[i] for i in indices]


@dataclasses.dataclass(frozen=True)
class MappedSource:
    """A random-access source whose records pass through `fn` (record dict -> example dict)."""

    base: Any
    fn: Callable[[Mapping[str, Any]], dict[str, np.ndarray]]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.fn(self.base[int(index)])

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return stack_examples([self.fn(r) for r in read_records(self.base, indices)])


def read_into_memory(source, fn: Callable[[Mapping[str, Any]], dict[str, np.ndarray]],
                     chunk_size: int = 4096) -> ArraySource:
    """Every record of `source`, passed through `fn` and stacked into an in-memory ArraySource."""
    n = len(source)
    if n == 0:
        raise ValueError("read_into_memory: the source is empty")
    chunks = [
        stack_examples([fn(r) for r in read_records(source, range(start, min(start + chunk_size, n)))])
        for start in range(0, n, chunk_size)
    ]
    return ArraySource({key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]})


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One split of a dataset: `len(ds)`, `ds[i]` -> example dict, `ds.get_batch(indices)`.

    source: random-access (len, getitem, get_batch) returning dicts of numpy arrays.
    spec: the `DataSpec`. split: this split's name. splits: every split of the dataset.
    """

    source: Any
    spec: DataSpec
    split: str
    splits: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {self.spec.name}/{self.split} of size {n}")
        return self.source[index % n]

    def get_batch(self, indices) -> dict[str, np.ndarray]:
        """(B,) int indices -> dict of arrays with leading axis B."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1:
            raise ValueError(f"get_batch: indices must be 1-D, got shape {indices.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"get_batch: indices out of range for {self.spec.name}/{self.split} of size {len(self)}")
        return self.source.get_batch(indices)
