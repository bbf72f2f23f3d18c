"""Generation speed as a function: for each sequence length L and batch size, the wall time of
each family's default sampler on a randomly initialised model of one shared size, as the median
of `rounds` timed calls (after a compile warmup; the order of the settings alternates between
rounds so a slow spell of a shared machine hits every setting alike); seconds per sequence and
tokens per second, where the curves cross, and the report (`experiments.generation_speed` is its
CLI)."""
import os
import statistics
import time

import jax
from flax import nnx

from experiments.claims import report
from experiments.comparison.run import count_params_tree
from gen_jax import families
from gen_jax.data.dataset import DataSpec


def text_spec(length: int, vocab_size: int) -> DataSpec:
    return DataSpec(name="random tokens", kind="text", shape=(length,), num_levels=vocab_size)


def timed_families(cfg, spec) -> tuple:
    """cfg.families, or every registered family that models text."""
    return tuple(cfg.families) or tuple(n for n in families.names()
                                        if families.get(n).supports(spec))


def settings_at(cfg, length: int) -> list[dict]:
    """The samplers timed at `length`: per family its default sampler at `fixed_steps` and at
    T = L steps (one entry when the sampler ignores the step count). Each: dict(family, curve
    (a label shared across lengths), sampler, params)."""
    spec = text_spec(length, cfg.vocab_size)
    out = []
    for name in timed_families(cfg, spec):
        family = families.get(name)
        config = cfg.model_config.copy_and_resolve_references()
        config.family = name
        model = family.build_model(spec, config, nnx.Rngs(cfg.seed))
        view, params = families.ModelView.of(model)

        def sampler(num_steps):
            config.sample.num_steps = num_steps
            return family.default_sampler(view, spec, config)
        fixed, proportional = sampler(cfg.fixed_steps), sampler(length)
        if sampler(cfg.fixed_steps + 1).setting == fixed.setting:  # ignores the step count
            out.append(dict(family=name, curve=f"{name}: {fixed.name}", sampler=fixed,
                            params=params))
        else:
            out += [dict(family=name, curve=f"{name}: {fixed.name}, {cfg.fixed_steps} steps",
                         sampler=fixed, params=params),
                    dict(family=name, curve=f"{name}: {fixed.name}, L steps",
                         sampler=proportional, params=params)]
    return out


def time_settings(settings, batch: int, rounds: int, key) -> list[dict]:
    """Median wall seconds of `sampler.fn(params, key, batch)` per setting (after a warmup)."""
    nfe = {}
    for s in settings:
        nfe[s["curve"]] = float(jax.numpy.mean(
            jax.block_until_ready(s["sampler"].fn(s["params"], key, batch)).nfe))
    times = {s["curve"]: [] for s in settings}
    for r in range(rounds):
        for s in (settings if r % 2 == 0 else settings[::-1]):
            k = jax.random.fold_in(key, r + 1)
            start = time.perf_counter()
            jax.block_until_ready(s["sampler"].fn(s["params"], k, batch).samples)
            times[s["curve"]].append(time.perf_counter() - start)
    return [dict(family=s["family"], curve=s["curve"], setting=s["sampler"].setting,
                 nfe=nfe[s["curve"]], median_seconds=statistics.median(times[s["curve"]]),
                 round_seconds=times[s["curve"]]) for s in settings]


def run_generation_speed(cfg, workdir: str, command: str = "") -> dict:
    start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    key = jax.random.PRNGKey(cfg.seed)
    rows, parameters = [], {}
    for length in cfg.lengths:
        settings = settings_at(cfg, length)
        for s in settings:
            parameters.setdefault(s["family"], {})[length] = count_params_tree(s["params"])
        for batch in cfg.batch_sizes:
            for t in time_settings(settings, batch, cfg.rounds, key):
                t.update(length=length, batch_size=batch,
                         seconds_per_sequence=t["median_seconds"] / batch,
                         tokens_per_second=batch * length / t["median_seconds"])
                rows.append(t)
                print(f"[generation_speed] L={length} batch={batch} {t['curve']}: "
                      f"{1e3 * t['seconds_per_sequence']:.1f} ms/sequence, NFE {t['nfe']:g}",
                      flush=True)
    results = dict(command=command, preset=cfg.preset, parameters=parameters, rows=rows,
                   crossings=curve_crossings(rows), config=cfg.to_dict())
    results["reading"] = reading(results)
    results["wall_seconds"] = time.perf_counter() - start
    write_report(results, workdir)
    return results


def _curves(rows, batch):
    curves = {}
    for r in rows:
        if r["batch_size"] == batch:
            curves.setdefault(r["curve"], []).append(r)
    return {k: sorted(v, key=lambda r: r["length"]) for k, v in curves.items()}


def curve_crossings(rows) -> list[dict]:
    """Per batch size and pair of curves over the same lengths: the L where their seconds per
    sequence cross (linear interpolation), and which is faster at the longest L."""
    out = []
    for batch in sorted({r["batch_size"] for r in rows}):
        curves = _curves(rows, batch)
        names = sorted(curves)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ca, cb = curves[a], curves[b]
                if [r["length"] for r in ca] != [r["length"] for r in cb]:
                    continue
                xs = [r["length"] for r in ca]
                out.append(dict(batch_size=batch, a=a, b=b, cross_at_length=report.crossings(
                    xs, [r["seconds_per_sequence"] for r in ca],
                    [r["seconds_per_sequence"] for r in cb]),
                    faster_at_longest=a if ca[-1]["seconds_per_sequence"] <
                    cb[-1]["seconds_per_sequence"] else b))
    return out


def reading(results) -> list[str]:
    lines = []
    rows = results["rows"]
    for batch in sorted({r["batch_size"] for r in rows}):
        curves = _curves(rows, batch)
        for name, c in curves.items():
            growth = c[-1]["seconds_per_sequence"] / c[0]["seconds_per_sequence"]
            lines.append(f"batch {batch}, {name}: {1e3 * c[0]['seconds_per_sequence']:.1f} ms at "
                         f"L={c[0]['length']} -> {1e3 * c[-1]['seconds_per_sequence']:.1f} ms at "
                         f"L={c[-1]['length']} (x{growth:.1f} for x{c[-1]['length'] // c[0]['length']} "
                         f"length; NFE {c[0]['nfe']:g} -> {c[-1]['nfe']:g}; "
                         f"{c[-1]['tokens_per_second']:.0f} tokens/s at the longest).")
    for c in results["crossings"]:
        if c["cross_at_length"]:
            lines.append(f"batch {c['batch_size']}: {c['a']} and {c['b']} cross at L ~ "
                         + ", ".join(f"{x:.0f}" for x in c["cross_at_length"])
                         + f"; {c['faster_at_longest']} is faster at the longest L.")
    lines.append("Times are medians of alternating rounds on this machine; on a shared CPU they "
                 "carry the other jobs' noise, and on a CPU a model call's cost grows with the "
                 "tokens it processes, so the parallelism that favours diffusion on an "
                 "accelerator shows up here only in the number of calls.")
    return lines


def write_report(results, workdir) -> str:
    report.write_json(results, os.path.join(workdir, "results.json"))
    batches = sorted({r["batch_size"] for r in results["rows"]})
    for batch in batches:
        report.plot_lines(os.path.join(workdir, f"seconds_vs_length_batch{batch}.png"),
                          {k: ([r["length"] for r in c], [r["seconds_per_sequence"] for r in c])
                           for k, c in _curves(results["rows"], batch).items()},
                          xlabel="sequence length L", ylabel="wall seconds per sequence",
                          logx=True, logy=True, title=f"generation time, batch {batch}")
    table = report.markdown_table(
        ("L", "batch", "sampler", "setting", "NFE", "ms / sequence", "tokens / s"),
        [(r["length"], r["batch_size"], r["curve"], r["setting"], r["nfe"],
          1e3 * r["seconds_per_sequence"], r["tokens_per_second"]) for r in results["rows"]])
    sizes = ", ".join(f"{f}: {max(v.values()):,}" for f, v in results["parameters"].items())
    return report.write_markdown(
        os.path.join(workdir, "results.md"), f"Generation speed ({results['preset']} preset)",
        results["command"], [f"Randomly initialised models, parameters at the longest L: "
                             f"{sizes}.\n\n" + table], results["reading"], results["wall_seconds"])
