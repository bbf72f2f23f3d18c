"""ar model on Tiny Shakespeare characters (see shakespeare.py and base.py)."""
from experiments.configs.shakespeare import get_shakespeare_config


def get_config():
    return get_shakespeare_config("ar")
