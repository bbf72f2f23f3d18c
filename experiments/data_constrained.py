"""Data-constrained training: AR vs masked (and block) diffusion on a fixed budget of unique
tokens, trained for many epochs (Prabhudesai et al. 2025, "Diffusion Beats Autoregressive in
Data-Constrained Settings", at a small scale).

  python -m experiments.data_constrained                   # Markov chain, cpu preset (~20 min)
  python -m experiments.data_constrained --text_file ../shared/data/tiny_shakespeare/input.txt
  python -m experiments.data_constrained --preset gpu
  python -m experiments.data_constrained --smoke           # seconds (CI)

Budgets, families, model and steps: experiments/configs/data_constrained.py. Every family trains
the same steps and batch on each budget, so epochs = steps * batch * seq_len / unique tokens.
Writes to --workdir (default runs/data_constrained): results.json, results.md,
validation_vs_epochs.png, best_vs_flops.png and each run (runs/<tokens>/<family>); re-running
with the same workdir and settings reuses the finished runs.
"""
import os

from absl import app, flags, logging

from experiments import cli
from experiments.claims.data_constrained import run_data_constrained
from experiments.configs.data_constrained import PRESETS, get_config, smoke

_PRESET = flags.DEFINE_enum("preset", "cpu", PRESETS, "Named size (cpu: ~20 min on 2 cores).")
_TEXT_FILE = flags.DEFINE_string("text_file", "", "A UTF-8 file (character tokens) instead of "
                                 "the Markov chain, e.g. Tiny Shakespeare's input.txt.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/data_constrained", "Output directory.")
_UNIQUE = flags.DEFINE_list("unique_tokens", [], "Budgets of unique tokens (default: the "
                            "preset's); multiples of seq_len * batch_size.")
_STEPS = flags.DEFINE_integer("steps", 0, "Training steps of every run (0: the preset's).")
_FAMILIES = flags.DEFINE_list("families", [], "Families (default: the preset's).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of data order, init and training keys.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny settings that only exercise the pipeline.")


def build_config():
    if _TEXT_FILE.value and not os.path.exists(_TEXT_FILE.value):
        raise app.UsageError(f"--text_file: no file at {_TEXT_FILE.value!r}")
    cfg = get_config(_PRESET.value, _TEXT_FILE.value)
    if _SMOKE.value:
        smoke(cfg)
    m = cfg.model_config
    m.seed = _SEED.value
    cli.set_training_steps(m, _STEPS.value)
    if _STEPS.value:
        m.checkpoint.every_steps = _STEPS.value
    if _UNIQUE.value:
        cfg.unique_tokens = cli.positive_ints(_UNIQUE)
        if m.data.name == "markov":
            m.data.options.num_examples = max(max(cfg.unique_tokens) // m.data.options.seq_len,
                                              cfg.eval_examples)
    if _FAMILIES.value:
        cfg.families = tuple(_FAMILIES.value)
    return cfg


def main(argv):
    command = cli.start(argv, "experiments.data_constrained")
    logging.set_verbosity(logging.WARNING)
    results = run_data_constrained(build_config(), _WORKDIR.value, command)
    print("\n".join(results["reading"]))
    print(f"[data_constrained] wrote {_WORKDIR.value}/results.json, results.md and plots in "
          f"{results['wall_seconds']:.0f} s")


if __name__ == "__main__":
    app.run(main)
