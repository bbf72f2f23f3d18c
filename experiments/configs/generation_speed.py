"""Settings of `python -m experiments.generation_speed`: wall time per generated sequence
against its length, for randomly initialised token models of one size (speed does not depend
on the weights).

`get_config(preset)` returns a ConfigDict:
  preset: 'cpu' (a few minutes on 2 cores: L = 64..512) | 'gpu' (L = 64..2048).
  families: the families timed; empty: every registered family that models text. The cpu
    preset times ar, masked, block (b = 4) and block16.
  lengths: sequence lengths L; batch_sizes: sequences per sampler call.
  fixed_steps: the masked sampler's fixed step count; the other setting is T = L (one token
    unmasked per step on average). Families whose sampler ignores the step count (AR: L calls,
    block: L / b blocks of b steps) are timed once.
  vocab_size: tokens of the random models. rounds: timed calls per setting after one compile
    warmup, alternating the order of the settings between rounds; the median is reported.
  model_config: the shared training-config layout (experiments/configs/base.py); only `model`,
    the families' sections and `sample.num_steps` are read.
"""
import ml_collections

from experiments.configs.base import get_base_config

PRESETS = ("cpu", "gpu")


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    cpu = preset == "cpu"
    c = ml_collections.ConfigDict()
    c.preset = preset
    c.families = ("ar", "masked", "block", "block16") if cpu else ()
    c.lengths = (64, 128, 256, 512) if cpu else (64, 128, 256, 512, 1024, 2048)
    c.batch_sizes = (1, 4) if cpu else (1, 32)
    c.fixed_steps = 64
    c.vocab_size = 64
    c.rounds = 3 if cpu else 5
    m = get_base_config("ar", "markov")
    m.model.width, m.model.depth, m.model.num_heads = (64, 2, 4) if cpu else (512, 8, 8)
    c.model_config = m
    c.seed = 0
    return c


def smoke(c) -> ml_collections.ConfigDict:
    """Seconds: a tiny model, two short lengths, two rounds."""
    m = c.model_config
    m.model.width, m.model.depth, m.model.num_heads = 16, 1, 2
    c.families = ("ar", "masked")
    c.lengths, c.batch_sizes = (16, 32), (1, 2)
    c.fixed_steps, c.rounds = 8, 2
    return c
