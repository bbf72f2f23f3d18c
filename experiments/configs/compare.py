"""Settings of the main comparison (`python -m experiments.compare`), one per dataset.

`get_config(dataset, budget)` returns a ConfigDict:
  dataset: 'digits' | 'mnist' | 'text' | 'markov'.
  budget: 'default' | 'long' | 'gpu' (`BUDGETS`, applied by `apply_budget`).
  families: the model families trained, in this order; empty: every registered family that
    models the dataset's kind of data (images: ar, gaussian, masked, flow; text: ar, masked).
  model_config: the training config shared by every family (experiments/configs/base.py
    layout; `family` is set per model), so the models share backbone, budget and data. Its
    `eval` section (repeats, max_examples, batch_size) and each family's `eval` / `sample`
    sub-sections configure the estimators and samplers, exactly as `experiments.evaluate` reads
    them from a run.
  sampling: num_samples per sampler setting (also timed: wall time per sample).
  classifier_steps: training steps of the feature classifier (images only).
The digits default fits in about 5 minutes on a 2-core CPU; mnist and text are sized for an
accelerator (on a CPU, lower --steps).

Budgets (`apply_budget`; they change the training length and the costly estimators only):
  default  500 steps per model; PF-ODE at rtol=atol 1e-6 on 24 examples, checked at 1e-7 on 12;
           Ho et al.'s VLB by importance-sampled steps; 4 draws per example of the ELBOs.
  long     5000 steps per model (the diffusion models are far from converged at 500); PF-ODE at
           1e-6 on 120 examples checked at 1e-7 on 24 (PF-ODE SE ~0.03 bits/dim); Ho et al.'s VLB
           as the exact sum over its 1000 steps on 120 examples (no step-sampling noise); 8 draws
           per example of the ELBOs. About 30-60 min on a 2-core CPU (digits).
  gpu      an accelerator: 20000 steps per model, batch 128; PF-ODE on 500 examples checked on
           100; the full VLB on 500; 8 draws. Sized for mnist; digits also runs.
"""
import ml_collections

from experiments.configs.base import get_base_config
from gen_jax import families

DATASETS = ("digits", "mnist", "text", "markov")
BUDGETS = ("default", "long", "gpu")


def _model_config(dataset: str) -> ml_collections.ConfigDict:
    name = {"digits": "digits", "mnist": "mnist", "text": "text_file", "markov": "markov"}[dataset]
    c = get_base_config("ar", name)
    c.logging.progress_bar = False
    c.logging.every_steps = 25
    c.eval.every_steps = 0  # the comparison evaluates once, at the end, with every estimator
    c.sample.every_steps = 0  # ... and samples itself
    c.checkpoint.every_steps = 1000
    c.checkpoint.keep = 1
    c.optimizer.warmup_steps = 50
    c.train.steps = 500
    c.eval.repeats = 4
    c.eval.max_examples = 4000 if dataset == "markov" else 0
    c.eval.batch_size = 120 if dataset == "digits" else 100
    if dataset == "digits":
        # 17 levels: bins of width 2/17, so the VDM schedule need not go below sigma ~ 0.018
        # (logSNR 8, a sixth of a bin); 13.3 (VDM's value for 256 levels) wastes the model on
        # resolving noise far smaller than a bin.
        c.gaussian.logsnr_max = 8.0
        c.flow.eval.t_min = 0.018  # the flow path's time of logSNR 8 (sigma = 0.018)
        c.optimizer.learning_rate = 2e-3
    elif dataset == "mnist":
        c.model.width, c.model.depth, c.model.num_heads = 128, 4, 4
        c.model.patch_size = 2
        c.train.steps, c.train.batch_size = 3000, 64
    elif dataset == "text":
        c.data.eval_split = "validation"
        c.data.options.seq_len = 128
        c.model.width, c.model.depth, c.model.num_heads = 128, 4, 4
        c.train.steps, c.train.batch_size = 2000, 32
    else:  # markov: 8 symbols, sequences of 32
        c.data.options.num_examples = 20000  # per split; 2000 x 64 sequences: no repeats to overfit
        c.train.steps = 2000
    return c


def apply_budget(cfg, budget: str) -> ml_collections.ConfigDict:
    """Set training length and the costly estimators of `cfg` to a named budget (`BUDGETS`)."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    m = cfg.model_config
    g = m.gaussian.eval if "gaussian" in m else None
    if budget == "default":
        if g is not None:
            g.ode_examples, g.ode_check_examples = 24, 12
        return cfg
    m.train.steps = 5000 if budget == "long" else 20000
    m.eval.repeats = 8
    m.checkpoint.every_steps = 2500
    if budget == "gpu":
        m.train.batch_size = 128
    if g is not None:
        n = 120 if budget == "long" else 500
        g.ode_examples, g.ode_check_examples = n, 24 if budget == "long" else 100
        g.vlb_full, g.vlb_full_examples = True, n
    return cfg


def get_config(dataset: str = "digits", budget: str = "default") -> ml_collections.ConfigDict:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    c = ml_collections.ConfigDict()
    c.dataset = dataset
    # Images: the three families the 5-minute default is sized for (add flow with
    # --families=ar,gaussian,masked,flow); text and markov: every family that models tokens.
    c.families = ("ar", "gaussian", "masked") if dataset == "digits" else ()
    c.model_config = _model_config(dataset)
    c.sampling = ml_collections.ConfigDict()
    c.sampling.num_samples = 256 if dataset == "digits" else 100
    c.classifier_steps = 200
    c.budget = budget
    return apply_budget(c, budget)


def smoke(cfg) -> ml_collections.ConfigDict:
    """Tiny settings that only exercise the pipeline (seconds per model, for tests and CI)."""
    m = cfg.model_config
    m.train.steps, m.optimizer.warmup_steps = min(m.train.steps, 20), 5
    m.train.batch_size = 16
    m.eval.repeats, m.eval.max_examples, m.eval.batch_size = 2, 48, 24
    m.sample.num_steps = 8
    for name in families.names():
        if name in m:
            families.get(name).smoke(m)
    cfg.sampling.num_samples = 24
    cfg.classifier_steps = 30
    return cfg
