"""A text file tokenized once into a compact on-disk array, memory-mapped by every split.

`tokenized_file(path, kind)` streams the file twice in 1M-character chunks (vocabulary, then
ids), writes the ids as a `.npy` of the smallest unsigned dtype that holds the vocabulary
(uint8 for bytes or <= 256 characters, else uint16 / uint32) plus a JSON sidecar (tokenizer
vocabulary, token count), and returns them memory-mapped: a load costs O(chunk) memory, not
~25 bytes per character. The cache entry is keyed by the file's real path, size, mtime and a
hash of its first and last 64 KiB, the tokenizer kind and the format version; a changed file
gets a new entry. The text is read as Python's text mode reads it (UTF-8, universal newlines),
so the ids equal `tokenizer.encode(open(path, encoding='utf-8').read())`.

Cache directory: $GEN_JAX_CACHE_DIR/text, else ~/.cache/gen_jax/text.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid

import numpy as np

from gen_jax.data.tokenizers import ByteTokenizer, CharTokenizer

FORMAT_VERSION = 1
_CHUNK_CHARS = 1 << 20
_EDGE_BYTES = 1 << 16


def default_cache_dir() -> str:
    root = os.environ.get("GEN_JAX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "gen_jax")
    return os.path.join(root, "text")


def _chunks(path: str, name: str):
    """The file's text in chunks of up to 1M characters; ValueError naming it if not UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            while chunk := f.read(_CHUNK_CHARS):
                yield chunk
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}: {path!r} is not UTF-8 text ({e.reason} in a chunk read from "
                         f"it); pass a UTF-8 text file as path=") from None


def _cache_key(path: str, kind: str) -> str:
    stat = os.stat(path)
    digest = hashlib.sha256(f"{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{kind}|"
                            f"v{FORMAT_VERSION}|".encode())
    with open(path, "rb") as f:
        digest.update(f.read(_EDGE_BYTES))
        f.seek(max(0, stat.st_size - _EDGE_BYTES))
        digest.update(f.read(_EDGE_BYTES))
    return digest.hexdigest()[:32]


def _dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.uint32)


def _build(path: str, kind: str, name: str, npy_path: str, meta_path: str) -> None:
    chars, num_tokens = set(), 0
    for chunk in _chunks(path, name):
        if kind == "char":
            chars.update(chunk)
            num_tokens += len(chunk)
        else:
            num_tokens += len(chunk.encode("utf-8"))
    vocab = sorted(chars) if kind == "char" else None
    dtype = _dtype(len(vocab) if kind == "char" else 256)
    if kind == "char":
        lut = np.zeros(ord(vocab[-1]) + 1 if vocab else 1, dtype=dtype)
        lut[[ord(c) for c in vocab]] = np.arange(len(vocab))
    tmp = f"{npy_path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as out:
            np.lib.format.write_array_header_2_0(
                out, {"descr": dtype.str, "fortran_order": False, "shape": (num_tokens,)})
            written = 0
            for chunk in _chunks(path, name):
                if kind == "char":
                    ids = lut[np.frombuffer(chunk.encode("utf-32-le"), dtype="<u4")]
                else:
                    ids = np.frombuffer(chunk.encode("utf-8"), dtype=np.uint8)
                out.write(ids.tobytes())
                written += ids.size
        if written != num_tokens:
            raise ValueError(f"{name}: {path!r} changed while it was being tokenized; load it again")
        with open(f"{meta_path}.tmp", "w", encoding="utf-8") as f:
            json.dump({"path": os.path.realpath(path), "tokenizer": kind, "vocab": vocab,
                       "num_tokens": num_tokens, "dtype": dtype.str}, f)
        os.replace(f"{meta_path}.tmp", meta_path)
        os.replace(tmp, npy_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _open(npy_path: str, meta_path: str):
    """(memory-mapped ids, metadata) of a cache entry, or None if it is missing or inconsistent."""
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        tokens = np.load(npy_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if tokens.shape != (meta["num_tokens"],) or tokens.dtype.str != meta["dtype"]:
        return None
    return tokens, meta


def tokenized_file(path: str, kind: str, *, name: str = "text_file",
                   cache_dir: str | None = None) -> tuple[np.ndarray, CharTokenizer | ByteTokenizer]:
    """(read-only memory-mapped (N,) unsigned ids of the whole file, tokenizer).

    kind: 'char' (CharTokenizer over the file's sorted characters) or 'byte'. name: the dataset
    name used in error messages. Builds the cache entry on first use (atomically: concurrent
    builders each write a temp file and rename it).
    """
    if kind not in ("char", "byte"):
        raise ValueError(f"{name}: tokenizer must be 'char' or 'byte', got {kind!r}")
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    key = _cache_key(path, kind)
    npy_path, meta_path = os.path.join(cache_dir, key + ".npy"), os.path.join(cache_dir, key + ".json")
    entry = _open(npy_path, meta_path)
    if entry is None:
        _build(path, kind, name, npy_path, meta_path)
        entry = _open(npy_path, meta_path)
        if entry is None:
            raise ValueError(f"{name}: the token cache {npy_path!r} could not be read back; "
                             f"check that {cache_dir!r} is writable (or set GEN_JAX_CACHE_DIR)")
    tokens, meta = entry
    if kind == "byte":
        return tokens, ByteTokenizer()
    if not meta["vocab"]:
        raise ValueError(f"{name}: {path!r} is empty; pass a non-empty UTF-8 text file")
    return tokens, CharTokenizer(tuple(meta["vocab"]))
