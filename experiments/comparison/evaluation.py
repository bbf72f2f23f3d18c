"""Every estimator of one trained model on the held-out split, in bits/dim with standard errors:
the one code path of `experiments.compare` and `experiments.evaluate`, so both report the same
numbers for the same parameters (same examples, batches, keys and mesh); `evaluate_run`, the
whole of `experiments.evaluate`."""
import os
import time

import jax
import ml_collections
import numpy as np

from experiments.comparison import report
from gen_jax import families
from gen_jax.eval.estimates import estimate
from gen_jax.train import sharding as sharding_lib
from gen_jax.train.build import build_components, load_split
from gen_jax.train.config import validate_config
from gen_jax.train.restore import restore_trained, saved_config


def held_out(config):
    """(data, indices, spec) of `config.data.eval_split`: the whole split as host arrays (the
    fields estimators read), and the first `config.eval.max_examples` indices (0: all)."""
    split = load_split(config, config.data.eval_split)
    n = len(split) if not config.eval.max_examples else min(config.eval.max_examples, len(split))
    fields = ("image",) if split.spec.kind == "image" else ("tokens", "token_mask")
    data = {k: v for k, v in split.get_batch(np.arange(len(split))).items() if k in fields}
    return data, np.arange(n), split.spec


def evaluate_model(config, view, params, data, indices, spec, *, log=print):
    """`Estimate`s of every estimator of `config.family`'s model with `params` (EMA params for
    a trained run), in the family's order. Keys: from `config.seed` and each estimator's name."""
    family = families.get(config.family)
    mesh = sharding_lib.make_mesh(config.mesh.num_devices, config.mesh.model_parallelism)
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    out = []
    for estimator in family.estimators(view, spec, config):
        e = estimate(estimator, config.family, params, data, indices, num_dims=spec.num_dims,
                     batch_size=config.eval.batch_size, key=key, repeats=config.eval.repeats,
                     mesh=mesh, param_strategy=config.mesh.param_sharding)
        log(f"[evaluate] {config.family:8s} {e.name:34s} {e.values.mean():.4f} bits/dim "
            f"({len(e.values)} examples)")
        out.append(e)
    return out


def evaluate_run(workdir: str, *, repeats: int = 0, max_examples: int = -1,
                 command: str = "") -> dict:
    """Evaluate the run in `workdir`; write evaluation.json / .md there; return the results."""
    start = time.perf_counter()
    config = ml_collections.ConfigDict(saved_config(workdir))
    if repeats:
        config.eval.repeats = repeats
    if max_examples >= 0:
        config.eval.max_examples = max_examples
    validate_config(config)
    components = build_components(config)
    state = restore_trained(config, workdir, components)
    params = state.ema_params if config.eval.use_ema else state.params
    data, indices, spec = held_out(config)
    estimates = evaluate_model(config, components.view, params, data, indices, spec)
    entropy = report.entropy_bits_per_dim(spec)
    results = dict(
        title="Evaluation", command=command, workdir=workdir,
        dataset=dict(name=spec.name, description=f"{spec.kind}, shape {tuple(spec.shape)}, "
                     f"{spec.num_levels} levels", split=config.data.eval_split,
                     num_dims=spec.num_dims, num_levels=spec.num_levels,
                     unit="bits/dim" if spec.kind == "image" else "bits/token",
                     entropy_bits_per_dim=entropy),
        models=[dict(family=config.family, parameters=int(sum(x.size for x in jax.tree.leaves(params))),
                     steps=int(state.step), train_seconds=None, final_train_loss=None)],
        likelihoods=[report.summarize(e, entropy) for e in estimates],
        audit=report.audit(estimates, entropy=entropy),
        comparisons=report.comparisons(estimates, spec.num_levels),
        config=config.to_dict())
    results["wall_seconds"] = time.perf_counter() - start
    report.write_json(results, os.path.join(workdir, "evaluation.json"))
    with open(os.path.join(workdir, "evaluation.md"), "w") as f:
        f.write(report.markdown(results))
    return results
