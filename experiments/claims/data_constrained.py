"""Data-constrained training as a function: for each budget of unique tokens and each family,
train for the configured steps (many epochs over the same tokens), follow the validation NLL
(AR: exact) or NELBO (diffusion: an upper bound) in bits/token along training, by epoch and by
training FLOPs, and write results.json, results.md and two plots (`experiments.data_constrained`
is its CLI). A run whose curve.json holds the same config is reused, not retrained."""
import dataclasses
import json
import os
import shutil
import time

import jax
import numpy as np

from experiments.claims import report
from experiments.claims.epoch_accounting import epochs_seen, token_subset
from experiments.comparison.report import entropy_bits_per_dim
from experiments.comparison.run import count_params_tree, family_configs
from gen_jax import data as data_lib
from gen_jax import families
from gen_jax.data.dataset import ArraySource, Dataset
from gen_jax.models.flops import compiled_flops, transformer_train_flops
from gen_jax.train import loop
from gen_jax.train.build import build_components, load_split


def step_flops(components, config) -> float:
    """XLA's FLOPs of one training step's loss and gradient (the optimizer update excluded)."""
    batch = next(iter(components.train_batches(0, 0, 1)))

    def loss_and_grad(params, batch, key):
        return jax.value_and_grad(lambda p: components.loss_fn(p, batch, key).mean())(params)
    return compiled_flops(loss_and_grad, components.params, batch, jax.random.PRNGKey(config.seed))


def held_out_subset(config, num: int):
    """The first `num` sequences of the eval split (fewer if the split is smaller)."""
    split = load_split(config, config.data.eval_split)
    n = min(num, len(split))
    return Dataset(ArraySource(split.get_batch(np.arange(n))), split.spec, split.split,
                   split.splits)


def train_budget(config, train_set, eval_set, run_dir: str, unique_tokens: int) -> dict:
    """Train `config.family` on `train_set` in `run_dir`; its validation curve on `eval_set`:
    dict(family, unique_tokens, parameters, steps, flops_per_step (XLA), analytic_flops_per_step,
    curve [{step, epochs, flops, bits}], train_seconds)."""
    saved = os.path.join(run_dir, "curve.json")
    key = json.loads(json.dumps(config.to_dict()))
    if os.path.exists(saved):
        with open(saved) as f:
            previous = json.load(f)
        if previous["config"] == key:
            return previous["run"]
    shutil.rmtree(run_dir, ignore_errors=True)  # a different or unfinished run: start afresh
    components = build_components(config)
    components = dataclasses.replace(
        components,
        train_batches=lambda start, index, count: data_lib.BatchIterator(
            train_set, config.train.batch_size, seed=config.seed, start_step=start,
            shard_index=index, num_shards=count),
        eval_batches=lambda: data_lib.eval_batches(eval_set, config.eval.batch_size),
        data_fingerprint={"train": data_lib.fingerprint(train_set),
                          "eval": data_lib.fingerprint(eval_set)})
    spec, b = components.spec, config.train.batch_size
    seq_len = spec.shape[0]
    flops = step_flops(components, config)
    analytic = transformer_train_flops(families.backbone_config(config.model), seq_len, b,
                                       spec.num_levels)
    start = time.perf_counter()
    result = loop.run(config, run_dir, components, validate=False)
    seconds = time.perf_counter() - start
    curve = [dict(step=e["step"], epochs=epochs_seen(e["step"], b, seq_len, unique_tokens),
                  flops=e["step"] * flops, bits=e["bits_per_dim"]) for e in result.evals]
    run = dict(family=config.family, unique_tokens=unique_tokens,
               parameters=count_params_tree(components.params), steps=config.train.steps,
               batch_size=b, seq_len=seq_len, flops_per_step=flops,
               analytic_flops_per_step=analytic, curve=curve, train_seconds=seconds)
    os.makedirs(run_dir, exist_ok=True)
    report.write_json(dict(config=key, run=run), saved)
    return run


def summarize(run: dict) -> dict:
    """The run's best validation point: bits, step, epochs and FLOPs at it, and the last bits."""
    best = min(run["curve"], key=lambda p: p["bits"])
    return dict(family=run["family"], unique_tokens=run["unique_tokens"],
                parameters=run["parameters"], total_epochs=run["curve"][-1]["epochs"],
                flops_per_step=run["flops_per_step"],
                analytic_flops_per_step=run["analytic_flops_per_step"],
                best_bits=best["bits"], best_step=best["step"], best_epochs=best["epochs"],
                best_flops=best["flops"], final_bits=run["curve"][-1]["bits"],
                train_seconds=run["train_seconds"])


def curve_crossings(runs: list[dict], reference: str) -> list[dict]:
    """Per budget and family != reference: the epochs at which its validation curve crosses
    the reference family's (same steps, so same epochs), and who is ahead at the end."""
    out = []
    for tokens in sorted({r["unique_tokens"] for r in runs}):
        same = {r["family"]: r for r in runs if r["unique_tokens"] == tokens}
        if reference not in same:
            continue
        ref = same[reference]["curve"]
        for name, run in same.items():
            if name == reference or len(run["curve"]) != len(ref):
                continue
            xs = [p["epochs"] for p in ref]
            ys = [p["bits"] for p in run["curve"]]
            out.append(dict(unique_tokens=tokens, family=name, reference=reference,
                            cross_at_epochs=report.crossings(xs, ys, [p["bits"] for p in ref]),
                            ahead_at_end=name if ys[-1] < ref[-1]["bits"] else reference))
    return out


def reading(summaries, crossing, entropy, unit) -> list[str]:
    """Sentences of results.md, generated from the numbers."""
    lines = []
    for tokens in sorted({s["unique_tokens"] for s in summaries}):
        rows = sorted((s for s in summaries if s["unique_tokens"] == tokens),
                      key=lambda s: s["best_bits"])
        best = rows[0]
        parts = ", ".join(f"{s['family']} {s['best_bits']:.4f} (epoch {s['best_epochs']:.3g} of "
                          f"{s['total_epochs']:.3g})" for s in rows)
        lines.append(f"{tokens:,} unique tokens: best validation {unit}: {parts}; best is "
                     f"{best['family']}.")
        late = [s for s in rows if s["best_epochs"] < 0.9 * s["total_epochs"]]
        if late:
            lines.append(f"  at {tokens:,} tokens the validation loss of "
                         + ", ".join(f"{s['family']} bottoms out at epoch {s['best_epochs']:.3g} "
                                     f"then rises to {s['final_bits']:.4f}" for s in late)
                         + " (overfitting the repeated tokens).")
    for c in crossing:
        where = ("cross at epoch " + ", ".join(f"{x:.3g}" for x in c["cross_at_epochs"])
                 if c["cross_at_epochs"] else "never cross")
        lines.append(f"{c['family']} vs {c['reference']} at {c['unique_tokens']:,} tokens: "
                     f"the validation curves {where}; {c['ahead_at_end']} is ahead at the end.")
    if entropy is not None:
        gaps = ", ".join(f"{s['family']}@{s['unique_tokens']:,}: +{s['best_bits'] - entropy:.4f}"
                         for s in summaries)
        lines.append(f"Floor: the data's entropy is {entropy:.4f} {unit}; best minus floor: {gaps}.")
    lines.append("AR numbers are exact NLLs; diffusion numbers are upper bounds (NELBOs), so a "
                 "diffusion model is at least as good as its number says.")
    return lines


def run_data_constrained(cfg, workdir: str, command: str = "") -> dict:
    """Train every family on every budget; write the report into `workdir`; return results."""
    start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    configs = family_configs(cfg)
    first = next(iter(configs.values()))
    train_split = load_split(first, first.data.train_split)
    eval_set = held_out_subset(first, cfg.eval_examples)
    spec = eval_set.spec
    unit = "bits/char" if spec.name == "text_file" else "bits/token"
    runs = []
    for tokens in cfg.unique_tokens:
        train_set = token_subset(train_split, tokens, first.train.batch_size)
        for name, config in configs.items():
            print(f"[data_constrained] {name} on {tokens:,} unique tokens "
                  f"({epochs_seen(config.train.steps, config.train.batch_size, spec.shape[0], tokens):.3g} "
                  f"epochs)", flush=True)
            runs.append(train_budget(config, train_set, eval_set,
                                     os.path.join(workdir, "runs", f"{tokens}", name), tokens))
    summaries = [summarize(r) for r in runs]
    entropy = entropy_bits_per_dim(spec)
    reference = "ar" if "ar" in configs else next(iter(configs))
    crossing = curve_crossings(runs, reference)
    results = dict(command=command, preset=cfg.preset, unit=unit,
                   dataset=dict(name=spec.name, seq_len=spec.shape[0], vocab=spec.num_levels,
                                eval_examples=len(eval_set), entropy_bits_per_token=entropy),
                   runs=runs, summary=summaries, crossings=crossing,
                   reading=reading(summaries, crossing, entropy, unit), config=cfg.to_dict())
    results["wall_seconds"] = time.perf_counter() - start
    write_report(results, workdir)
    return results


def write_report(results: dict, workdir: str) -> str:
    """results.json, results.md, validation_vs_epochs.png, best_vs_flops.png."""
    unit = results["unit"]
    report.write_json(results, os.path.join(workdir, "results.json"))
    entropy = results["dataset"]["entropy_bits_per_token"]
    floor = None if entropy is None else (entropy, "data entropy")
    by_epoch, by_flops = {}, {}
    for r in results["runs"]:
        label = f"{r['family']}, {r['unique_tokens']:,} tok"
        c = r["curve"]
        by_epoch[label] = ([p["epochs"] for p in c], [p["bits"] for p in c])
        by_flops[label] = ([p["flops"] for p in c],
                           list(np.minimum.accumulate([p["bits"] for p in c])))
    report.plot_lines(os.path.join(workdir, "validation_vs_epochs.png"), by_epoch,
                      xlabel="epochs (tokens seen / unique tokens)",
                      ylabel=f"validation {unit}", logx=True, hline=floor,
                      title="validation loss along training (AR exact, diffusion NELBO)")
    report.plot_lines(os.path.join(workdir, "best_vs_flops.png"), by_flops,
                      xlabel="training FLOPs (XLA count)", ylabel=f"best validation {unit} so far",
                      logx=True, hline=floor, title="best validation loss vs compute")
    rows = [(s["unique_tokens"], s["family"], s["parameters"], s["total_epochs"],
             s["flops_per_step"], s["analytic_flops_per_step"], s["best_bits"], s["best_epochs"],
             s["final_bits"], s["train_seconds"]) for s in results["summary"]]
    table = report.markdown_table(
        ("unique tokens", "family", "params", "epochs", "FLOPs/step (XLA)", "FLOPs/step (6ND+attn)",
         f"best val {unit}", "epoch of best", f"final val {unit}", "train s"), rows)
    d = results["dataset"]
    floor_line = "" if entropy is None else f" Entropy floor {entropy:.4f} {unit}."
    head = (f"Data: {d['name']}, sequences of {d['seq_len']}, vocabulary {d['vocab']}; validation "
            f"on the first {d['eval_examples']} held-out sequences.{floor_line}\n\n")
    return report.write_markdown(os.path.join(workdir, "results.md"),
                                 f"Data-constrained training ({results['preset']} preset)",
                                 results["command"], [head + table], results["reading"],
                                 results["wall_seconds"])
