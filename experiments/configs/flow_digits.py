"""flow-matching model on scikit-learn digits (8x8, 17 levels; offline, no files needed). Sizes
shared with the other families through base.py, so the digits models match."""
from experiments.configs.base import get_base_config


def get_config():
    return get_base_config("flow", "digits")
