"""The memory-mapped token cache of text files (text_cache.py) against direct tokenization of
the whole text read at once, its reuse and invalidation, its error messages, and the data
fingerprint (fingerprint.py)."""
import os

import numpy as np
import pytest

from gen_jax.data import fingerprint, load
from gen_jax.data import text_cache
from gen_jax.data.dataset import ArraySource, DataSpec, Dataset, MappedSource
from gen_jax.data.tokenizers import ByteTokenizer, CharTokenizer


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GEN_JAX_CACHE_DIR", str(tmp_path / "cache"))
    return str(tmp_path / "cache" / "text")


def reference_ids(path, kind):
    """What the text_file source did before the cache: read everything, encode at once."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    tokenizer = CharTokenizer.from_text(text) if kind == "char" else ByteTokenizer()
    return tokenizer.encode(text), tokenizer


@pytest.mark.parametrize("kind", ["char", "byte"])
def test_cache_equals_whole_file_encoding_across_chunks(kind, tmp_path, monkeypatch):
    """Chunks of 7 characters split multi-byte characters and CRLF pairs; the ids must not
    notice (text mode: universal newlines)."""
    monkeypatch.setattr(text_cache, "_CHUNK_CHARS", 7)
    path = tmp_path / "mixed.txt"
    path.write_bytes("Première ligne\r\nsecond: naïve ☃ — ok\r\n".encode("utf-8") * 9 + b"end")
    ids, tokenizer = text_cache.tokenized_file(str(path), kind)
    expected, expected_tokenizer = reference_ids(str(path), kind)
    assert tokenizer == expected_tokenizer
    assert ids.dtype == np.uint8 and isinstance(ids, np.memmap)
    np.testing.assert_array_equal(ids, expected)


def test_large_vocabulary_uses_uint16(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_text("".join(chr(0x4E00 + i) for i in range(300)) * 3, encoding="utf-8")
    ids, tokenizer = text_cache.tokenized_file(str(path), "char")
    assert ids.dtype == np.uint16 and tokenizer.vocab_size == 300
    np.testing.assert_array_equal(ids, reference_ids(str(path), "char")[0])


def test_splits_share_one_cache_entry_and_reuse_it(tmp_path, cache_dir, monkeypatch):
    path = tmp_path / "corpus.txt"
    path.write_text("abcdefghij" * 50, encoding="utf-8")
    train = load("text_file", "train", path=str(path), seq_len=4)
    assert len(os.listdir(cache_dir)) == 2  # one .npy + one .json

    def fail(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(text_cache, "_build", fail)
    validation = load("text_file", "validation", path=str(path), seq_len=4)
    ids, _ = reference_ids(str(path), "char")
    boundary = int(0.9 * len(ids))
    np.testing.assert_array_equal(train.get_batch(np.arange(len(train)))["tokens"].reshape(-1),
                                  ids[: len(train) * 4])
    np.testing.assert_array_equal(validation[0]["tokens"], ids[boundary:boundary + 4])
    assert train.get_batch([0])["tokens"].dtype == np.int32


def test_changed_file_gets_a_new_entry(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("aaaa" * 10, encoding="utf-8")
    first, _ = text_cache.tokenized_file(str(path), "char")
    path.write_text("abab" * 10, encoding="utf-8")  # same size
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    second, tokenizer = text_cache.tokenized_file(str(path), "char")
    assert tokenizer.vocab == ("a", "b") and second[1] == 1 and first[1] == 0


def test_binary_file_is_a_value_error_naming_it(tmp_path):
    """Before: a UnicodeDecodeError that named no file."""
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * 4)
    for kind in ("char", "byte"):
        with pytest.raises(ValueError, match=r"text_file: '.*weights\.bin' is not UTF-8 text"):
            load("text_file", "train", path=str(path), tokenizer=kind)


def test_empty_file_is_a_value_error_naming_it(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.txt' is empty"):
        load("text_file", "train", path=str(path))


def test_empty_path_option_says_how_to_set_it():
    with pytest.raises(ValueError, match=r"pass path=.*--config.data.options.path=FILE"):
        load("text_file", "train", path="")


def _dataset(arrays, source_cls=ArraySource):
    spec = DataSpec(name="toy", kind="text", shape=(3,), num_levels=10)
    source = ArraySource(arrays)
    if source_cls is MappedSource:
        source = MappedSource(source, lambda r: r)
    return Dataset(source, spec, "train", ("train",))


@pytest.mark.parametrize("lazy", [False, True])
def test_fingerprint_sees_one_changed_value(lazy):
    tokens = np.arange(300, dtype=np.int32).reshape(100, 3) % 10
    cls = MappedSource if lazy else ArraySource
    base = fingerprint(_dataset({"tokens": tokens}, cls))
    assert base == fingerprint(_dataset({"tokens": tokens.copy()}, cls))
    assert base["size"] == 100 and base["records_hashed"] == 100 and base["split"] == "train"
    changed = tokens.copy()
    changed[57, 1] = (changed[57, 1] + 1) % 10
    assert fingerprint(_dataset({"tokens": changed}, cls))["sha256"] != base["sha256"]
    assert fingerprint(_dataset({"tokens": tokens[:99]}, cls))["sha256"] != base["sha256"]


def test_fingerprint_samples_lazy_sources_evenly():
    tokens = np.arange(3000, dtype=np.int32).reshape(1000, 3)
    fp = fingerprint(_dataset({"tokens": tokens}, MappedSource), max_sampled_records=10)
    assert fp["records_hashed"] == 10 and fp["size"] == 1000
    last = tokens.copy()
    last[-1, 0] += 1  # the last record is always among the samples
    assert fingerprint(_dataset({"tokens": last}, MappedSource),
                       max_sampled_records=10)["sha256"] != fp["sha256"]
    with pytest.raises(ValueError, match="max_sampled_records"):
        fingerprint(_dataset({"tokens": tokens}), max_sampled_records=0)
