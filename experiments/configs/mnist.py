"""Shared MNIST settings (28x28, 256 levels) for the three families: a GPU-sized run.

Offline, read the idx files through data_dir, e.g.
  --config.data.data_dir=../shared/data/mnist
(empty: the tfds 'mnist' dataset from tfds_dir / the internet).
"""
from experiments.configs.base import get_base_config


def get_mnist_config(family: str):
    c = get_base_config(family, "mnist")
    c.model.width = 256
    c.model.depth = 6
    c.model.num_heads = 8
    c.train.steps = 20000
    c.train.batch_size = 128
    c.optimizer.learning_rate = 3e-4
    c.optimizer.warmup_steps = 1000
    c.checkpoint.every_steps = 2000
    c.logging.every_steps = 100
    c.eval.every_steps = 2000
    c.eval.batch_size = 500
    c.sample.every_steps = 5000
    c.sample.num_samples = 64
    c.sample.num_steps = 256
    return c
