"""Diminishing returns in solver steps: sample quality against NFE for every sampler of every
family with a step grid (gaussian: DDPM, DDIM, DPM-Solver++(2M); flow: Euler, Heun,
DPM-Solver++(2M); masked: T-step ancestral, and its T-step ELBO against T).

  python -m experiments.steps                           # digits, NFE 4..128 (~12 min CPU)
  python -m experiments.steps --preset gpu              # NFE 4..1000
  python -m experiments.steps --dataset mnist --data_dir ../shared/data/mnist
  python -m experiments.steps --smoke                   # seconds (CI)

Settings: experiments/configs/steps.py. Writes to --workdir (default runs/steps): results.json,
results.md, quality_vs_nfe.png, elbo_vs_steps.png and one trained model per family (reused when
the workdir already holds it).
"""
from absl import app, flags, logging

from experiments import cli
from experiments.claims.steps import run_steps
from experiments.configs.steps import DATASETS, PRESETS, get_config, smoke

_PRESET = flags.DEFINE_enum("preset", "cpu", PRESETS, "Named size (cpu: NFE up to 128).")
_DATASET = flags.DEFINE_enum("dataset", "digits", DATASETS, "Images to model.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "mnist: directory of MNIST idx files.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/steps", "Output directory.")
_NFE = flags.DEFINE_list("nfe", [], "Step counts (default: the preset's).")
_STEPS = flags.DEFINE_integer("steps", 0, "Training steps per model (0: the preset's).")
_FAMILIES = flags.DEFINE_list("families", [], "Families (default: every image family with a "
                              "step grid).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of training, sampling and evaluation.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny settings that only exercise the pipeline.")


def build_config():
    cfg = get_config(_PRESET.value, _DATASET.value)
    if _DATASET.value == "mnist":
        if not _DATA_DIR.value:
            raise app.UsageError("--dataset mnist needs --data_dir (e.g. ../shared/data/mnist)")
        cfg.model_config.data.data_dir = _DATA_DIR.value
    elif _DATA_DIR.value:
        raise app.UsageError("--data_dir applies to --dataset mnist only")
    if _SMOKE.value:
        smoke(cfg)
    m = cfg.model_config
    m.seed = _SEED.value
    cli.set_training_steps(m, _STEPS.value)
    if _NFE.value:
        cfg.nfe = cli.positive_ints(_NFE)
    if _FAMILIES.value:
        cfg.families = tuple(_FAMILIES.value)
    return cfg


def main(argv):
    command = cli.start(argv, "experiments.steps")
    logging.set_verbosity(logging.WARNING)
    results = run_steps(build_config(), _WORKDIR.value, command)
    print("\n".join(results["reading"]))
    print(f"[steps] wrote {_WORKDIR.value}/results.json, results.md and plots in "
          f"{results['wall_seconds']:.0f} s")


if __name__ == "__main__":
    app.run(main)
