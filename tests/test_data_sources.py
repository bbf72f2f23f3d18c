"""load(): every dataset name against its source (sklearn arrays, hand-written idx files, text,
tfds mock data), builds that are not repeated, and the error messages."""
import gzip
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from gen_jax.data import KNOWN_DATASETS, load
from gen_jax.data.builders.sklearn_digits import SklearnDigits
from gen_jax.data.idx import read_idx


@pytest.fixture(autouse=True)
def text_cache_dir(tmp_path, monkeypatch):
    """text_file's token cache in the test's tmp dir, not ~/.cache."""
    monkeypatch.setenv("GEN_JAX_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def digits(tfds_dir):
    return {split: load("digits", split, tfds_dir=tfds_dir) for split in ("train", "test")}


def test_digits_equal_sklearn_arrays_in_split_order(digits):
    sk = load_digits()
    images = np.concatenate([digits[s].get_batch(np.arange(len(digits[s])))["image"] for s in ("train", "test")])
    labels = np.concatenate([digits[s].get_batch(np.arange(len(digits[s])))["label"] for s in ("train", "test")])
    assert (len(digits["train"]), len(digits["test"])) == (1437, 360)
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8, 1)
    np.testing.assert_array_equal(images[..., 0], sk.images)
    np.testing.assert_array_equal(labels, sk.target)
    assert images.min() == 0 and images.max() == 16
    spec = digits["train"].spec
    assert (spec.kind, spec.shape, spec.num_levels, spec.num_dims) == ("image", (8, 8, 1), 17, 64)
    assert digits["train"].splits == ("train", "test")
    np.testing.assert_array_equal(digits["test"][5]["image"][..., 0], sk.images[1437 + 5])


def test_second_digits_load_does_not_rebuild(digits, tfds_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the digits dataset was rebuilt")

    monkeypatch.setattr(SklearnDigits, "_generate_examples", fail)
    again = load("digits", "test", tfds_dir=tfds_dir)
    np.testing.assert_array_equal(again[0]["image"], digits["test"][0]["image"])


def write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if compress else data)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A fake MNIST idx directory: 20 train and 7 test images; one file raw, three gzipped."""
    root = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, (20,)),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (7, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, (7,)),
    }
    for name, array in arrays.items():
        raw = name.startswith("t10k-labels")
        write_idx(root / (name if raw else name + ".gz"), array, compress=not raw)
    return str(root), arrays


def test_read_idx_parses_big_endian_header(tmp_path):
    array = np.arange(3 * 300).reshape(3, 300) % 251
    write_idx(tmp_path / "a.gz", array, compress=True)
    out = read_idx(tmp_path / "a.gz")
    assert out.dtype == np.uint8 and out.shape == (3, 300)  # 300 > 255 needs the 4-byte size
    np.testing.assert_array_equal(out, array)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="header promises"):
        read_idx(tmp_path / "short")


def test_mnist_from_idx_dir(mnist_dir, tfds_dir):
    root, arrays = mnist_dir
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ds = load("mnist", split, data_dir=root, tfds_dir=tfds_dir)
        batch = ds.get_batch(np.arange(len(ds)))
        assert batch["image"].dtype == np.uint8 and batch["image"].shape == (len(ds), 28, 28, 1)
        np.testing.assert_array_equal(batch["image"][..., 0], arrays[f"{prefix}-images-idx3-ubyte"])
        np.testing.assert_array_equal(batch["label"], arrays[f"{prefix}-labels-idx1-ubyte"])
        assert (ds.spec.num_levels, ds.spec.shape, ds.spec.num_dims) == (256, (28, 28, 1), 784)
    binary = load("mnist", "train", data_dir=root, tfds_dir=tfds_dir, binarize=True)
    assert binary.spec.num_levels == 2
    np.testing.assert_array_equal(
        binary.get_batch(np.arange(20))["image"][..., 0], (arrays["train-images-idx3-ubyte"] >= 128).astype(np.uint8)
    )


def test_mnist_missing_files_error_names_them(tmp_path, tfds_dir):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"lacks train-labels-idx1-ubyte\[\.gz\].*shared/data/mnist"):
        load("mnist", "train", data_dir=str(tmp_path), tfds_dir=tfds_dir)


TEXT = "Première ligne.\nSecond line, with more words.\n" * 5


@pytest.fixture(scope="module")
def text_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "input.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def test_text_file_char_and_byte_chunks(text_path):
    vocab = sorted(set(TEXT))
    boundary = int(0.9 * len(TEXT))
    for split, part in (("train", TEXT[:boundary]), ("validation", TEXT[boundary:])):
        ds = load("text_file", split, path=text_path, seq_len=7)
        assert ds.spec.kind == "text" and ds.spec.shape == (7,) and ds.spec.num_levels == len(vocab)
        tokens = ds.get_batch(np.arange(len(ds)))["tokens"]
        assert tokens.dtype == np.int32 and len(ds) == len(part) // 7
        expected = [vocab.index(c) for c in part[: len(ds) * 7]]
        np.testing.assert_array_equal(tokens.reshape(-1), expected)
        assert ds.spec.tokenizer.decode(tokens) == part[: len(ds) * 7]
    data = TEXT.encode("utf-8")
    ds = load("text_file", "validation", path=text_path, tokenizer="byte", seq_len=5)
    part = data[int(0.9 * len(data)) :]
    assert ds.spec.num_levels == 256
    np.testing.assert_array_equal(ds.get_batch(np.arange(len(ds)))["tokens"].reshape(-1), list(part[: len(ds) * 5]))


def test_tiny_shakespeare_data_dir_is_text_file(text_path):
    import os

    a = load("tiny_shakespeare", "train", data_dir=os.path.dirname(text_path), seq_len=9)
    b = load("text_file", "train", path=text_path, seq_len=9)
    np.testing.assert_array_equal(a.get_batch(np.arange(len(a)))["tokens"], b.get_batch(np.arange(len(b)))["tokens"])
    assert a.spec.tokenizer == b.spec.tokenizer and a.splits == ("train", "validation")


def test_standard_tfds_datasets_with_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=6):
        mnist = load("mnist", "train", tfds_dir=str(tmp_path))
        assert len(mnist) == 6 and mnist[0]["image"].shape == (28, 28, 1) and mnist[0]["image"].dtype == np.uint8
        binary = load("mnist", "test", tfds_dir=str(tmp_path), binarize=True)
        raw = tfds.data_source("mnist", split="test", data_dir=str(tmp_path))
        np.testing.assert_array_equal(binary[2]["image"], (raw[2]["image"] >= 128).astype(np.uint8))
        cifar = load("cifar10", "test", tfds_dir=str(tmp_path))
        batch = cifar.get_batch(np.arange(6))
        assert batch["image"].shape == (6, 32, 32, 3) and batch["label"].dtype == np.int32
        assert cifar.spec.num_levels == 256 and cifar.spec.num_dims == 3072
        np.testing.assert_array_equal(batch["image"][4], tfds.data_source("cifar10", split="test", data_dir=str(tmp_path))[4]["image"])

        shakespeare = load("tiny_shakespeare", "validation", tfds_dir=str(tmp_path), seq_len=4)
        source = tfds.data_source("tiny_shakespeare", split="validation", data_dir=str(tmp_path))
        text = "".join(source[i]["text"] for i in range(len(source))).encode("utf-8")
        tokens = shakespeare.get_batch(np.arange(len(shakespeare)))["tokens"]
        assert shakespeare.spec.num_levels == 256 and shakespeare.splits == ("train", "validation", "test")
        np.testing.assert_array_equal(tokens.reshape(-1), list(text[: tokens.size]))
        assert len(shakespeare) == len(text) // 4

        lm1b = load("lm1b", "train", tfds_dir=str(tmp_path), seq_len=8)
        source = tfds.data_source("lm1b", split="train", data_dir=str(tmp_path))
        assert lm1b.spec.num_levels == 257 and lm1b.spec.pad_id == 256
        batch = lm1b.get_batch(np.arange(6))
        for i in range(6):
            sentence = list(source[i]["text"].encode("utf-8"))[:8]
            n = len(sentence)
            np.testing.assert_array_equal(batch["tokens"][i][:n], sentence)
            assert np.all(batch["tokens"][i][n:] == 256)
            np.testing.assert_array_equal(batch["token_mask"][i], np.arange(8) < n)


def test_load_errors_are_clear(tmp_path, text_path, tfds_dir):
    with pytest.raises(ValueError, match="unknown dataset 'mnsit'; known datasets: " + ", ".join(KNOWN_DATASETS)):
        load("mnsit", "train")
    with pytest.raises(ValueError, match="unknown split 'valid'; available splits: train, test"):
        load("digits", "valid", tfds_dir=tfds_dir)
    with pytest.raises(ValueError, match=r"unsupported option\(s\) \['binarise'\]; supported options: binarize"):
        load("mnist", "train", data_dir=str(tmp_path), binarise=True)
    with pytest.raises(ValueError, match="data_dir is not supported"):
        load("digits", "train", data_dir=str(tmp_path), tfds_dir=tfds_dir)
    with pytest.raises(ValueError, match="binarize must be True or False"):
        load("mnist", "train", data_dir=str(tmp_path), binarize="yes")
    with pytest.raises(ValueError, match="pass path="):
        load("text_file", "train")
    with pytest.raises(FileNotFoundError, match="no file at path"):
        load("text_file", "train", path=str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="tokenizer must be 'char' or 'byte'"):
        load("text_file", "train", path=text_path, tokenizer="word")
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        load("text_file", "train", path=text_path, seq_len=0)
    with pytest.raises(ValueError, match="fewer than seq_len"):
        load("text_file", "validation", path=text_path, seq_len=10_000)
    with pytest.raises(FileNotFoundError, match="no input.txt.*shared/data/tiny_shakespeare"):
        load("tiny_shakespeare", "train", data_dir=str(tmp_path))
