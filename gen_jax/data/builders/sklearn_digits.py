"""tfds builder for scikit-learn's bundled 8x8 digits (1797 images, 17 levels 0..16).

The offline default dataset: it ships with scikit-learn, so building needs no download.
Split (fixed, unshuffled, sklearn order): train = the first 1437 images, test = the last 360
(~20%). Examples are stored in that order (tfds shuffling disabled).
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from gen_jax.data.builders.local_builder import LocalBuilder

NUM_TRAIN = 1437
NUM_LEVELS = 17


def sklearn_digits_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 8, 8, 1) with levels 0..16, labels int32 (N,)) of one split, in sklearn order."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    rows = slice(0, NUM_TRAIN) if split == "train" else slice(NUM_TRAIN, None)
    return images[rows], labels[rows]


class SklearnDigits(LocalBuilder):
    """scikit-learn digits as a tfds dataset with splits 'train' and 'test'."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "sklearn digits, train = first 1437, test = last 360."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                "label": tfds.features.Tensor(shape=(), dtype=np.int32),
            }),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split):
        images, labels = sklearn_digits_arrays(split)
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image, "label": label}
