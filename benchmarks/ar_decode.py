"""AR decoding: KV cache (gen_jax.models.generate) vs full recomputation.

Peer ("naive"): the same model, jitted, decoding into a fixed-size padded buffer of
P + N tokens; each step re-runs the whole causal model over the buffer and reads the logits at
the current position (static shapes, so one compile). Its per-step cost does not depend on the
step, so for long runs it is timed on the first `--naive_steps` steps and scaled to N
(printed as "extrapolated"); pass --naive_steps 0 to time it in full.

Model: 4 layers, d_model 256, 4 heads, vocab 256, batch 8, prompt 1 (BOS), N in {256, 1024}.
Run from the repo root:  python benchmarks/ar_decode.py [--repeats 3] [--lengths 256 1024]
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gen_jax.core.categorical import sample_categorical
from gen_jax.models import ARTransformer, TransformerConfig, functional, generate


def naive_decoder(model, total_len, steps):
    """Jitted full-recompute sampler: `steps` new tokens into a (B, total_len) buffer."""
    apply_fn, params = functional(model)

    @jax.jit
    def run(params, key, buffer, start):
        def body(i, buf):
            logits = apply_fn(params, buf)  # (B, total_len, V): whole sequence every step
            pos = start + i
            last = jax.lax.dynamic_index_in_dim(logits, pos - 1, axis=1, keepdims=False)
            tok = sample_categorical(jax.random.fold_in(key, i), last)
            return jax.lax.dynamic_update_index_in_dim(buf, tok[:, None], pos, axis=1)
        return jax.lax.fori_loop(0, steps, body, buffer)

    return lambda key, buffer: run(params, key, buffer, 1)


def median_time(fn, repeats):
    jax.block_until_ready(fn())  # compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive_steps", type=int, default=64,
                        help="steps timed for the naive peer (0: all); scaled to the full length")
    args = parser.parse_args()
    print(f"devices: {jax.devices()}")
    for n in args.lengths:
        cfg = TransformerConfig(num_layers=4, num_heads=4, d_model=256, max_len=n + 1)
        model = ARTransformer(cfg, 256, rngs=nnx.Rngs(0))
        prompt = jnp.full((args.batch, 1), model.bos_id, jnp.int32)
        key = jax.random.key(0)
        cached = median_time(lambda: generate(model, key, prompt, n).samples, args.repeats)
        steps = n if args.naive_steps <= 0 else min(n, args.naive_steps)
        buffer = jnp.pad(prompt, ((0, 0), (0, n)))
        naive_fn = naive_decoder(model, n + 1, steps)
        naive = median_time(lambda: naive_fn(key, buffer), args.repeats) * n / steps
        note = "" if steps == n else f" (extrapolated from {steps} steps)"
        print(f"N={n:5d} batch={args.batch}: kv-cache {cached:8.3f} s ({args.batch * n / cached:9.0f} tok/s)"
              f" | full recompute {naive:8.3f} s{note} | speedup x{naive / cached:.1f}")


if __name__ == "__main__":
    main()
