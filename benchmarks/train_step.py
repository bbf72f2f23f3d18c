"""AR transformer train step: gen_jax (JAX/Flax NNX, jitted, donated, optax AdamW) vs an
equal-size PyTorch GPT written the nanoGPT way (pre-norm blocks, GELU MLP, learned positions,
fused causal attention via F.scaled_dot_product_attention, torch.optim.AdamW).

Both sides: same batch, sequence length, vocabulary, random tokens, 2 CPU threads. The torch
side runs in a persistent subprocess and the two alternate: `--rounds` rounds of `--steps`
timed steps each, after warm-up, so that a slow spell of this shared machine hits both. Printed:
median step time of each side over all rounds, tokens/s = batch * seq / step time, and the
median over rounds of the per-round tokens/s ratio.
Torch is never a runtime dependency: it runs in a separate interpreter (default
.venv-bench/bin/python; create it with
  python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0 numpy).
Run from the repo root:  python benchmarks/train_step.py [--torch_python PATH]

What limits the JAX side on XLA:CPU (measured on the 2-core machine, see the README's layout
notes): (1) autodiff's weight gradients x^T g left the fast GEMM path (fixed by
gen_jax.models.matmul); (2) a batched GEMM of small matrices (attention's 32 x (128x64x128))
runs on one thread: 0.69 ms on 1 core and 0.70 ms on 2, where torch goes from 0.80 to 0.38 ms
(gen_jax.models.attention splits the batch into chunks that XLA runs concurrently, which
recovers part of it); (3) the rest of the backward pass is ~10% slower than torch's: its
weight gradients need explicit transposes (x^T or g^T) into which XLA fuses their elementwise
producers (a LayerNorm is recomputed while copying), where oneDNN takes transposed operands.
This shared machine is noisy: per-round ratios vary by +-15%.

Differences kept on purpose: nanoGPT ties the output head to the token table and has no head
bias; gen_jax's head is untied with a bias and its token table has a BOS row. Parameter counts
of both sides are printed.
"""
import argparse
import os
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import optax
from flax import nnx

from gen_jax.models import ARTransformer, TransformerConfig, count_params, functional

TORCH_SIDE = textwrap.dedent("""
    import sys, time, math
    import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
    layers, heads, d, seq, batch, vocab, steps, warmup = map(int, sys.argv[1:9])
    torch.set_num_threads(2); torch.manual_seed(0)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(x).split(d, dim=2)
            q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(d), Attention(), nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(seq, d)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
            self.head.weight = self.tok.weight  # weight tying, as nanoGPT
        def forward(self, idx, targets):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            for blk in self.blocks:
                x = blk(x)
            logits = self.head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, vocab), targets.view(-1))

    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    data = torch.randint(0, vocab, (batch, seq + 1))
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    def step():
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()

    for _ in range(warmup):
        step()
    print(sum(p.numel() for p in model.parameters()), flush=True)
    for _ in sys.stdin:  # one round of `steps` timed steps per line
        time.sleep(0.5)  # let the other side's threads go idle
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        print(" ".join(map(str, times)), flush=True)
""")


def jax_stepper(layers, heads, d, seq, batch, vocab, steps, warmup):
    """Returns (param count, run_round) with run_round() -> `steps` step times (s)."""
    cfg = TransformerConfig(num_layers=layers, num_heads=heads, d_model=d, max_len=seq,
                            positional="learned", mlp="gelu", causal=True)
    model = ARTransformer(cfg, vocab, rngs=nnx.Rngs(0))
    apply_fn, params = functional(model)
    opt = optax.adamw(3e-4, weight_decay=0.1)

    def loss_fn(params, x, y):
        logits = apply_fn(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(step, donate_argnums=(0, 1))
    data = jax.random.randint(jax.random.key(0), (batch, seq + 1), 0, vocab)
    x, y = data[:, :-1], data[:, 1:]
    state = [params, opt.init(params)]

    def run(n):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            state[0], state[1], loss = step(state[0], state[1], x, y)
            loss.block_until_ready()
            times.append(time.perf_counter() - t0)
        return times

    run(warmup)
    return count_params(model), lambda: run(steps)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d_model", type=int, default=256)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round and side")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--torch_python", default=os.path.join(".venv-bench", "bin", "python"))
    args = parser.parse_args()
    if not os.path.exists(args.torch_python):
        sys.exit(f"no torch interpreter at {args.torch_python}: see the module docstring")
    dims = [args.layers, args.heads, args.d_model, args.seq, args.batch, args.vocab, args.steps,
            args.warmup]
    torch_side = subprocess.Popen([args.torch_python, "-c", TORCH_SIDE, *map(str, dims)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    n_torch = int(torch_side.stdout.readline())
    n_jax, jax_round = jax_stepper(*dims)
    jax_times, torch_times, ratios = [], [], []
    for _ in range(args.rounds):
        time.sleep(0.5)  # let the other side's threads go idle
        t_jax = jax_round()
        torch_side.stdin.write("round\n")
        torch_side.stdin.flush()
        t_torch = [float(t) for t in torch_side.stdout.readline().split()]
        jax_times += t_jax
        torch_times += t_torch
        ratios.append(np.median(t_torch) / np.median(t_jax))
    torch_side.stdin.close()
    torch_side.wait()
    tokens = args.batch * args.seq
    for name, n, times in [(f"jax ({jax.devices()[0].platform})", n_jax, jax_times),
                           ("torch (cpu)", n_torch, torch_times)]:
        t = float(np.median(times))
        print(f"{name:11s}: {n:,} params, step {1e3 * t:7.1f} ms, {tokens / t:9.0f} tok/s")
    print(f"tokens/s ratio jax/torch, per round: {' '.join(f'{r:.2f}' for r in ratios)}")
    print(f"tokens/s ratio jax/torch: {np.median(ratios):.2f} (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
