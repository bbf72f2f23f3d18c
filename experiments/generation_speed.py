"""Serial vs parallel generation: wall time per sequence against its length L for AR with a KV
cache (L serial calls), masked diffusion at a fixed number of steps and at T = L, and block
diffusion (L / b blocks, KV cache), at batch 1 and batched, on randomly initialised models of one
size (speed does not depend on training).

  python -m experiments.generation_speed                 # L = 64..512, ~5 min on 2 CPU cores
  python -m experiments.generation_speed --preset gpu    # L = 64..2048
  python -m experiments.generation_speed --smoke         # seconds (CI)

Settings: experiments/configs/generation_speed.py. Writes to --workdir (default
runs/generation_speed): results.json, results.md, seconds_vs_length_batch<B>.png.
"""
from absl import app, flags, logging

from experiments import cli
from experiments.claims.generation_speed import run_generation_speed
from experiments.configs.generation_speed import PRESETS, get_config, smoke

_PRESET = flags.DEFINE_enum("preset", "cpu", PRESETS, "Named size (cpu: L up to 512).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/generation_speed", "Output directory.")
_LENGTHS = flags.DEFINE_list("lengths", [], "Sequence lengths (default: the preset's).")
_BATCHES = flags.DEFINE_list("batch_sizes", [], "Batch sizes (default: the preset's).")
_FAMILIES = flags.DEFINE_list("families", [], "Families (default: the preset's).")
_ROUNDS = flags.DEFINE_integer("rounds", 0, "Timed rounds per setting (0: the preset's).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random weights and the samplers.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny settings that only exercise the pipeline.")


def build_config():
    cfg = get_config(_PRESET.value)
    if _SMOKE.value:
        smoke(cfg)
    cfg.seed = _SEED.value
    if _LENGTHS.value:
        cfg.lengths = cli.positive_ints(_LENGTHS)
    if _BATCHES.value:
        cfg.batch_sizes = cli.positive_ints(_BATCHES)
    if _FAMILIES.value:
        cfg.families = tuple(_FAMILIES.value)
    if _ROUNDS.value:
        cfg.rounds = _ROUNDS.value
    return cfg


def main(argv):
    command = cli.start(argv, "experiments.generation_speed")
    logging.set_verbosity(logging.WARNING)
    results = run_generation_speed(build_config(), _WORKDIR.value, command)
    print("\n".join(results["reading"]))
    print(f"[generation_speed] wrote {_WORKDIR.value}/results.json, results.md and plots in "
          f"{results['wall_seconds']:.0f} s")


if __name__ == "__main__":
    app.run(main)
