"""Base class and build helper for this package's tfds builders (array_record, no TensorFlow)."""
from __future__ import annotations

import abc

import tensorflow_datasets as tfds
from etils import epath


class LocalBuilder(tfds.core.GeneratorBasedBuilder, abc.ABC):
    """GeneratorBasedBuilder for data generated locally (nothing to download).

    `code_path` is overridden to this class's file: tfds 4.9.10 otherwise imports
    `importlib_resources`, which it declares as a dependency only for Python < 3.9
    (tensorflow/datasets issue #11212), and fails while preparing.
    """

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        import inspect

        return epath.Path(inspect.getfile(cls))


def prepared_builder(builder_cls, tfds_dir: str | None, config=None) -> tfds.core.DatasetBuilder:
    """Instantiate `builder_cls` under `tfds_dir` and build it as array_record unless already built.

    A second call with the same tfds_dir (and config) finds the prepared files and does not
    rebuild. tfds_dir None means tfds's default ($TFDS_DATA_DIR or ~/tensorflow_datasets).
    """
    kwargs = {} if config is None else {"config": config}
    builder = builder_cls(data_dir=tfds_dir, file_format="array_record", **kwargs)
    if not builder.is_prepared():
        builder.download_and_prepare()
    return builder
