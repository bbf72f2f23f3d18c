"""The comparison's outputs: self-audit checks, results.json, results.md and the plots."""
import json
import math
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gen_jax.eval import mean_and_se, paired_bound_check  # noqa: E402
from gen_jax.families.base import EXACT, UPPER_BOUND  # noqa: E402


def summarize(estimate, entropy=None) -> dict:
    mean, se = mean_and_se(estimate.values)
    row = dict(name=estimate.name, model=estimate.model, kind=estimate.kind, bits_per_dim=mean,
               se=se, num_examples=int(len(estimate.values)), nfe=estimate.nfe)
    if entropy is not None:
        row["above_entropy"] = mean - entropy
    return row


def entropy_bits_per_dim(spec) -> Optional[float]:
    """The data's exact entropy in bits/dim when the dataset knows it (synthetic data)."""
    if spec.entropy_nats_per_example is None:
        return None
    return spec.entropy_nats_per_example / (spec.num_dims * math.log(2.0))


def _paired(e, ref):
    """e's values on ref's examples (None if e does not cover them)."""
    pos = {int(i): k for k, i in enumerate(e.indices)}
    if not all(int(i) in pos for i in ref.indices):
        return None
    return e.values[[pos[int(i)] for i in ref.indices]]


def converged(solve, check, *, num_se: float = 2.0, floor: float = 0.02,
              max_se: float = 0.02) -> dict:
    """Do two solves of the same examples, probes and draws at tolerances 10x apart agree?

    solve, check: (N,) bits/dim per example, paired (the reported solve and its re-solve at a
    10x tighter tolerance). Converged when |mean paired difference| <= max(num_se SE, floor)
    AND SE <= max_se. The SE guard is what makes the rule honest: a loose solve is noisy
    (its error varies from example to example), and with the 2-SE rule alone a large SE lets
    a large difference pass on that noise; with too few examples or too noisy a pair the answer
    is "inconclusive" (a failed check that says so), never "converged".
    Returns {'difference', 'se', 'converged', 'inconclusive'} (bits/dim; inconclusive: the SE
    exceeds max_se).
    """
    r = paired_bound_check(solve, check)
    inconclusive = bool(r["se"] > max_se)
    agree = abs(r["difference"]) <= max(num_se * r["se"], floor)
    return dict(difference=r["difference"], se=r["se"], converged=bool(agree and not inconclusive),
                inconclusive=inconclusive)


def audit(estimates, *, entropy=None, num_se: float = 3.0) -> list[dict]:
    """Checks of what must hold if every number is what it claims to be (theorems, and the
    convergence of a solve); each is {'check', 'holds', 'detail'}, a failed one says what it
    means.

    - an upper bound is not below the exact NLL of the same model (paired, num_se SEs);
    - an estimate with `convergence_check_of` (the solve redone at a 10x tighter tolerance on
      a subset, same probes and draws) agrees with the reported solve (`converged`): otherwise
      the reported solve is not converged, or the check is inconclusive (SE too large);
    - when the data entropy is known, no NLL or bound is below it.
    """
    checks = []
    by_name = {(e.model, e.name): e for e in estimates}
    for exact in (e for e in estimates if e.kind == EXACT):
        for e in estimates:
            if e.model != exact.model or e.kind != UPPER_BOUND or _paired(e, exact) is None:
                continue
            r = paired_bound_check(_paired(e, exact), exact.values, num_se)
            detail = (f"{e.name} - {exact.name} = {r['difference']:+.4f} +- {r['se']:.4f} bits/dim "
                      f"on the same {len(exact.indices)} examples (z = {r['z']:+.1f})")
            if not r["holds"]:
                detail += ": IMPOSSIBLE for an upper bound on the same model's NLL: a bug"
            checks.append(dict(check=f"{e.name} >= {exact.name} ({e.model})", holds=r["holds"],
                               detail=detail))
    for check in (e for e in estimates if e.convergence_check_of):
        solve = by_name.get((check.model, check.convergence_check_of))
        if solve is None or _paired(solve, check) is None:
            continue
        r = converged(_paired(solve, check), check.values)
        detail = (f"{solve.name} - {check.name} = {r['difference']:+.4f} +- {r['se']:.4f} "
                  f"bits/dim on the same {len(check.indices)} examples, probes and draws "
                  f"(converged if within max(2 SE, 0.02) with SE <= 0.02)")
        if r["inconclusive"]:
            detail += (": INCONCLUSIVE: too few examples (or too noisy a pair) to tell whether "
                       "the solve converged; check more examples")
        elif not r["converged"]:
            detail += (": NOT CONVERGED in the solver tolerance; the reported value is not yet "
                       "the ODE model's NLL (tighten the tolerance)")
        checks.append(dict(check=f"{solve.name} ({solve.model}) converged in the solver tolerance",
                           holds=r["converged"], detail=detail))
    if entropy is not None:
        for e in estimates:
            mean, se = mean_and_se(e.values)
            holds = mean + num_se * se >= entropy
            checks.append(dict(
                check=f"{e.name} ({e.model}) >= the data entropy {entropy:.4f}", holds=bool(holds),
                detail=f"{mean - entropy:+.4f} +- {se:.4f} bits/dim above it" + (
                    "" if holds else ": IMPOSSIBLE for an NLL or an upper bound: a bug")))
    return checks


def comparisons(estimates, num_levels: int) -> list[dict]:
    """Reported comparisons that are not theorems; each is {'comparison', 'difference', 'se',
    'z', 'detail'}.

    - every solver-based estimate (one with a convergence check) against the other bounds of
      the same model, paired: the PF-ODE likelihood is the ODE flow's, the ELBOs bound the
      reverse SDE / chain; they coincide only for an exact score, so either may be lower;
    - every estimate against the uniform model log2 K (did the model learn?).
    """
    rows = []
    checked = {(e.model, e.convergence_check_of) for e in estimates if e.convergence_check_of}
    for solve in (e for e in estimates if (e.model, e.name) in checked):
        for e in estimates:
            if (e.model != solve.model or e is solve or e.convergence_check_of
                    or _paired(e, solve) is None):
                continue
            r = paired_bound_check(_paired(e, solve), solve.values)
            below = r["z"] < -2
            rows.append(dict(
                comparison=f"{e.name} - {solve.name} ({e.model})", difference=r["difference"],
                se=r["se"], z=r["z"],
                detail=(f"{r['difference']:+.4f} +- {r['se']:.4f} bits/dim on the same "
                        f"{len(solve.indices)} examples (z = {r['z']:+.1f}): " + (
                            "the bound is BELOW the ODE flow's NLL: the two models differ (the "
                            "learned score is not exact), the ODE model is the worse one here"
                            if below else "the ODE flow's NLL is below this bound" if r["z"] > 2
                            else "no significant difference (|z| <= 2)"))))
    uniform = math.log2(num_levels)
    for e in estimates:
        mean, se = mean_and_se(e.values)
        rows.append(dict(comparison=f"{e.name} ({e.model}) - uniform model", difference=mean - uniform,
                         se=se, z=(mean - uniform) / se if se > 0 else float("-inf"),
                         detail=f"{mean - uniform:+.4f} +- {se:.4f} bits/dim against log2 K = "
                                f"{uniform:.3f}" + ("" if mean < uniform else
                                                    ": NOT BETTER than uniform: undertrained, "
                                                    "or overfit (a train loss far below it)")))
    return rows


def likelihood_vs_speed(results: dict) -> list[dict]:
    """One point per (model, sampler setting): the model's headline likelihood against the
    sampler's wall time per dimension.

    The headline is the model's exact NLL when it has one, else its lowest upper bound among
    those computed on the most held-out examples (so a costly estimator run on a subset, such
    as the PF-ODE solve and its check, is not picked on a different subset's luck). Returns
    [{'model', 'sampler', 'setting', 'nfe', 'bits_per_dim', 'se', 'estimator',
    'ms_per_dim'}], ordered as results['sampling']; models without such an estimate are left
    out.
    """
    headline = {}
    for r in results["likelihoods"]:
        rank = {EXACT: 0, UPPER_BOUND: 1}.get(r["kind"])
        if rank is None:
            continue
        best = headline.get(r["model"])
        order = (rank, -r["num_examples"], r["bits_per_dim"])
        if best is None or order < best[0]:
            headline[r["model"]] = (order, r)
    num_dims = results["dataset"]["num_dims"]
    points = []
    for s in results.get("sampling", []):
        if s["model"] not in headline:
            continue
        r = headline[s["model"]][1]
        points.append(dict(model=s["model"], sampler=s["sampler"], setting=s["setting"],
                           nfe=s["nfe"], bits_per_dim=r["bits_per_dim"], se=r["se"],
                           estimator=r["name"], ms_per_dim=1e3 * s["seconds_per_sample"] / num_dims))
    return points


def plot_likelihood_vs_speed(points: list[dict], unit: str, entropy, path: str) -> None:
    """Headline likelihood (y, with 1-SE bars) against sampling wall time per dimension (x, log);
    one marker per model, one point per sampler setting, the entropy as a line when known."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for k, model in enumerate(dict.fromkeys(p["model"] for p in points)):
        group = [p for p in points if p["model"] == model]
        ax.errorbar([p["ms_per_dim"] for p in group], [p["bits_per_dim"] for p in group],
                    yerr=[p["se"] for p in group], fmt="os^vDP<>"[k % 8], capsize=3,
                    label=f"{model} ({group[0]['estimator']})")
    if entropy is not None:
        ax.axhline(entropy, color="gray", ls="--", label="data entropy")
    ax.set_xscale("log")
    ax.set_xlabel("sampling wall time per dimension (ms)")
    ax.set_ylabel(f"NLL or upper bound ({unit})")
    ax.set_title("likelihood against sampling speed")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(results: dict) -> str:
    unit = results["dataset"]["unit"]
    lines = [f"# {results.get('title', 'Comparison')} on {results['dataset']['name']} "
             f"({results['dataset']['description']})",
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
    lines += ["", "## Models", "", "| model | parameters | steps | train s | final train loss (its objective) |",
              "|---|---|---|---|---|"]
    for m in results["models"]:
        lines.append(f"| {m['family']} | {m['parameters']:,} | {m['steps']} | "
                     f"{_fmt(m.get('train_seconds'), 0)} | {_fmt(m['final_train_loss'])} |")
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
    points = likelihood_vs_speed(results)
    if points:
        per = "char" if unit == "bits/char" else "token" if unit == "bits/token" else "dim"
        lines += ["", "## Likelihood against sampling speed", "",
                  f"Each model's exact NLL, or its lowest upper bound, against the wall time per "
                  f"{per} of each of its samplers (likelihood_vs_speed.png).", "",
                  f"| model | estimator | {unit} | SE | sampler | setting | NFE | ms / {per} |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in points:
            lines.append(f"| {p['model']} | {p['estimator']} | {p['bits_per_dim']:.4f} | "
                         f"{p['se']:.4f} | {p['sampler']} | {p['setting']} | {p['nfe']:.0f} | "
                         f"{p['ms_per_dim']:.4f} |")
    lines += ["", "## Self-audit (what must hold)", ""]
    for c in results["audit"]:
        lines.append(f"- {'ok' if c['holds'] else '**FAILED**'}: {c['check']}: {c['detail']}")
    if not results["audit"]:
        lines.append("- no check applies: no model has both an exact NLL and a bound, no estimate "
                     "has a convergence check, and the data entropy is unknown")
    if results.get("comparisons"):
        lines += ["", "## Comparisons (reported, not theorems)", ""]
        lines += [f"- {c['comparison']}: {c['detail']}" for c in results["comparisons"]]
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
