"""Tokenizers between text and int32 token ids: one id per character, or per UTF-8 byte."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
    """One token per Unicode character; id = position of the character in `vocab`.

    `vocab` is a tuple of distinct single characters, sorted (the char-rnn / nanoGPT
    convention: the sorted set of characters of the whole corpus).
    """

    vocab: tuple[str, ...]

    def __post_init__(self):
        if not self.vocab:
            raise ValueError("CharTokenizer: vocab is empty")
        if any(not isinstance(c, str) or len(c) != 1 for c in self.vocab):
            raise ValueError("CharTokenizer: every vocab entry must be a single character")
        if list(self.vocab) != sorted(set(self.vocab)):
            raise ValueError("CharTokenizer: vocab must be sorted and free of duplicates")

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """The tokenizer whose vocab is the sorted set of characters in `text`."""
        return cls(tuple(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """str -> (len(text),) int32 ids; ValueError naming any character not in the vocab."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        table = np.array([ord(c) for c in self.vocab], dtype=np.uint32)
        ids = np.searchsorted(table, codes)
        known = (ids < len(table)) & (table[np.minimum(ids, len(table) - 1)] == codes)
        if not known.all():
            unknown = sorted({chr(c) for c in codes[~known]})
            raise ValueError(f"CharTokenizer.encode: characters not in the vocab: {unknown!r}")
        return ids.astype(np.int32)

    def decode(self, ids) -> str:
        """Integer ids of any shape (flattened) -> str; ValueError for ids outside the vocab."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"CharTokenizer.decode: ids must lie in [0, {self.vocab_size})")
        return "".join(self.vocab[i] for i in ids.tolist())


@dataclasses.dataclass(frozen=True)
class ByteTokenizer:
    """One token per UTF-8 byte: vocab_size 256, id = byte value."""

    @property
    def vocab_size(self) -> int:
        return 256

    def encode(self, text: str) -> np.ndarray:
        """str -> (num_bytes,) int32 ids in [0, 256)."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids) -> str:
        """Integer ids of any shape (flattened) -> str; invalid UTF-8 is shown as U+FFFD."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise ValueError("ByteTokenizer.decode: ids must lie in [0, 256)")
        return ids.astype(np.uint8).tobytes().decode("utf-8", errors="replace")


def make_tokenizer(kind: str, text: str) -> CharTokenizer | ByteTokenizer:
    """'char' -> CharTokenizer over the characters of `text`; 'byte' -> ByteTokenizer."""
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "byte":
        return ByteTokenizer()
    raise ValueError(f"tokenizer must be 'char' or 'byte', got {kind!r}")
