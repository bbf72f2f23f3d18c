"""Every estimator of a trained run's family on its held-out split, in one command.

  python -m experiments.evaluate --workdir runs/ar                 # a run of experiments.train
  python -m experiments.evaluate --workdir runs/compare_digits/gaussian --repeats 8

Reads the config stored with the run's latest checkpoint, restores its parameters (the EMA when
`eval.use_ema`), and reports each estimator of the family (`gen_jax.families`) in bits/dim with
standard errors over held-out examples and NFE, in the table format of `experiments.compare`,
with the same self-audit. For the same parameters it reproduces compare's numbers (same
examples, batches, keys and mesh). Writes evaluation.json and evaluation.md into the workdir.
"""
import importlib
import shlex
import sys

from absl import app, flags, logging

from experiments.comparison import report
from experiments.comparison.evaluation import evaluate_run

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by experiments.train "
                               "(or a model's subdirectory of an experiments.compare run).")
_REPEATS = flags.DEFINE_integer("repeats", 0, "Draws per repeated estimator (0: the run's "
                                "eval.repeats).")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", -1, "Held-out examples (0: all; -1: the "
                                     "run's eval.max_examples).")
_FAMILY_MODULES = flags.DEFINE_list("family_modules", [], "Python modules to import first, "
                                    "e.g. your own package registering more families.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    for module in _FAMILY_MODULES.value:
        importlib.import_module(module)
    command = "python -m experiments.evaluate " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        results = evaluate_run(_WORKDIR.value, repeats=_REPEATS.value,
                               max_examples=_MAX_EXAMPLES.value, command=command)
    except ValueError as e:
        raise SystemExit(f"evaluate: {e}") from None
    print(report.markdown(results))
    failed = [c for c in results["audit"] if not c["holds"]]
    for c in failed:
        print(f"\n!!! SELF-AUDIT FAILED: {c['check']}\n!!! {c['detail']}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
