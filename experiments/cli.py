"""What every experiment CLI shares: the --family_modules flag, parsing of integer-list flags
(errors name the flag), the training-length override and the command line written into each
report."""
import importlib
import shlex
import sys

from absl import app, flags

FAMILY_MODULES = flags.DEFINE_list("family_modules", [], "Python modules to import first, e.g. "
                                   "your own package registering more families.")


def start(argv, module: str) -> str:
    """Refuse positional arguments, import --family_modules; returns the command line as typed
    ("python -m <module> <flags>"), for the report."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for name in FAMILY_MODULES.value:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise app.UsageError(f"--family_modules: cannot import {name!r}: {e}") from None
    return f"python -m {module} " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def positive_ints(holder) -> tuple:
    """The values of a list flag (its absl FlagHolder) as positive ints, or a UsageError naming
    it: `--nfe: 'x' is not a positive integer`."""
    out = []
    for v in holder.value:
        try:
            n = int(v)
        except ValueError:
            n = 0
        if n <= 0 or str(n) != str(v).strip():
            raise app.UsageError(f"--{holder.name}: {v!r} is not a positive integer")
        out.append(n)
    return tuple(out)


def set_training_steps(model_config, steps: int) -> None:
    """--steps: train every model `steps` steps (warmup no longer than that)."""
    if steps < 0:
        raise app.UsageError(f"--steps must be >= 0 (0: the config's), got {steps}")
    if steps:
        model_config.train.steps = steps
        model_config.optimizer.warmup_steps = min(model_config.optimizer.warmup_steps, steps)


def print_audit_failures(results: dict) -> list:
    """Print each failed self-audit check of a report to stderr; returns them."""
    failed = [c for c in results["audit"] if not c["holds"]]
    for c in failed:
        print(f"\n!!! SELF-AUDIT FAILED: {c['check']}\n!!! {c['detail']}", file=sys.stderr)
    return failed
