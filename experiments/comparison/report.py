"""The comparison's outputs: self-audit checks, results.json, results.md and the plots."""
import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gen_jax.eval import mean_and_se, paired_bound_check  # noqa: E402


def summarize(estimate, entropy=None) -> dict:
    mean, se = mean_and_se(estimate.values)
    row = dict(name=estimate.name, model=estimate.model, kind=estimate.kind, bits_per_dim=mean,
               se=se, num_examples=int(len(estimate.values)), nfe=estimate.nfe)
    if entropy is not None:
        row["above_entropy"] = mean - entropy
    return row


def _paired(e, ref):
    """e's values on ref's examples (None if e does not cover them)."""
    pos = {int(i): k for k, i in enumerate(e.indices)}
    if not all(int(i) in pos for i in ref.indices):
        return None
    return e.values[[pos[int(i)] for i in ref.indices]]


def audit(estimates, num_levels: int, *, ode_name=None, ode_check_name=None, entropy=None,
          num_se: float = 3.0) -> list[dict]:
    """Checks that must hold if every number is what it claims to be. Each check is
    {'check', 'holds', 'detail'}; a failed one says what it means.

    - every Gaussian-diffusion bound >= the PF-ODE NLL `ode_name` (paired, num_se SEs);
    - the PF-ODE NLL agrees with `ode_check_name` (the same examples at a 10x looser
      tolerance): otherwise the adaptive solve has not converged;
    - every number beats the uniform model (log2 K), and, when the data entropy is known,
      none is below it.
    """
    checks = []
    by_name = {e.name: e for e in estimates}
    ode = by_name.get(ode_name)
    if ode is not None:
        for e in estimates:
            if e.model != "gaussian" or e.name in (ode_name, ode_check_name):
                continue
            paired = _paired(e, ode)
            if paired is None:
                continue
            r = paired_bound_check(paired, ode.values, num_se)
            detail = (f"{e.name} - {ode.name} = {r['difference']:+.4f} +- {r['se']:.4f} bits/dim "
                      f"on the same {len(ode.indices)} examples (z = {r['z']:+.1f})")
            if not r["holds"]:
                detail += (". The bound is BELOW the PF-ODE NLL. Both bound -log2 P, but of "
                           "different models (the reverse SDE / chain vs the ODE flow), which "
                           "coincide only for an exact score: the ODE's density depends on the "
                           "Jacobian of the learned score, which the denoising loss does not "
                           "control. Read the PF-ODE number as the ODE model's, not as the bound's "
                           "tightness; train longer (or check the tolerance audit below)")
            checks.append(dict(check=f"{e.name} >= {ode.name}", holds=r["holds"], detail=detail))
        check = by_name.get(ode_check_name)
        if check is not None and _paired(ode, check) is not None:
            r = paired_bound_check(_paired(ode, check), check.values, num_se)
            converged = abs(r["difference"]) <= num_se * r["se"]
            detail = (f"{ode.name} - {check.name} = {r['difference']:+.4f} +- {r['se']:.4f} "
                      f"bits/dim on the same {len(check.indices)} examples, same probes")
            if not converged:
                detail += (". NOT CONVERGED in the tolerance: the PF-ODE is stiff near t_min for "
                           "this score, and a looser solve underestimates the NLL; the reported "
                           "value is a lower estimate of the ODE model's NLL")
            checks.append(dict(check=f"{ode.name} converged in the solver tolerance",
                               holds=bool(converged), detail=detail))
    uniform = math.log2(num_levels)
    for e in estimates:
        mean, se = mean_and_se(e.values)
        holds = mean - num_se * se <= uniform
        checks.append(dict(
            check=f"{e.name} ({e.model}) beats the uniform model ({uniform:.3f} bits/dim)",
            holds=bool(holds),
            detail=f"{mean:.4f} +- {se:.4f}" + ("" if holds else ": the model did not learn; "
                                                  "train longer (--steps)")))
        if entropy is not None:
            holds = mean + num_se * se >= entropy
            checks.append(dict(
                check=f"{e.name} ({e.model}) >= the data entropy {entropy:.4f}", holds=bool(holds),
                detail=f"{mean - entropy:+.4f} +- {se:.4f} bits/dim above it" + (
                    "" if holds else ": IMPOSSIBLE for an NLL or an upper bound: a bug")))
    return checks


def _fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(results: dict) -> str:
    unit = results["dataset"]["unit"]
    lines = [f"# Comparison on {results['dataset']['name']} ({results['dataset']['description']})",
             "", f"Command: `{results['command']}`  ", f"Wall time: {results['wall_seconds']:.0f} s",
             "", f"## Likelihoods on the held-out split ({unit}, mean +- standard error)", ""]
    entropy = results["dataset"].get("entropy_bits_per_dim")
    head = f"| model | estimator | kind | {unit} | SE | examples | NFE |"
    if entropy is not None:
        head += " above entropy |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results["likelihoods"]:
        row = (f"| {r['model']} | {r['name']} | {r['kind']} | {r['bits_per_dim']:.4f} | "
               f"{r['se']:.4f} | {r['num_examples']} | {_fmt(r['nfe'], 0)} |")
        if entropy is not None:
            row += f" {r['above_entropy']:+.4f} |"
        lines.append(row)
    if entropy is not None:
        lines += ["", f"True entropy of the data: {entropy:.4f} {unit}."]
    lines += ["", "## Models", "", f"| model | parameters | steps | train s | final train loss ({unit}) |",
              "|---|---|---|---|---|"]
    for m in results["models"]:
        lines.append(f"| {m['family']} | {m['parameters']:,} | {m['steps']} | {m['train_seconds']:.0f} | "
                     f"{_fmt(m['final_train_loss'])} |")
    if results.get("sampling"):
        lines += ["", "## Sampling", ""]
        floor = results.get("real_data_floor")
        if floor:
            lines += [f"Sample quality: Frechet distance (FD) and KID between "
                      f"{floor['num_samples']} samples and the held-out split, on the features of a "
                      f"classifier trained on the training split (test accuracy "
                      f"{floor['classifier_accuracy']:.3f}). Real training images score "
                      f"FD {floor['fd']:.2f}, KID {floor['kid']:.3f}: the floor.", ""]
        lines += ["| model | sampler | setting | NFE | ms / sample | FD | KID |", "|---|---|---|---|---|---|---|"]
        for s in results["sampling"]:
            lines.append(f"| {s['model']} | {s['sampler']} | {s['setting']} | {s['nfe']:.0f} | "
                         f"{1e3 * s['seconds_per_sample']:.2f} | {_fmt(s['fd'], 2)} | {_fmt(s['kid'], 3)} |")
    lines += ["", "## Self-audit", ""]
    for c in results["audit"]:
        lines.append(f"- {'ok' if c['holds'] else '**FAILED**'}: {c['check']}: {c['detail']}")
    return "\n".join(lines) + "\n"


def write_json(results: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=float)


def plot_training_curves(histories: dict, path: str) -> None:
    """histories: family -> list of {'step', 'loss'} (train loss in bits/dim)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for family, history in histories.items():
        steps = [h["step"] for h in history]
        ax.plot(steps, [h["loss"] for h in history], label=family)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (bits/dim)")
    ax.set_title("training curves (AR: NLL; diffusion: ELBO)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sampling(runs: list, floor, path: str) -> None:
    """Two panels against NFE: FD (images) and wall time per sample; one line per sampler."""
    panels = [("fd", "Frechet distance (classifier features)")] if runs and runs[0].fd is not None else []
    panels.append(("seconds_per_sample", "wall seconds per sample"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    groups = {}
    for r in runs:
        groups.setdefault(f"{r.model}: {r.sampler}", []).append(r)
    for ax, (field, label) in zip(axes[0], panels):
        for name, group in groups.items():
            group = sorted(group, key=lambda r: r.nfe)
            ax.plot([r.nfe for r in group], [getattr(r, field) for r in group], "o-", label=name)
        if field == "fd" and floor:
            ax.axhline(floor["fd"], color="gray", ls="--", label="real data (floor)")
        ax.set_xscale("log")
        ax.set_xlabel("model calls per sample (NFE)")
        ax.set_ylabel(label)
        if field == "seconds_per_sample":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
