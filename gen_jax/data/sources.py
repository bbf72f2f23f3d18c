"""`load(name, split, ...)`: every dataset of gen_jax behind one entry point.

Names:
  digits            scikit-learn's bundled 8x8 digits, 17 levels (the offline default), built
                    with tfds as array_record into tfds_dir on first use. Splits train (first
                    1437), test (last 360).
  mnist             with data_dir: a directory of MNIST idx files (gzip or raw), built with tfds
                    into tfds_dir; without: the tfds 'mnist' dataset from tfds_dir (downloaded by
                    tfds if missing). 256 levels; binarize=True thresholds at 128 (deterministic:
                    level >= 128 -> 1) giving 2 levels. Splits train, test.
  cifar10           the tfds 'cifar10' dataset, 256 levels. Splits train, test.
  text_file         a local UTF-8 file `path`; tokenizer 'char' (vocab = sorted characters of the
                    whole file) or 'byte'; the first 90% of tokens is 'train', the last 10%
                    'validation'; examples are non-overlapping chunks of seq_len tokens. The
                    file is tokenized once into a memory-mapped uint8/uint16 cache
                    (text_cache.py; $GEN_JAX_CACHE_DIR, default ~/.cache/gen_jax).
  tiny_shakespeare  with data_dir: data_dir/input.txt read as text_file (default tokenizer
                    'char'); without: the tfds dataset (splits train, validation, test; default
                    tokenizer 'byte'), each split's text chunked the same way.
  lm1b              the tfds 'lm1b' dataset, one example per sentence: UTF-8 bytes truncated or
                    padded to seq_len with pad id 256 (vocab 257) and a 'token_mask' field.
  markov            synthetic order-2 Markov chain sequences with exact entropy (see markov.py).

Image datasets (at most a few hundred MB) are read into memory once at load, so batches are
array indexing; lm1b is read lazily from its array_record files.

tfds_dir is the tfds data directory (default $TFDS_DATA_DIR or ~/tensorflow_datasets); data_dir
is a directory of raw source files that a local builder reads. Local builds (digits, mnist from
data_dir) happen on the first load and are reused after; on many hosts sharing one tfds_dir,
load once on process 0 (then a barrier) before the other processes load.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from gen_jax.data.dataset import ArraySource, DataSpec, Dataset, MappedSource, read_into_memory
from gen_jax.data.discretize import binarize as binarize_levels
from gen_jax.data.markov import MarkovChain2
from gen_jax.data.text import TokenChunks, pad_tokens, split_train_validation
from gen_jax.data.text_cache import tokenized_file
from gen_jax.data.tokenizers import ByteTokenizer, make_tokenizer

MNIST_DEV_DIR = "../shared/data/mnist"
SHAKESPEARE_DEV_DIR = "../shared/data/tiny_shakespeare"


def _check_options(name: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"{name}: unsupported option(s) {unknown}; supported options: {allowed}")
    return {**defaults, **options}


def _positive_int(name: str, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: {key} must be a positive integer, got {value!r}")
    return int(value)


def _no_data_dir(name: str, data_dir) -> None:
    if data_dir is not None:
        raise ValueError(f"{name} reads no local files: data_dir is not supported (got {data_dir!r})")


def _image_example(binarize: bool) -> Callable[[dict], dict[str, np.ndarray]]:
    def example(record) -> dict[str, np.ndarray]:
        image = np.asarray(record["image"], dtype=np.uint8)
        return {
            "image": binarize_levels(image) if binarize else image,
            "label": np.asarray(record["label"], dtype=np.int32),
        }

    return example


def _tfds_source(name: str, split: str, tfds_dir: str | None, hint: str):
    """tfds.data_source(name) from tfds_dir, with a clear error when it cannot be had."""
    import tensorflow_datasets as tfds

    try:
        return tfds.data_source(name, split=split, data_dir=tfds_dir)
    except Exception as e:  # tfds raises assorted errors offline or without TensorFlow
        where = tfds_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
        raise RuntimeError(
            f"could not read the tfds dataset {name!r} (split {split!r}) from tfds_dir={where!r} "
            f"({type(e).__name__}: {e}). Prepare it there as array_record with internet access, {hint}"
        ) from e


def _load_digits(split, data_dir, tfds_dir, options) -> Dataset:
    from gen_jax.data.builders.local_builder import prepared_builder
    from gen_jax.data.builders.sklearn_digits import NUM_LEVELS, SklearnDigits

    _no_data_dir("digits", data_dir)
    _check_options("digits", options, {})
    source = prepared_builder(SklearnDigits, tfds_dir).as_data_source(split)
    spec = DataSpec(name="digits", kind="image", shape=(8, 8, 1), num_levels=NUM_LEVELS)
    return Dataset(read_into_memory(source, _image_example(False)), spec, split, ("train", "test"))


def _load_mnist(split, data_dir, tfds_dir, options) -> Dataset:
    opts = _check_options("mnist", options, {"binarize": False})
    if not isinstance(opts["binarize"], bool):
        raise ValueError(f"mnist: binarize must be True or False, got {opts['binarize']!r}")
    if data_dir is None:
        source = _tfds_source("mnist", split, tfds_dir, f"or pass data_dir= a directory of MNIST idx files (in this repo's development setup: {MNIST_DEV_DIR})")
    else:
        from gen_jax.data.builders.local_builder import prepared_builder
        from gen_jax.data.builders.mnist_idx import MnistIdx, find_idx_files, idx_file_names, mnist_idx_config

        files = find_idx_files(data_dir)
        needed = [n for s in ("train", "test") for n in idx_file_names(s)]
        missing = [n for n in needed if n not in files]
        if missing:
            raise FileNotFoundError(
                f"mnist: data_dir={data_dir!r} lacks {', '.join(m + '[.gz]' for m in missing)}. Pass data_dir "
                f"pointing at a directory with {', '.join(n + '.gz' for n in needed)} (gzip or raw idx); "
                f"in this repo's development setup: {MNIST_DEV_DIR}"
            )
        builder = prepared_builder(MnistIdx, tfds_dir, mnist_idx_config(data_dir, files))
        source = builder.as_data_source(split)
    num_levels = 2 if opts["binarize"] else 256
    spec = DataSpec(name="mnist", kind="image", shape=(28, 28, 1), num_levels=num_levels)
    return Dataset(read_into_memory(source, _image_example(opts["binarize"])), spec, split, ("train", "test"))


def _load_cifar10(split, data_dir, tfds_dir, options) -> Dataset:
    _no_data_dir("cifar10", data_dir)
    _check_options("cifar10", options, {})
    source = _tfds_source("cifar10", split, tfds_dir, "then pass tfds_dir=.")
    spec = DataSpec(name="cifar10", kind="image", shape=(32, 32, 3), num_levels=256)
    return Dataset(read_into_memory(source, _image_example(False)), spec, split, ("train", "test"))


def _text_options(name: str, options: dict[str, Any], default_tokenizer: str, **extra) -> dict[str, Any]:
    opts = _check_options(name, options, {"tokenizer": default_tokenizer, "seq_len": 256, **extra})
    if opts["tokenizer"] not in ("char", "byte"):
        raise ValueError(f"{name}: tokenizer must be 'char' or 'byte', got {opts['tokenizer']!r}")
    opts["seq_len"] = _positive_int(name, "seq_len", opts["seq_len"])
    return opts


def _chunked_dataset(name, split, splits, tokenizer, tokens: np.ndarray, seq_len: int) -> Dataset:
    """A token stream cut into non-overlapping seq_len chunks: {'tokens': int32 (seq_len,)}."""
    chunks = TokenChunks(tokens, seq_len)
    if len(chunks) == 0:
        raise ValueError(f"{name}: split {split!r} has {tokens.shape[0]} tokens, fewer than seq_len={seq_len}")
    spec = DataSpec(name=name, kind="text", shape=(seq_len,), num_levels=tokenizer.vocab_size, tokenizer=tokenizer)
    return Dataset(chunks, spec, split, splits)


def _local_text(name: str, split: str, path: str, opts: dict[str, Any]) -> Dataset:
    """A UTF-8 file: one tokenizer over the whole text, first 90% of tokens train, last 10%
    validation; tokenized once into a memory-mapped cache (text_cache.py) shared by the splits."""
    tokens, tokenizer = tokenized_file(path, opts["tokenizer"], name=name)
    tokens = split_train_validation(tokens, split)
    return _chunked_dataset(name, split, ("train", "validation"), tokenizer, tokens, opts["seq_len"])


def _load_text_file(split, data_dir, tfds_dir, options) -> Dataset:
    _no_data_dir("text_file", data_dir)
    opts = _text_options("text_file", options, "char", path=None)
    if not opts["path"]:  # None or "" (the config's 'not given')
        raise ValueError("text_file: pass path= a UTF-8 text file (from the command line: "
                         "--config.data.options.path=FILE)")
    if not os.path.isfile(opts["path"]):
        raise FileNotFoundError(f"text_file: no file at path={opts['path']!r}")
    return _local_text("text_file", split, opts["path"], opts)


def _load_tiny_shakespeare(split, data_dir, tfds_dir, options) -> Dataset:
    if data_dir is not None:
        opts = _text_options("tiny_shakespeare", options, "char")
        path = os.path.join(data_dir, "input.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"tiny_shakespeare: no input.txt in data_dir={data_dir!r}. Pass data_dir pointing at a directory "
                f"with input.txt (the char-rnn corpus); in this repo's development setup: {SHAKESPEARE_DEV_DIR}"
            )
        return _local_text("tiny_shakespeare", split, path, opts)
    opts = _text_options("tiny_shakespeare", options, "byte")
    hint = f"or pass data_dir= a directory with input.txt (in this repo's development setup: {SHAKESPEARE_DEV_DIR})"
    splits = ("train", "validation", "test")
    texts = {}
    for s in splits:  # the char vocab spans every split, so read them all
        source = _tfds_source("tiny_shakespeare", s, tfds_dir, hint)
        texts[s] = "".join(_as_str(source[i]["text"]) for i in range(len(source)))
    tokenizer = make_tokenizer(opts["tokenizer"], "".join(texts.values()))
    return _chunked_dataset("tiny_shakespeare", split, splits, tokenizer, tokenizer.encode(texts[split]), opts["seq_len"])


def _as_str(text) -> str:
    return text.decode("utf-8") if isinstance(text, bytes) else str(text)


def _load_lm1b(split, data_dir, tfds_dir, options) -> Dataset:
    _no_data_dir("lm1b", data_dir)
    opts = _check_options("lm1b", options, {"seq_len": 128})
    seq_len = _positive_int("lm1b", "seq_len", opts["seq_len"])
    source = _tfds_source("lm1b", split, tfds_dir, "then pass tfds_dir=.")
    tokenizer = ByteTokenizer()
    pad_id = tokenizer.vocab_size

    def example(record) -> dict[str, np.ndarray]:
        return pad_tokens(tokenizer.encode(_as_str(record["text"])), seq_len, pad_id)

    spec = DataSpec(name="lm1b", kind="text", shape=(seq_len,), num_levels=pad_id + 1, tokenizer=tokenizer, pad_id=pad_id)
    return Dataset(MappedSource(source, example), spec, split, ("train", "test"))


def _load_markov(split, data_dir, tfds_dir, options) -> Dataset:
    _no_data_dir("markov", data_dir)
    defaults = {"num_symbols": 8, "seq_len": 32, "num_examples": 10000, "seed": 0, "concentration": 0.5}
    opts = _check_options("markov", options, defaults)
    seq_len = _positive_int("markov", "seq_len", opts["seq_len"])
    if seq_len < 2:
        raise ValueError(f"markov: seq_len must be >= 2 for an order-2 chain, got {seq_len}")
    num_examples = _positive_int("markov", "num_examples", opts["num_examples"])
    if isinstance(opts["seed"], bool) or not isinstance(opts["seed"], (int, np.integer)) or opts["seed"] < 0:
        raise ValueError(f"markov: seed must be a non-negative integer, got {opts['seed']!r}")
    chain = MarkovChain2.random(int(opts["seed"]), opts["num_symbols"], opts["concentration"])
    splits = ("train", "test")
    rng = np.random.default_rng([int(opts["seed"]), 1 + splits.index(split)])
    tokens = chain.sample(rng, num_examples, seq_len)
    spec = DataSpec(
        name="markov", kind="text", shape=(seq_len,), num_levels=chain.num_symbols,
        entropy_nats_per_example=chain.sequence_entropy(seq_len),
    )
    return Dataset(ArraySource({"tokens": tokens}), spec, split, splits)


_LOADERS = {
    "digits": (_load_digits, ("train", "test")),
    "mnist": (_load_mnist, ("train", "test")),
    "cifar10": (_load_cifar10, ("train", "test")),
    "text_file": (_load_text_file, ("train", "validation")),
    "tiny_shakespeare": (_load_tiny_shakespeare, None),
    "lm1b": (_load_lm1b, ("train", "test")),
    "markov": (_load_markov, ("train", "test")),
}
KNOWN_DATASETS = tuple(_LOADERS)


def load(name: str, split: str, *, data_dir: str | None = None, tfds_dir: str | None = None, **options) -> Dataset:
    """One split of dataset `name` as a random-access `Dataset` with its `DataSpec`.

    data_dir: directory of raw source files for names that read them (mnist, tiny_shakespeare).
    tfds_dir: tfds data directory (default $TFDS_DATA_DIR or ~/tensorflow_datasets).
    options: per-name settings (see the module docstring); unknown ones raise ValueError.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}")
    loader, splits = _LOADERS[name]
    if splits is None:  # tiny_shakespeare: local file or tfds
        splits = ("train", "validation") if data_dir is not None else ("train", "validation", "test")
    if split not in splits:
        raise ValueError(f"{name}: unknown split {split!r}; available splits: {', '.join(splits)}")
    return loader(split, data_dir, tfds_dir, options)
