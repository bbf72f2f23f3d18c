"""Every estimator of a trained run's family on its held-out split, in one command.

  python -m experiments.evaluate --workdir runs/ar                 # a run of experiments.train
  python -m experiments.evaluate --workdir runs/compare_digits/gaussian --repeats 8

Reads the config stored with the run's latest checkpoint, restores its parameters (the EMA when
`eval.use_ema`), and reports each estimator of the family (`gen_jax.families`) in bits/dim with
standard errors over held-out examples and NFE, in the table format of `experiments.compare`,
with the same self-audit. For the same parameters it reproduces compare's numbers (same
examples, batches, keys and mesh). Writes evaluation.json and evaluation.md into the workdir.
"""
from absl import app, flags, logging

from experiments import cli
from experiments.comparison import report
from experiments.comparison.evaluation import evaluate_run

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by experiments.train "
                               "(or a model's subdirectory of an experiments.compare run).")
_REPEATS = flags.DEFINE_integer("repeats", 0, "Draws per repeated estimator (0: the run's "
                                "eval.repeats).")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", -1, "Held-out examples (0: all; -1: the "
                                     "run's eval.max_examples).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    command = cli.start(argv, "experiments.evaluate")
    logging.set_verbosity(logging.WARNING)
    try:
        results = evaluate_run(_WORKDIR.value, repeats=_REPEATS.value,
                               max_examples=_MAX_EXAMPLES.value, command=command)
    except ValueError as e:
        raise SystemExit(f"evaluate: {e}") from None
    print(report.markdown(results))
    cli.print_audit_failures(results)


if __name__ == "__main__":
    app.run(main)
