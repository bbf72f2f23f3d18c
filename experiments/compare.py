"""The main job: exact AR NLL vs diffusion bounds on the same data, in one command.

  python -m experiments.compare                      # digits, 17 levels, offline, ~5 min CPU
  python -m experiments.compare --budget long        # 5000 steps, converged PF-ODE, full VLB (~45 min)
  python -m experiments.compare --dataset mnist --data_dir ../shared/data/mnist [--binarize]
  python -m experiments.compare --dataset text --text_file ../shared/data/tiny_shakespeare/input.txt
  python -m experiments.compare --dataset markov     # known entropy

Trains one model per registered family that models the data (`gen_jax.families`; images: AR,
Gaussian diffusion, masked diffusion; text and markov: AR, masked and block diffusion at b = 4,
1, 16 and L) with the same backbone size, data and budget (`experiments/configs/compare.py`),
then on the held-out split reports every estimator of every family in bits/dim with standard
errors, samples each model with each of its samplers,
times sampling and scores sample quality, and checks itself (report.audit). Writes to --workdir:
results.json, results.md, samples_<family>.png / .txt, training_curves.png, sampling.png,
likelihood_vs_speed.png (each model's NLL or bound against sampling time per dimension), and
each model's training run (checkpoints, metrics) in a subdirectory, which
`python -m experiments.evaluate --workdir <workdir>/<family>` re-evaluates; re-running with the
same workdir reuses the trained models.
"""
import os

from absl import app, flags, logging

from experiments import cli
from experiments.comparison import report
from experiments.comparison.run import run_comparison
from experiments.configs.compare import BUDGETS, DATASETS, get_config, smoke

_DATASET = flags.DEFINE_enum("dataset", "digits", DATASETS, "Data to compare on.")
_BUDGET = flags.DEFINE_enum("budget", "default", BUDGETS, "Named budget (experiments/configs/"
                            "compare.py): training steps and the costly estimators.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "mnist: directory of MNIST idx files.")
_TEXT_FILE = flags.DEFINE_string("text_file", "", "text: a UTF-8 file (character tokens).")
_BINARIZE = flags.DEFINE_bool("binarize", False, "mnist: threshold to 2 levels.")
_WORKDIR = flags.DEFINE_string("workdir", "", "Output directory (default runs/compare_<dataset>).")
_STEPS = flags.DEFINE_integer("steps", 0, "Training steps per model (0: the config's).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of training, evaluation and sampling.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny settings that only exercise the pipeline.")
_FAMILIES = flags.DEFINE_list("families", [], "Families to compare, in order (default: every "
                              "registered family that models the data).")


def build_config():
    cfg = get_config(_DATASET.value, _BUDGET.value)
    m = cfg.model_config
    m.seed = _SEED.value
    if _DATASET.value == "mnist":
        if not _DATA_DIR.value:
            raise app.UsageError("--dataset mnist needs --data_dir, a directory of MNIST idx files "
                                 "(e.g. ../shared/data/mnist)")
        m.data.data_dir = _DATA_DIR.value
        m.data.options.binarize = _BINARIZE.value
    elif _DATA_DIR.value or _BINARIZE.value:
        raise app.UsageError("--data_dir and --binarize apply to --dataset mnist only")
    if _DATASET.value == "text":
        if not _TEXT_FILE.value:
            raise app.UsageError("--dataset text needs --text_file, a UTF-8 text file (e.g. "
                                 "../shared/data/tiny_shakespeare/input.txt)")
        m.data.options.path = _TEXT_FILE.value
    elif _TEXT_FILE.value:
        raise app.UsageError("--text_file applies to --dataset text only")
    cli.set_training_steps(m, _STEPS.value)
    if _FAMILIES.value:
        cfg.families = tuple(_FAMILIES.value)
    if _SMOKE.value:
        smoke(cfg)
    if _BINARIZE.value:
        cfg.description = "binarized MNIST, 28x28, 2 levels"
    return cfg


def main(argv):
    command = cli.start(argv, "experiments.compare")
    logging.set_verbosity(logging.WARNING)
    cfg = build_config()
    workdir = _WORKDIR.value or os.path.join("runs", f"compare_{cfg.dataset}")
    results = run_comparison(cfg, workdir, command)
    print(report.markdown(results))
    failed = cli.print_audit_failures(results)
    num_checks = len(results["audit"])
    if failed:
        verdict = f"{len(failed)} of {num_checks} audit checks FAILED"
    elif num_checks:
        verdict = f"self-audit passed ({num_checks} check{'s' * (num_checks > 1)})"
    else:
        verdict = "self-audit: no check applies to these models and data"
    print(f"[compare] wrote {workdir}/results.json, results.md and plots in "
          f"{results['wall_seconds']:.0f} s; {verdict}")


if __name__ == "__main__":
    app.run(main)
