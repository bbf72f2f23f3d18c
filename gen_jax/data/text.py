"""Text -> fixed-length token examples: chunking a token stream, and padding single documents."""
from __future__ import annotations

import numpy as np

TRAIN_FRACTION = 0.9


class TokenChunks:
    """Random-access source over an (N,) token stream (any integer dtype, e.g. a memory-mapped
    uint8 array) cut into N // seq_len non-overlapping chunks, the shorter tail dropped.
    Examples are {'tokens': int32 (seq_len,)}, converted per read: the stream is not copied.
    `arrays` is the (num_chunks, seq_len) view of the stream, in its own dtype."""

    def __init__(self, tokens: np.ndarray, seq_len: int):
        num_chunks = tokens.shape[0] // seq_len
        self.arrays = {"tokens": tokens[: num_chunks * seq_len].reshape(num_chunks, seq_len)}

    def __len__(self) -> int:
        return self.arrays["tokens"].shape[0]

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {"tokens": np.asarray(self.arrays["tokens"][index], dtype=np.int32)}

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {"tokens": self.arrays["tokens"][indices].astype(np.int32)}


def split_train_validation(tokens: np.ndarray, split: str) -> np.ndarray:
    """First 90% of a token stream for 'train', the last 10% for 'validation' (the
    char-rnn / nanoGPT split; the boundary is int(0.9 * N))."""
    boundary = int(TRAIN_FRACTION * tokens.shape[0])
    return tokens[:boundary] if split == "train" else tokens[boundary:]


def pad_tokens(tokens: np.ndarray, seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """(n,) tokens of one document -> {'tokens': int32 (seq_len,) truncated or right-padded
    with pad_id, 'token_mask': bool (seq_len,) True on real tokens}."""
    tokens = np.asarray(tokens, dtype=np.int32)[:seq_len]
    out = np.full((seq_len,), pad_id, dtype=np.int32)
    out[: tokens.shape[0]] = tokens
    return {"tokens": out, "token_mask": np.arange(seq_len) < tokens.shape[0]}
