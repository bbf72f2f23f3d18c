"""block-diffusion model (BD3-LM, b = 16) on Tiny Shakespeare characters (see shakespeare.py and
base.py). Other block sizes: --config.block.block_size=4 (0: the whole sequence)."""
from experiments.configs.shakespeare import get_shakespeare_config


def get_config():
    c = get_shakespeare_config("block")
    c.block.block_size = 16
    return c
