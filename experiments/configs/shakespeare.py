"""Shared Tiny Shakespeare (character level, context 256) settings, sized like nanoGPT's baby
GPT (6 layers, 6 heads, width 384). Offline, read input.txt through data_dir, e.g.
  --config.data.data_dir=../shared/data/tiny_shakespeare
(empty: the tfds 'tiny_shakespeare' dataset, byte tokenizer).
"""
from experiments.configs.base import get_base_config


def get_shakespeare_config(family: str):
    c = get_base_config(family, "tiny_shakespeare")
    c.data.eval_split = "validation"
    c.data.options.seq_len = 256
    c.model.width = 384
    c.model.depth = 6
    c.model.num_heads = 6
    c.train.steps = 5000
    c.train.batch_size = 64
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 100
    c.checkpoint.every_steps = 1000
    c.logging.every_steps = 100
    c.eval.every_steps = 1000
    c.eval.batch_size = 64
    c.sample.every_steps = 1000
    c.sample.num_samples = 4
    c.sample.num_steps = 256
    return c
