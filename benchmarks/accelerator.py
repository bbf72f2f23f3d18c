"""Train-step throughput and model-FLOPs utilisation (MFU) on one accelerator.

Two models, each trained with the library's own jitted step (`gen_jax.train.step`, AdamW, EMA,
non-finite skip) in bf16 compute with f32 parameters:
  gpt2  AR transformer of GPT-2-small shape: width 768, depth 12, 12 heads, 1024 tokens, vocab
        50257, learned positions, GELU MLP. gen_jax's head is untied (with a bias) and its token
        table has a BOS row, so it has ~163M parameters where GPT-2 (tied) has 124M.
  dit   DiT-S/2-size Gaussian diffusion transformer (eps-MSE loss, gen_jax.core.losses):
        width 384, depth 12, 6 heads, patch 2 over 32x32x3 images (256 tokens), adaLN-zero.
Attention is `jax.nn.dot_product_attention(implementation='cudnn')` on GPUs, XLA elsewhere.

Reported per model: median step time over `--steps` timed steps after `--warmup` steps (each
step waited for), tokens/s (gpt2) or images/s (dit), model FLOPs per step and MFU = achieved
FLOP/s / the device's peak dense bf16 FLOP/s (PEAK_BF16_FLOPS; unknown devices: MFU not
reported). Model FLOPs per step are counted analytically, forward + backward:
  6 N T  +  12 n_layers d_model S T
with N the parameters that multiply activations (all but the token / position tables), T the
tokens per step (batch x sequence) and S the sequence length: the second term is QK^T and AV,
counted over the full S x S score matrix (as PaLM, Chowdhery et al. 2022, App. B), also for the
causal gpt2. Remat recomputation is not counted (it is not model FLOPs).

No GPU numbers exist yet: this script is ready for one. Run from the repo root:
  python benchmarks/accelerator.py                 # both models, default batch sizes
  python benchmarks/accelerator.py --model gpt2 --batch 16 --remat
  python benchmarks/accelerator.py --smoke         # tiny sizes, seconds on CPU (CI runs this)
"""
import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gen_jax import families
from gen_jax.core.likelihood import ar_nll
from gen_jax.core.losses import eps_mse_loss
from gen_jax.core.schedules import LinearLogSNR
from gen_jax.core.sde import LogSNRSDE
from gen_jax.models.ar import ar_inputs
from gen_jax.train import sharding as sharding_lib
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.state import create_train_state
from gen_jax.train.step import jit_train_step, place_state, train_step_fn

# Peak dense bf16 FLOP/s by `device_kind` substring (vendor datasheets; SXM parts for NVIDIA).
PEAK_BF16_FLOPS = (
    ("H200", 989e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
)

SIZES = {  # the benchmarked sizes; batch: examples per step (override with --batch)
    "gpt2": dict(width=768, depth=12, heads=12, seq_len=1024, vocab=50257, batch=16),
    "dit": dict(width=384, depth=12, heads=6, image=(32, 32, 3), patch=2, batch=256),
}
SMOKE_SIZES = {
    "gpt2": dict(width=32, depth=2, heads=2, seq_len=64, vocab=256, batch=4),
    "dit": dict(width=32, depth=2, heads=2, image=(8, 8, 3), patch=2, batch=4),
}  # tiny sizes for --smoke (CPU, seconds)


def peak_flops(device_kind: str):
    """Peak dense bf16 FLOP/s of a device kind, or None if it is not in PEAK_BF16_FLOPS."""
    for name, flops in PEAK_BF16_FLOPS:
        if name.lower() in device_kind.lower():
            return flops
    return None


def model_flops_per_step(matmul_params: int, tokens: int, depth: int, width: int,
                         seq_len: int) -> float:
    """Forward + backward model FLOPs: 6 N T + 12 depth width S T (module docstring)."""
    return 6.0 * matmul_params * tokens + 12.0 * depth * width * seq_len * tokens


def _matmul_params(params) -> int:
    """Parameters that multiply activations: all but the token and position tables."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return int(sum(x.size for path, x in leaves
                   if not any(getattr(k, "key", None) in ("token_embed", "position_embed")
                              for k in path)))


def build(name: str, size: dict, compute_dtype, remat: bool, key):
    """(params, loss_fn(params, batch, key) -> (B,), batch, tokens per step, seq_len)."""
    attention = "cudnn" if jax.default_backend() == "gpu" else None
    common = dict(d_model=size["width"], num_layers=size["depth"], num_heads=size["heads"],
                  dtype=compute_dtype, remat=remat, attention_implementation=attention)
    batch_size = size["batch"]
    if name == "gpt2":
        seq_len = size["seq_len"]
        model = nnx.jit(lambda: families.build_model(
            "ar", data_shape=(seq_len,), num_levels=size["vocab"], rngs=nnx.Rngs(0),
            positional="learned", **common))()
        view, params = families.ModelView.of(model)
        bos = size["vocab"]

        def loss_fn(p, b, k):  # nats per token of the next-token cross-entropy
            del k
            return ar_nll(view.apply(p, ar_inputs(b["tokens"], bos)), b["tokens"]) / seq_len

        batch = {"tokens": np.asarray(jax.random.randint(key, (batch_size, seq_len), 0,
                                                          size["vocab"]), np.int32)}
        return params, loss_fn, batch, batch_size * seq_len, seq_len
    image, patch = tuple(size["image"]), size["patch"]
    model = nnx.jit(lambda: families.build_model(
        "gaussian", data_shape=image, rngs=nnx.Rngs(0), patch_size=patch, **common))()
    view, params = families.ModelView.of(model)
    process = LogSNRSDE(LinearLogSNR(logsnr_max=10.0, logsnr_min=-10.0))

    def loss_fn(p, b, k):
        return eps_mse_loss(k, lambda x, t: view.apply(p, x, t), b["image"], process)

    batch = {"image": np.asarray(jax.random.normal(key, (batch_size, *image)), np.float32)}
    seq_len = (image[0] // patch) * (image[1] // patch)
    return params, loss_fn, batch, batch_size * seq_len, seq_len


def benchmark(name: str, size: dict, *, steps: int, warmup: int, compute_dtype, remat: bool):
    """One model's timings and FLOPs as a dict."""
    params, loss_fn, host_batch, tokens, seq_len = build(name, size, compute_dtype, remat,
                                                        jax.random.PRNGKey(0))
    mesh = sharding_lib.make_mesh(1)
    optimizer = make_optimizer(learning_rate=1e-4, total_steps=10_000, warmup_steps=10)
    state = place_state(create_train_state(params, optimizer, jax.random.PRNGKey(1)), mesh)
    step = jit_train_step(train_step_fn(loss_fn, optimizer, ema_decay=0.999), mesh, state)
    batch = sharding_lib.global_batch(host_batch, mesh)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready((state, metrics))
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    n_params = int(sum(x.size for x in jax.tree.leaves(params)))
    flops = model_flops_per_step(_matmul_params(params), tokens, size["depth"], size["width"],
                                 seq_len)
    peak = peak_flops(jax.devices()[0].device_kind)
    rate = size["batch"] / step_s
    return dict(model=name, params=n_params, batch=size["batch"], seq_len=seq_len,
                step_ms=1e3 * step_s,
                throughput=f"{rate * (seq_len if name == 'gpt2' else 1):.4g} "
                           f"{'tokens' if name == 'gpt2' else 'images'}/s",
                model_tflops_per_step=flops / 1e12, achieved_tflops=flops / step_s / 1e12,
                mfu=None if peak is None else flops / step_s / peak,
                final_loss=float(metrics["loss"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("gpt2", "dit", "both"), default="both")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds on CPU)")
    parser.add_argument("--batch", type=int, default=0, help="override the batch size")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile)")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--remat", action="store_true", help="activation checkpointing")
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch < 0:
        raise ValueError("--steps must be >= 1, --warmup and --batch >= 0")
    sizes = SMOKE_SIZES if args.smoke else SIZES
    steps, warmup = (2, 1) if args.smoke else (args.steps, args.warmup)
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({jax.default_backend()}), peak bf16 "
          f"{peak_flops(device.device_kind) or 'unknown (MFU not reported)'} FLOP/s; "
          f"compute {args.dtype}, remat {args.remat}")
    results = []
    for name in (("gpt2", "dit") if args.model == "both" else (args.model,)):
        size = dict(sizes[name], **({"batch": args.batch} if args.batch else {}))
        r = benchmark(name, size, steps=steps, warmup=warmup, compute_dtype=jnp.dtype(args.dtype),
                      remat=args.remat)
        results.append(r)
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        print(f"{r['model']:5s} params {r['params'] / 1e6:7.2f}M  batch {r['batch']:4d}  seq "
              f"{r['seq_len']:5d}  step {r['step_ms']:9.2f} ms  {r['throughput']:>18s}  "
              f"{r['model_tflops_per_step']:.4g} TFLOP/step  {r['achieved_tflops']:.4g} "
              f"TFLOP/s  MFU {mfu}  loss {r['final_loss']:.4g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=device.device_kind, results=results), f, indent=1)
    return results


if __name__ == "__main__":
    main()
