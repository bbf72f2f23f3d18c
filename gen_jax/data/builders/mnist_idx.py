"""tfds builder for MNIST read from a local directory of idx files (gzip or raw).

The directory holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte, each optionally with '.gz'. Splits: 'train' (60000) and 'test'
(10000), in file order (tfds shuffling disabled). The builder config is named after a sha256
of the source files, so a different directory's contents are built separately and never
served from a stale build.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds

from gen_jax.data.builders.local_builder import LocalBuilder
from gen_jax.data.idx import read_idx

SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def idx_file_names(split: str) -> tuple[str, str]:
    """(images, labels) base names of a split's idx files, without '.gz'."""
    prefix = SPLIT_PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def find_idx_files(source_dir: str) -> dict[str, str]:
    """Base name -> existing path (the '.gz' file if present, else the raw one) for every file
    that exists in source_dir; names that are missing are absent from the result."""
    found = {}
    for split in SPLIT_PREFIX:
        for name in idx_file_names(split):
            for candidate in (name + ".gz", name):
                path = os.path.join(source_dir, candidate)
                if os.path.isfile(path):
                    found[name] = path
                    break
    return found


@dataclasses.dataclass
class MnistIdxConfig(tfds.core.BuilderConfig):
    """A build of the idx files in `source_dir`; name it with `mnist_idx_config`."""

    source_dir: str = ""


def mnist_idx_config(source_dir: str, files: dict[str, str]) -> MnistIdxConfig:
    """Config named 'sha_<12 hex>' after the contents of the given idx files."""
    digest = hashlib.sha256()
    for name in sorted(files):
        with open(files[name], "rb") as f:
            digest.update(name.encode() + f.read())
    return MnistIdxConfig(name=f"sha_{digest.hexdigest()[:12]}", source_dir=source_dir)


class MnistIdx(LocalBuilder):
    """MNIST from local idx files: {'image': uint8 (28, 28, 1) 0..255, 'label': int32}."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "MNIST from idx files, file order."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                "label": tfds.features.Tensor(shape=(), dtype=np.int32),
            }),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        files = find_idx_files(self.builder_config.source_dir)
        return {split: self._generate_examples(files, split) for split in SPLIT_PREFIX}

    def _generate_examples(self, files, split):
        images_name, labels_name = idx_file_names(split)
        images = read_idx(files[images_name])
        labels = read_idx(files[labels_name])
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise ValueError(f"{files[images_name]}: expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"{files[labels_name]}: {labels.shape[0]} labels for {images.shape[0]} images")
        for i in range(images.shape[0]):
            yield i, {"image": images[i][..., None], "label": np.int32(labels[i])}
