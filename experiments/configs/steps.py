"""Settings of `python -m experiments.steps`: sample quality against the number of model calls.

`get_config(preset, dataset)` returns a ConfigDict:
  preset: 'cpu' (about 12 min on a 2-core CPU: NFE 4..128) | 'gpu' (NFE 4..1000).
  dataset: 'digits' (offline) | 'mnist' (needs data_dir).
  families: the families trained and swept; empty: every registered family that models the
    images and has a step grid (`experiments.claims.steps.step_fields`).
  nfe: the step counts every grid of every sampler is set to.
  model_config: the training config every family shares (the comparison's, experiments/configs/
    compare.py), one small model per family in the workdir, reused when it is there.
  sampling.num_samples: samples per setting, scored against the held-out split.
  classifier_steps: training steps of the feature classifier of FD / KID.
  elbo_repeats: draws per held-out example of each step-dependent likelihood estimator (the
    masked family's T-step ELBO).
"""
import ml_collections

from experiments.configs.compare import get_config as comparison_config
from gen_jax import families

PRESETS = ("cpu", "gpu")
DATASETS = ("digits", "mnist")


def get_config(preset: str = "cpu", dataset: str = "digits") -> ml_collections.ConfigDict:
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    cpu = preset == "cpu"
    base = comparison_config(dataset, "default" if cpu else "gpu")
    c = ml_collections.ConfigDict()
    c.preset, c.dataset = preset, dataset
    c.families = ()
    c.nfe = (4, 8, 16, 32, 64, 128) if cpu else (4, 8, 16, 32, 64, 128, 256, 512, 1000)
    c.model_config = base.model_config
    c.sampling = ml_collections.ConfigDict()
    c.sampling.num_samples = 256 if cpu else 1000
    c.classifier_steps = 200 if cpu else 1000
    c.elbo_repeats = 1 if cpu else 4
    return c


def smoke(c) -> ml_collections.ConfigDict:
    """Seconds: a tiny model, 10 steps, NFE 4 and 8, few samples."""
    m = c.model_config
    m.model.width, m.model.depth, m.model.num_heads = 16, 1, 2
    m.train.steps, m.optimizer.warmup_steps, m.train.batch_size = 10, 2, 16
    m.eval.max_examples, m.eval.batch_size = 48, 24
    for name in families.names():
        families.get(name).smoke(m)
    c.nfe = (4, 8)
    c.sampling.num_samples = 32
    c.classifier_steps = 20
    return c
