"""ar model on MNIST (see mnist.py and base.py)."""
from experiments.configs.mnist import get_mnist_config


def get_config():
    return get_mnist_config("ar")
