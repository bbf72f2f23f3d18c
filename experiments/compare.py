"""The main job: exact AR NLL vs diffusion bounds on the same data, in one command.

  python -m experiments.compare                      # digits, 17 levels, offline, ~5 min CPU
  python -m experiments.compare --dataset mnist --data_dir ../shared/data/mnist [--binarize]
  python -m experiments.compare --dataset text --text_file ../shared/data/tiny_shakespeare/input.txt
  python -m experiments.compare --dataset markov     # known entropy

Trains one model per family (AR, Gaussian diffusion, masked diffusion; text: AR and masked)
with the same backbone size, data and budget (`experiments/configs/compare.py`), then on the
held-out split reports every likelihood in bits/dim with standard errors, samples each model,
times sampling and scores sample quality, and checks itself (report.audit). Writes to
--workdir: results.json, results.md, samples_*.png / .txt, training_curves.png,
sampling.png, and each model's training run (checkpoints, metrics) in a subdirectory;
re-running with the same workdir reuses the trained models.
"""
import os
import shlex
import sys
import time

import jax
import numpy as np
from absl import app, flags, logging

from experiments.comparison import likelihoods as lik
from experiments.comparison import report
from experiments.comparison import sampling
from experiments.configs.compare import DATASETS, get_config
from gen_jax import data as data_lib
from gen_jax.eval import train_classifier
from gen_jax.train import loop
from gen_jax.train.config import validate_config
from gen_jax.train.families import build_components, load_split
from gen_jax.train.objectives import gaussian_process

_DATASET = flags.DEFINE_enum("dataset", "digits", DATASETS, "Data to compare on.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "mnist: directory of MNIST idx files.")
_TEXT_FILE = flags.DEFINE_string("text_file", "", "text: a UTF-8 file (character tokens).")
_BINARIZE = flags.DEFINE_bool("binarize", False, "mnist: threshold to 2 levels.")
_WORKDIR = flags.DEFINE_string("workdir", "", "Output directory (default runs/compare_<dataset>).")
_STEPS = flags.DEFINE_integer("steps", 0, "Training steps per model (0: the config's).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of training, evaluation and sampling.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny settings that only exercise the pipeline.")

DESCRIPTIONS = {
    "digits": "scikit-learn digits, 8x8, 17 levels",
    "mnist": "MNIST, 28x28, 256 levels",
    "text": "characters of a text file",
    "markov": "order-2 Markov chain over 8 symbols, sequences of 32",
}


def build_config():
    cfg = get_config(_DATASET.value)
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
    if _STEPS.value:
        m.train.steps = _STEPS.value
        m.optimizer.warmup_steps = min(m.optimizer.warmup_steps, _STEPS.value)
    m.sample.num_steps = cfg.sampling.masked_steps
    if _SMOKE.value:
        m.train.steps, m.optimizer.warmup_steps = min(m.train.steps, 20), 5
        m.train.batch_size = 16
        cfg.eval.repeats, cfg.eval.max_examples, cfg.eval.batch_size = 2, 48, 24
        cfg.eval.vlb_steps, cfg.eval.ode_examples, cfg.eval.ode_tolerance = 100, 24, 1e-3
        cfg.eval.ode_check_examples = 12
        cfg.sampling.num_samples, cfg.sampling.nfe = 24, (4, 8)
        cfg.sampling.ode_tolerances = (1e-1,)
        cfg.sampling.masked_steps = m.sample.num_steps = 8
        cfg.classifier_steps = 30
    return cfg


def train_models(cfg, workdir):
    """family -> dict(config, components, params (EMA), history, seconds)."""
    models = {}
    for family in cfg.families:
        config = cfg.model_config.copy_and_resolve_references()
        config.family = family
        validate_config(config)
        components = build_components(config)
        print(f"[compare] training {family} ({count_params_tree(components.params):,} parameters, "
              f"{config.train.steps} steps)", flush=True)
        start = time.perf_counter()
        result = loop.run(config, os.path.join(workdir, family), components, validate=False)
        process = (gaussian_process(config.objective.logsnr_min, config.objective.logsnr_max)
                   if family == "gaussian" else None)
        models[family] = dict(config=config, components=components, result=result,
                              params=result.state.ema_params, process=process,
                              seconds=time.perf_counter() - start)
    return models


def count_params_tree(params) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def evaluate_likelihoods(cfg, models, data, indices, key):
    """Every estimator of every model on the same held-out examples -> list of lik.Estimate."""
    estimates = []
    e = cfg.eval

    def add(name, family, kind, fn, rows, repeats):
        m = models[family]
        values, nfe = lik.per_example(fn, m["params"], data, rows, e.batch_size,
                                      jax.random.fold_in(key, len(estimates)), repeats)
        estimates.append(lik.Estimate(name, family, kind, values, rows,
                                      None if nfe is None else float(nfe.mean())))
        print(f"[compare] {family:8s} {name:34s} {values.mean():.4f} bits/dim", flush=True)

    for family, m in models.items():
        c, spec = m["components"], m["components"].spec
        nll = lik.from_nll(c.nll_fn, spec.num_dims)
        if family == "ar":
            add("exact NLL", family, "exact", nll, indices, 1)
        elif family == "gaussian":
            process = m["process"]
            prediction = m["config"].objective.prediction
            add("continuous-time ELBO (VDM)", family, "upper bound", nll, indices, e.repeats)
            add(f"{e.vlb_steps}-step ELBO (VDM)", family, "upper bound",
                lik.from_nll(lik.vdm_discrete_elbo(c.apply_fn, process, prediction, spec.num_levels,
                                                   e.vlb_steps), spec.num_dims),
                indices, e.repeats)
            add(f"discrete-time VLB (Ho et al., N={e.vlb_steps})", family, "upper bound",
                lik.discrete_vlb(c.apply_fn, process, prediction, spec.num_levels, spec.num_dims, e.vlb_steps),
                indices, e.repeats)
            for tol, rows in ((e.ode_tolerance, indices[:e.ode_examples]),
                              (10 * e.ode_tolerance, indices[:e.ode_check_examples])):
                add(f"PF-ODE NLL (rtol=atol={tol:g})", family, "upper bound",
                    lik.pf_ode(c.apply_fn, process, prediction, spec.num_levels, tolerance=tol,
                               t_min=e.ode_t_min, probe=e.ode_probe), rows, 1)
        else:
            add("continuous-time ELBO (MD4)", family, "upper bound", nll, indices, e.repeats)
            steps = cfg.sampling.masked_steps
            add(f"{steps}-step ELBO (its sampler)", family, "upper bound",
                lik.masked_discrete_elbo(c.apply_fn, m["config"].objective.masked_schedule,
                                         spec.num_levels, spec.num_dims, steps),
                indices, e.repeats)
    return estimates


def sample_models(cfg, models, workdir, key):
    """Samples of each model (files written), with cost; diffusion samplers swept over NFE."""
    runs = []
    num = cfg.sampling.num_samples
    for family, m in models.items():
        c, spec = m["components"], m["components"].spec
        if family == "gaussian":
            process = m["process"]
            runs += sampling.run_gaussian_samplers(c.apply_fn, m["params"], process,
                                                   m["config"].objective.prediction, spec, key, num,
                                                   cfg.sampling.nfe, cfg.sampling.ode_tolerances)
            shown = [r for r in runs if r.sampler == "DPM-Solver++(2M)"][-1]
        elif family == "ar":
            shown = sampling.run_token_sampler("ar", c.sample_fn, m["params"], key, num,
                                               spec.num_dims, "KV cache, T=1")
            runs.append(shown)
        else:
            steps = cfg.sampling.masked_steps
            shown = sampling.run_token_sampler("masked", c.sample_fn, m["params"], key, num,
                                               steps, f"{steps} steps")
            runs.append(shown)
        c.write_samples(shown.samples[:64], os.path.join(workdir, f"samples_{family}"))
        print(f"[compare] sampled {family}: {1e3 * shown.seconds_per_sample:.2f} ms / sample", flush=True)
    return runs


def quality_reference(cfg, config, key):
    """Train the feature classifier; returns (classifier, held-out levels, floor dict)."""
    train = load_split(config, "train")
    test = load_split(config, config.data.eval_split)
    spec = train.spec
    tr = train.get_batch(np.arange(len(train)))
    te = test.get_batch(np.arange(len(test)))
    to_x = lambda k: data_lib.to_centers(k, spec.num_levels)  # noqa: E731
    classifier = train_classifier(key, to_x(tr["image"]), tr["label"], int(tr["label"].max()) + 1,
                                  steps=cfg.classifier_steps)
    accuracy = classifier.accuracy(to_x(te["image"]), te["label"])
    num = min(cfg.sampling.num_samples, len(train))
    real = sampling.SamplerRun("real data", "training images", "", 0.0, 0.0, tr["image"][:num])
    sampling.score_quality([real], classifier, te["image"], spec.num_levels)
    floor = dict(fd=real.fd, kid=real.kid, kid_se=real.kid_se, num_samples=num,
                 classifier_accuracy=accuracy)
    return classifier, te["image"], floor


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    start = time.perf_counter()
    cfg = build_config()
    workdir = _WORKDIR.value or os.path.join("runs", f"compare_{cfg.dataset}")
    os.makedirs(workdir, exist_ok=True)
    key = jax.random.PRNGKey(cfg.model_config.seed)

    stage_seconds = {}
    stage_start = time.perf_counter()

    def stage_done(name):
        nonlocal stage_start
        stage_seconds[name] = time.perf_counter() - stage_start
        stage_start = time.perf_counter()
        print(f"[compare] {name} done in {stage_seconds[name]:.0f} s", flush=True)

    models = train_models(cfg, workdir)
    stage_done("training")
    first = next(iter(models.values()))
    spec = first["components"].spec
    held_out = load_split(first["config"], first["config"].data.eval_split)
    n = len(held_out) if not cfg.eval.max_examples else min(cfg.eval.max_examples, len(held_out))
    indices = np.arange(n)
    fields = ("image",) if spec.kind == "image" else ("tokens",)
    data = {k: v for k, v in held_out.get_batch(np.arange(len(held_out))).items() if k in fields}

    estimates = evaluate_likelihoods(cfg, models, data, indices, jax.random.fold_in(key, 1))
    stage_done("likelihoods")
    runs = sample_models(cfg, models, workdir, jax.random.fold_in(key, 2))
    stage_done("sampling")
    floor = None
    if spec.kind == "image":
        classifier, reference, floor = quality_reference(cfg, first["config"], jax.random.fold_in(key, 3))
        sampling.score_quality(runs, classifier, reference, spec.num_levels)
        stage_done("sample quality")

    entropy = lik.entropy_bits_per_dim(spec)
    odes = [e.name for e in estimates if e.name.startswith("PF-ODE")]
    checks = report.audit(estimates, spec.num_levels, ode_name=odes[0] if odes else None,
                          ode_check_name=odes[1] if len(odes) > 1 else None, entropy=entropy)
    description = DESCRIPTIONS[cfg.dataset]
    if cfg.dataset == "mnist" and _BINARIZE.value:
        description = "binarized MNIST, 28x28, 2 levels"
    results = dict(
        command="python -m experiments.compare " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        dataset=dict(name=cfg.dataset, description=description, split=first["config"].data.eval_split,
                     num_dims=spec.num_dims, num_levels=spec.num_levels,
                     unit=("bits/dim" if spec.kind == "image" else
                           "bits/char" if cfg.dataset == "text" else "bits/token"),
                     entropy_bits_per_dim=entropy),
        models=[dict(family=f, parameters=count_params_tree(m["params"]), steps=m["config"].train.steps,
                     train_seconds=m["seconds"],
                     final_train_loss=m["result"].history[-1]["loss"] if m["result"].history else None)
                for f, m in models.items()],
        likelihoods=[report.summarize(e, entropy) for e in estimates],
        sampling=[dict(model=r.model, sampler=r.sampler, setting=r.setting, nfe=r.nfe,
                       seconds_per_sample=r.seconds_per_sample, fd=r.fd, kid=r.kid, kid_se=r.kid_se)
                  for r in runs],
        real_data_floor=floor,
        audit=checks,
        stage_seconds=stage_seconds,
        config=cfg.to_dict(),
    )
    results["wall_seconds"] = time.perf_counter() - start
    report.write_json(results, os.path.join(workdir, "results.json"))
    table = report.markdown(results)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(table)
    report.plot_training_curves({f: m["result"].history for f, m in models.items()},
                                os.path.join(workdir, "training_curves.png"))
    report.plot_sampling(runs, floor, os.path.join(workdir, "sampling.png"))
    print(table)
    failed = [c for c in checks if not c["holds"]]
    for c in failed:
        print(f"\n!!! SELF-AUDIT FAILED: {c['check']}\n!!! {c['detail']}", file=sys.stderr)
    print(f"[compare] wrote {workdir}/results.json, results.md and plots in "
          f"{results['wall_seconds']:.0f} s" + (f"; {len(failed)} audit check(s) FAILED" if failed else ""))


if __name__ == "__main__":
    app.run(main)
