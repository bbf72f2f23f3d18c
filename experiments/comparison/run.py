"""The comparison as a function: train one model per family on the same data and budget,
evaluate every estimator of every family on the held-out split, sample with every sampler,
score sample quality, audit, and write the report (`experiments.compare` is its CLI)."""
import os
import time

import jax
import numpy as np

from experiments.comparison import report, sampling
from experiments.comparison.evaluation import evaluate_model, held_out
from gen_jax import data as data_lib
from gen_jax import families
from gen_jax.eval import train_classifier
from gen_jax.train import loop
from gen_jax.train.build import build_components, load_split
from gen_jax.train.config import validate_config

DESCRIPTIONS = {
    "digits": "scikit-learn digits, 8x8, 17 levels",
    "mnist": "MNIST, 28x28, 256 levels",
    "text": "characters of a text file",
    "markov": "order-2 Markov chain over 8 symbols, sequences of 32",
}


def family_configs(cfg):
    """family name -> its validated training config (the shared one with `family` set): the
    configured families, or every registered family that models the data."""
    names = cfg.families or families.names()
    spec = None
    out = {}
    for name in names:
        config = cfg.model_config.copy_and_resolve_references()
        config.family = name
        validate_config(config)
        if not cfg.families:  # default: skip families that do not model this data
            spec = spec or load_split(config, config.data.eval_split).spec
            if not families.get(name).supports(spec):
                continue
        out[name] = config
    return out


def count_params_tree(params) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def train_models(cfg, workdir):
    """family -> dict(config, components, result, params (EMA), seconds)."""
    models = {}
    for name, config in family_configs(cfg).items():
        components = build_components(config)
        print(f"[compare] training {name} ({count_params_tree(components.params):,} parameters, "
              f"{config.train.steps} steps)", flush=True)
        start = time.perf_counter()
        result = loop.run(config, os.path.join(workdir, name), components, validate=False)
        models[name] = dict(config=config, components=components, result=result,
                            params=result.state.ema_params, seconds=time.perf_counter() - start)
    return models


def sample_models(cfg, models, workdir, key):
    """Every sampler of every model from the same key (files written), with cost. The samples
    shown are the last setting of the family's default sampler."""
    runs = []
    for name, m in models.items():
        family, c, config = families.get(name), m["components"], m["config"]
        mine = [sampling.run_sampler(name, s, m["params"], key, cfg.sampling.num_samples)
                for s in family.samplers(c.view, c.spec, config)]
        default = family.default_sampler(c.view, c.spec, config).name
        shown = [r for r in mine if r.sampler == default][-1] if any(
            r.sampler == default for r in mine) else mine[-1]
        family.write_samples(shown.samples[:64], c.spec, os.path.join(workdir, f"samples_{name}"))
        print(f"[compare] sampled {name}: {len(mine)} settings, shown {shown.sampler} "
              f"{shown.setting}: {1e3 * shown.seconds_per_sample:.2f} ms / sample", flush=True)
        runs += mine
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


def unit_of(dataset: str, spec) -> str:
    if spec.kind == "image":
        return "bits/dim"
    return "bits/char" if dataset == "text" else "bits/token"


def run_comparison(cfg, workdir: str, command: str = "") -> dict:
    """Train, evaluate, sample and audit every configured family; write the report to
    `workdir` and return the results dict (as results.json)."""
    start = time.perf_counter()
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
    data, indices, spec = held_out(first["config"])
    estimates = []
    for m in models.values():
        estimates += evaluate_model(m["config"], m["components"].view, m["params"], data, indices,
                                    spec)
    stage_done("likelihoods")
    runs = sample_models(cfg, models, workdir, jax.random.fold_in(key, 2))
    stage_done("sampling")
    floor = None
    if spec.kind == "image":
        classifier, reference, floor = quality_reference(cfg, first["config"], jax.random.fold_in(key, 3))
        sampling.score_quality(runs, classifier, reference, spec.num_levels)
        stage_done("sample quality")

    entropy = report.entropy_bits_per_dim(spec)
    results = dict(
        command=command,
        dataset=dict(name=cfg.dataset, description=cfg.get("description", DESCRIPTIONS[cfg.dataset]),
                     split=first["config"].data.eval_split, num_dims=spec.num_dims,
                     num_levels=spec.num_levels, unit=unit_of(cfg.dataset, spec),
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
        audit=report.audit(estimates, entropy=entropy),
        comparisons=report.comparisons(estimates, spec.num_levels),
        stage_seconds=stage_seconds,
        config=cfg.to_dict(),
    )
    results["wall_seconds"] = time.perf_counter() - start
    report.write_json(results, os.path.join(workdir, "results.json"))
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(report.markdown(results))
    report.plot_training_curves({f: m["result"].history for f, m in models.items()},
                                os.path.join(workdir, "training_curves.png"))
    report.plot_sampling(runs, floor, os.path.join(workdir, "sampling.png"))
    report.plot_likelihood_vs_speed(report.likelihood_vs_speed(results), results["dataset"]["unit"],
                                    entropy, os.path.join(workdir, "likelihood_vs_speed.png"))
    return results
