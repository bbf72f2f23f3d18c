"""Per-device memory and steps/s of each parameter-sharding strategy on 8 fake CPU devices.

An AR transformer (width 256, depth 4, 4 heads) on digits (64 tokens, batch 32), trained with
the library's jitted step under 'replicated' (8x1 mesh), 'fsdp' (8x1) and 'fsdp_tp' (4x2).
Printed per strategy: bytes of parameters and of the whole TrainState held by device 0 (from
`addressable_shards`), and median steps/s over `--steps` steps after 2 warm-up steps. The 8
devices are simulated on the host's cores (XLA_FLAGS=--xla_force_host_platform_device_count=8),
so the speed says nothing about real accelerators: the collectives are memory copies.
Run from the repo root:  python benchmarks/sharding_cpu.py [--steps 10]
"""
import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"  # before jax is imported

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from experiments.configs.base import get_base_config  # noqa: E402
from gen_jax.train import build, sharding as sharding_lib  # noqa: E402
from gen_jax.train.restore import optimizer_from_config  # noqa: E402
from gen_jax.train.state import create_train_state  # noqa: E402
from gen_jax.train.step import jit_train_step, place_state, train_step_fn  # noqa: E402

STRATEGIES = (("replicated", 1), ("fsdp", 1), ("fsdp_tp", 2))


def device0_bytes(tree) -> int:
    """Bytes of `tree`'s arrays that live on device 0."""
    device = jax.devices()[0]
    return int(sum(s.data.nbytes for x in jax.tree.leaves(tree) for s in x.addressable_shards
                   if s.device == device))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    config = get_base_config("ar", "digits")
    config.model.width, config.model.depth, config.model.num_heads = 256, 4, 4
    config.train.batch_size = 32
    components = build.build_components(config)
    optimizer, _ = optimizer_from_config(config)
    total = int(sum(x.size for x in jax.tree.leaves(components.params)))
    print(f"AR width 256 depth 4: {total} parameters ({4 * total} bytes f32), 8 fake CPU devices")
    for strategy, model in STRATEGIES:
        mesh = sharding_lib.make_mesh(8, model)
        state = place_state(create_train_state(components.params, optimizer,
                                               jax.random.PRNGKey(0)), mesh, strategy)
        step = jit_train_step(train_step_fn(components.loss_fn, optimizer, ema_decay=0.999),
                              mesh, state, strategy)
        batches = components.train_batches(0, 0, 1)
        times = []
        for i in range(2 + args.steps):
            batch = sharding_lib.global_batch(next(batches), mesh)
            start = time.perf_counter()
            state, metrics = step(state, batch)
            jax.block_until_ready(state)
            if i >= 2:
                times.append(time.perf_counter() - start)
        print(f"{strategy:10s} mesh {mesh.shape['data']}x{mesh.shape['model']}  params/device "
              f"{device0_bytes(state.params):9d} B  state/device {device0_bytes(state):9d} B  "
              f"{1 / statistics.median(times):6.2f} steps/s  loss {float(metrics['loss']):.4f}")


if __name__ == "__main__":
    main()
