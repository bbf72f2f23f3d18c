"""Settings of `python -m experiments.data_constrained` (Prabhudesai et al. 2025's question at a
scale this repo can run): a fixed number of unique training tokens, repeated for many epochs.

`get_config(preset, text_file)` returns a ConfigDict:
  preset: 'cpu' (about 20 min on a 2-core CPU) | 'gpu' (an accelerator).
  families: the families trained, in order; empty: every registered family that models text.
    The cpu preset trains ar, masked and block (b = 4); block1 (b = 1) is an AR model and
    blockL (b = L) a masked one, so they add time, not a new point.
  unique_tokens: the budgets of unique training tokens; each must be a multiple of
    seq_len * batch_size, so an epoch is a whole number of steps and every token is seen once
    per epoch (`epoch_accounting.check_budget`).
  eval_examples: held-out sequences of the validation curve (the first ones of the eval split).
  model_config: the training config every family shares (experiments/configs/base.py layout):
    same backbone, batch, steps (so every run has the same compute per family), learning rate.
    Validation every `eval.every_steps` with the raw parameters (no EMA: an EMA of 0.999 would lag
    the curve by ~1000 steps).
Data: the order-2 Markov chain (8 symbols, sequences of 32, known entropy) or, with text_file,
the characters of that file (e.g. Tiny Shakespeare) in chunks of seq_len.
"""
import ml_collections

from experiments.configs.base import get_base_config

PRESETS = ("cpu", "gpu")


def get_config(preset: str = "cpu", text_file: str = "") -> ml_collections.ConfigDict:
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    cpu = preset == "cpu"
    m = get_base_config("ar", "text_file" if text_file else "markov")
    if text_file:
        m.data.options.path = text_file
        m.data.eval_split = "validation"
        m.data.options.seq_len = 64 if cpu else 256
    else:
        m.data.options.seq_len = 32
    m.model.width, m.model.depth, m.model.num_heads = (64, 2, 4) if cpu else (256, 6, 8)
    m.train.steps = 1000 if cpu else 20000
    m.train.batch_size = 64 if cpu else 256
    m.optimizer.learning_rate = 1e-3 if cpu else 5e-4
    m.optimizer.warmup_steps = 50 if cpu else 500
    m.eval.every_steps = 50 if cpu else 500
    m.eval.batch_size = 250
    m.eval.use_ema = False
    m.logging.every_steps = 50
    m.logging.progress_bar = False
    m.logging.tensorboard = False
    m.checkpoint.every_steps = m.train.steps
    m.checkpoint.keep = 1
    m.sample.every_steps = 0

    c = ml_collections.ConfigDict()
    c.preset = preset
    c.families = ("ar", "masked", "block") if cpu else ()
    tokens_per_batch = m.data.options.seq_len * m.train.batch_size
    c.unique_tokens = tuple(tokens_per_batch * n for n in ((16, 64, 256) if cpu else (8, 64, 512)))
    c.eval_examples = 1000 if cpu else 4000
    c.model_config = m
    largest = max(c.unique_tokens) // m.data.options.seq_len
    if not text_file:  # per split: the train split must hold the largest budget
        m.data.options.num_examples = max(largest, c.eval_examples)
    return c


def smoke(c) -> ml_collections.ConfigDict:
    """Seconds: a tiny model, 8 steps, two budgets of 2 and 4 batches."""
    m = c.model_config
    m.model.width, m.model.depth, m.model.num_heads = 16, 1, 2
    m.train.steps, m.train.batch_size = 8, 8
    m.optimizer.warmup_steps = 2
    m.eval.every_steps, m.eval.batch_size = 4, 32
    m.logging.every_steps = 4
    m.checkpoint.every_steps = 8
    tokens_per_batch = m.data.options.seq_len * m.train.batch_size
    c.unique_tokens = (2 * tokens_per_batch, 4 * tokens_per_batch)
    c.eval_examples = 32
    if m.data.name == "markov":
        m.data.options.num_examples = 64
    return c
