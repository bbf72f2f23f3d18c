"""Training throughput on this machine: steps/s of small AR and Gaussian-diffusion digits
configs, and the overhead of the full loop (data pipeline, sharded batch placement, tqdm,
JSONL metrics, orbax checkpoints) over the bare jitted train step on the same batches.

  python benchmarks/train_loop.py [--steps 300] [--log-every 25] [--checkpoint-every 100]
                                  [--rounds 3]

Both are timed the same way: wall time of `log_every` consecutive steps ending in a host sync,
median over the intervals after the first (compilation) one, pooled over `rounds` alternating
bare / loop runs. The bare step uses batches that
are already on the device; the loop fetches, shards and logs them itself.
"""
import argparse
import statistics
import tempfile
import time

import jax

from experiments.configs.base import get_base_config
from gen_jax.train import build, loop
from gen_jax.train import sharding as sharding_lib
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.state import create_train_state
from gen_jax.train.step import jit_train_step, place_state, train_step_fn


def bench_config(family, args):
    c = get_base_config(family, "digits")
    c.train.steps = args.steps
    c.train.batch_size = args.batch_size
    c.logging.every_steps = args.log_every
    c.logging.tensorboard = True
    c.logging.progress_bar = True
    c.checkpoint.every_steps = args.checkpoint_every
    c.eval.every_steps = 0
    c.eval.max_batches = 1
    c.sample.every_steps = 0
    return c


def bare_rates(config, comps, args):
    """Median steps/s of the jitted step alone over pre-placed batches."""
    mesh = sharding_lib.make_mesh(config.mesh.num_devices)
    opt = config.optimizer
    optimizer = make_optimizer(learning_rate=opt.learning_rate, total_steps=config.train.steps,
                               warmup_steps=opt.warmup_steps, end_lr_ratio=opt.end_lr_ratio,
                               weight_decay=opt.weight_decay, b1=opt.b1, b2=opt.b2,
                               grad_clip_norm=opt.grad_clip_norm)
    state = place_state(create_train_state(comps.params, optimizer, jax.random.PRNGKey(0)), mesh)
    step = jit_train_step(train_step_fn(comps.loss_fn, optimizer, ema_decay=opt.ema_decay),
                          mesh, state)
    host = comps.train_batches(0, 0, 1)
    batches = [sharding_lib.global_batch(next(host), mesh) for _ in range(args.log_every)]
    rates = []
    for _ in range(args.steps // args.log_every):
        start = time.perf_counter()
        for batch in batches:
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        rates.append(args.log_every / (time.perf_counter() - start))
    return rates[1:]


def loop_rates(config, comps):
    """Median steps/s of the full loop, from its own per-interval timing."""
    with tempfile.TemporaryDirectory() as workdir:
        result = loop.run(config, workdir, comps)
    return [h["steps_per_sec"] for h in result.history[1:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"devices: {jax.devices()}  steps={args.steps} batch={args.batch_size} "
          f"log_every={args.log_every} checkpoint_every={args.checkpoint_every} rounds={args.rounds}")
    for family in ("ar", "gaussian"):
        config = bench_config(family, args)
        comps = build.build_components(config)
        bare, full = [], []
        for _ in range(args.rounds):  # alternate, so load drift on a shared machine hits both
            bare += bare_rates(config, comps, args)
            full += loop_rates(config, comps)
        bare, full = statistics.median(bare), statistics.median(full)
        print(f"{family:9s} bare step {bare:8.2f} steps/s | full loop {full:8.2f} steps/s | "
              f"loop/bare {full / bare:.3f} (overhead {100 * (bare / full - 1):+.1f}%)")


if __name__ == "__main__":
    main()
