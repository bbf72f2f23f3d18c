"""Train one model from a config file: a thin CLI over `gen_jax.train.loop.train`.

  python -m experiments.train --config experiments/configs/ar_digits.py --workdir runs/ar \
      --config.train.steps=200

Any config field can be overridden with --config.<path>=<value>. Re-running with the same
workdir resumes from its latest good checkpoint. Exit code 1 with a message when the config is
invalid, does not match the checkpoint or its data, no checkpoint can be restored, or training
diverged.
"""
from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax.train.checkpoint import CheckpointError
from gen_jax.train.config import validate_config
from gen_jax.train.loop import DivergenceError, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file in experiments/configs.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, samples).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    try:
        validate_config(_CONFIG.value)
    except ValueError as e:
        raise SystemExit(f"invalid config: {e}") from None
    try:
        result = train(_CONFIG.value, _WORKDIR.value)
    except DivergenceError as e:
        raise SystemExit(f"error: {e}") from None
    except CheckpointError as e:
        raise SystemExit(f"cannot resume: {e}") from None
    except ValueError as e:  # config / data mismatch on resume, bad data files
        raise SystemExit(f"error: {e}") from None
    if result.final_eval is not None:
        print(f"final eval: {result.final_eval['bits_per_dim']:.4f} bits/dim "
              f"({result.final_eval['num_examples']} examples) at step {result.final_eval['step']}")


if __name__ == "__main__":
    app.run(main)
