"""Sample quality against NFE as a function: one small model per family (reused from the workdir
when there), every sampler of every family with its step grids set to `cfg.nfe`, FD and KID
(with its SE) of the samples against the held-out split, each step-dependent likelihood
estimator (the masked T-step ELBO) against T, and where each curve flattens
(`experiments.steps` is its CLI).

Which fields are step grids is read from the family's config, not its name: every field of
`config.<family>.sample` holding a non-empty tuple of ints (gaussian.sample.nfe, masked.sample.
steps, flow.sample.euler_steps / heun_steps / dpm_steps). A family with none (AR: NFE = D) has
no NFE to choose and is left out by default.
"""
import os
import time

import jax
import numpy as np

from experiments.claims import report
from experiments.comparison.run import count_params_tree, quality_reference, train_models
from experiments.comparison.sampling import SamplerRun, score_quality
from experiments.comparison.evaluation import held_out
from gen_jax import families
from gen_jax.eval.estimates import estimate
from gen_jax.eval.stats import mean_and_se


def step_fields(section) -> list[str]:
    """Names of the step grids of a family's config section (its `sample` sub-section)."""
    sample = section.get("sample") if hasattr(section, "get") else None
    if sample is None:
        return []
    return [k for k, v in sample.items() if isinstance(v, (tuple, list)) and v
            and all(isinstance(n, int) and not isinstance(n, bool) for n in v)]


def with_grid(config, name: str, grid: tuple) -> None:
    """Set every step grid of `config.<name>` to `grid` (in place)."""
    section = config[name]
    for field in step_fields(section):
        section.sample[field] = tuple(grid)


def swept_families(cfg, spec) -> tuple:
    """cfg.families, or every registered family that models `spec` and has a step grid."""
    if cfg.families:
        return tuple(cfg.families)
    return tuple(n for n in families.names() if families.get(n).supports(spec)
                 and step_fields(cfg.model_config[n]))


def sample_all(models, key, num: int) -> list[SamplerRun]:
    """One run of every sampler of every model from `key` (seconds include the compile)."""
    runs = []
    for name, m in models.items():
        c = m["components"]
        for sampler in families.get(name).samplers(c.view, c.spec, m["config"]):
            start = time.perf_counter()
            out = jax.block_until_ready(sampler.fn(m["params"], key, num))
            runs.append(SamplerRun(name, sampler.name, sampler.setting, float(np.mean(out.nfe)),
                                   (time.perf_counter() - start) / num, np.asarray(out.samples)))
            print(f"[steps] {name} {sampler.name} {sampler.setting}: NFE {runs[-1].nfe:g}",
                  flush=True)
    return runs


def step_estimates(models, cfg, key) -> list[dict]:
    """Each estimator that exists only because of the step grid (names absent when the grids
    are emptied), on the held-out split: {model, estimator, steps, mean, se} in bits/dim."""
    out = []
    for name, m in models.items():
        config, c = m["config"], m["components"]
        empty = config.copy_and_resolve_references()
        with_grid(empty, name, ())
        base = {e.name for e in families.get(name).estimators(c.view, c.spec, empty)}
        data, indices, spec = held_out(config)
        for e in families.get(name).estimators(c.view, c.spec, config):
            if e.name in base:
                continue
            result = estimate(e, name, m["params"], data, indices, num_dims=spec.num_dims,
                              batch_size=config.eval.batch_size, key=key,
                              repeats=cfg.elbo_repeats)
            mean, se = mean_and_se(result.values)
            steps = int(e.name.split("-")[0]) if e.name.split("-")[0].isdigit() else None
            out.append(dict(model=name, estimator=e.name, steps=steps, mean=mean, se=se,
                            examples=len(result.values)))
            print(f"[steps] {name} {e.name}: {mean:.4f} +- {se:.4f} bits/dim", flush=True)
    return out


def curves_of(rows: list[dict]) -> dict:
    """(model, sampler) -> rows sorted by NFE, fixed-step samplers only (setting '<n> steps')."""
    curves = {}
    for r in rows:
        if r["requested_steps"] is not None:
            curves.setdefault((r["model"], r["sampler"]), []).append(r)
    return {k: sorted(v, key=lambda r: r["nfe"]) for k, v in curves.items()}


def requested_steps(setting: str):
    """n of a fixed-step setting '<n> steps' (None for adaptive ones)."""
    head = setting.split(" ")
    return int(head[0]) if len(head) == 2 and head[1] == "steps" and head[0].isdigit() else None


def run_steps(cfg, workdir: str, command: str = "") -> dict:
    """Train (or reuse) one model per family, sweep NFE, score, write the report."""
    start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    key = jax.random.PRNGKey(cfg.model_config.seed)
    probe = cfg.model_config.copy_and_resolve_references()
    spec = held_out(probe)[2]
    cfg.families = swept_families(cfg, spec)
    for name in cfg.families:
        with_grid(cfg.model_config, name, cfg.nfe)
    models = train_models(cfg, workdir)
    stage = {"training": time.perf_counter() - start}
    runs = sample_all(models, jax.random.fold_in(key, 2), cfg.sampling.num_samples)
    stage["sampling"] = time.perf_counter() - start - sum(stage.values())
    first = next(iter(models.values()))["config"]
    classifier, reference, floor = quality_reference(cfg, first, jax.random.fold_in(key, 3))
    score_quality(runs, classifier, reference, spec.num_levels)
    rows = [dict(model=r.model, sampler=r.sampler, setting=r.setting,
                 requested_steps=requested_steps(r.setting), nfe=r.nfe, fd=r.fd, kid=r.kid,
                 kid_se=r.kid_se) for r in runs]
    elbos = step_estimates(models, cfg, jax.random.fold_in(key, 4))
    stage["quality and ELBOs"] = time.perf_counter() - start - sum(stage.values())
    flat = [dict(model=m, sampler=s, flattens_at_nfe=report.flattening_point(
                [r["nfe"] for r in c], [r["kid"] for r in c], [r["kid_se"] for r in c]),
                 last_nfe=c[-1]["nfe"], best_kid=min(r["kid"] for r in c),
                 best_fd=min(r["fd"] for r in c))
            for (m, s), c in curves_of(rows).items()]
    for name in models:
        mine = sorted((e for e in elbos if e["model"] == name and e["steps"]),
                      key=lambda e: e["steps"])
        if mine:
            flat.append(dict(model=name, sampler=mine[0]["estimator"].split(" (")[0].replace(
                f"{mine[0]['steps']}-step", "T-step"), flattens_at_nfe=report.flattening_point(
                    [e["steps"] for e in mine], [e["mean"] for e in mine], [e["se"] for e in mine]),
                last_nfe=mine[-1]["steps"], best_kid=None, best_fd=None, metric="bits/dim"))
    results = dict(command=command, preset=cfg.preset, dataset=cfg.dataset,
                   models=[dict(family=f, parameters=count_params_tree(m["params"]),
                                steps=m["config"].train.steps, train_seconds=m["seconds"])
                           for f, m in models.items()],
                   nfe_grid=list(cfg.nfe), num_samples=cfg.sampling.num_samples,
                   quality=rows, step_elbos=elbos, flattening=flat, real_data_floor=floor,
                   stage_seconds=stage, config=cfg.to_dict())
    results["reading"] = reading(results)
    results["wall_seconds"] = time.perf_counter() - start
    write_report(results, workdir)
    return results


def reading(results) -> list[str]:
    floor = results["real_data_floor"]
    lines = [f"Quality is KID (with its SE over 10 subsets) and FD on the feature classifier "
             f"({floor['classifier_accuracy']:.1%} held-out accuracy), {results['num_samples']} "
             f"samples per setting; real training images score KID {floor['kid']:.4g} +- "
             f"{floor['kid_se']:.2g}, FD {floor['fd']:.4g} (the floor). FD has no SE here; "
             f"flattening uses KID: the first NFE after which no later NFE is better by more "
             f"than the combined SE."]
    for f in results["flattening"]:
        what = "its bound" if f.get("metric") else "KID"
        at = "never (within the grid)" if f["flattens_at_nfe"] is None else f"{f['flattens_at_nfe']:g}"
        best = "" if f["best_kid"] is None else f" (best KID {f['best_kid']:.4g}, best FD {f['best_fd']:.4g})"
        lines.append(f"{f['model']} {f['sampler']}: {what} stops improving at NFE {at}{best}.")
    late = [f for f in results["flattening"] if f["flattens_at_nfe"] == f["last_nfe"]]
    if late:
        lines.append("Still improving at the largest NFE of their grid: " + ", ".join(
            f"{f['model']} {f['sampler']} (NFE {f['last_nfe']:g})" for f in late) + ".")
    return lines


def write_report(results, workdir) -> str:
    report.write_json(results, os.path.join(workdir, "results.json"))
    curves = curves_of(results["quality"])
    report.plot_lines(os.path.join(workdir, "quality_vs_nfe.png"),
                      {f"{m} {s}": ([r["nfe"] for r in c], [max(r["kid"], 1e-6) for r in c],
                                    [r["kid_se"] for r in c]) for (m, s), c in curves.items()},
                      xlabel="NFE (model calls per sample)", ylabel="KID (classifier features)",
                      logx=True, logy=True, hline=(max(results["real_data_floor"]["kid"], 1e-6),
                                                   "real data"), title="sample quality vs NFE")
    elbos = sorted((e for e in results["step_elbos"] if e["steps"]), key=lambda e: e["steps"])
    if elbos:
        report.plot_lines(os.path.join(workdir, "elbo_vs_steps.png"),
                          {m: ([e["steps"] for e in elbos if e["model"] == m],
                               [e["mean"] for e in elbos if e["model"] == m],
                               [e["se"] for e in elbos if e["model"] == m])
                           for m in {e["model"] for e in elbos}},
                          xlabel="T (sampler steps)", ylabel="T-step bound (bits/dim)", logx=True,
                          title="the bound of the T-step sampler vs T")
    table = report.markdown_table(
        ("model", "sampler", "setting", "NFE", "KID", "KID SE", "FD"),
        [(r["model"], r["sampler"], r["setting"], r["nfe"], r["kid"], r["kid_se"], r["fd"])
         for r in results["quality"]])
    elbo_table = report.markdown_table(
        ("model", "estimator", "T", "bits/dim", "SE"),
        [(e["model"], e["estimator"], e["steps"], e["mean"], e["se"]) for e in results["step_elbos"]])
    flat_table = report.markdown_table(
        ("model", "curve", "flattens at NFE", "best KID", "best FD"),
        [(f["model"], f["sampler"], f["flattens_at_nfe"], f["best_kid"], f["best_fd"])
         for f in results["flattening"]])
    models = ", ".join(f"{m['family']} ({m['parameters']:,} params, {m['steps']} steps)"
                       for m in results["models"])
    return report.write_markdown(
        os.path.join(workdir, "results.md"), f"Sample quality vs NFE ({results['preset']} preset, "
        f"{results['dataset']})", results["command"],
        [f"Models: {models}.\n\n## Quality\n\n" + table, "## Step-dependent bounds\n\n" + elbo_table,
         "## Where each curve flattens\n\n" + flat_table], results["reading"],
        results["wall_seconds"])
