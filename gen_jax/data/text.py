"""Text -> fixed-length token examples: chunking a token stream, and padding single documents."""
from __future__ import annotations

import numpy as np

TRAIN_FRACTION = 0.9


def chunk_tokens(tokens: np.ndarray, seq_len: int) -> np.ndarray:
    """(N,) token stream -> (N // seq_len, seq_len) int32 non-overlapping chunks; the tail
    shorter than seq_len is dropped."""
    tokens = np.asarray(tokens, dtype=np.int32)
    num_chunks = tokens.shape[0] // seq_len
    return tokens[: num_chunks * seq_len].reshape(num_chunks, seq_len)


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
