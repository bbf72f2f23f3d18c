"""Sampler overhead: wall time of each jitted N-step sampler divided by the time of the same
number of model evaluations (its NFE) run back to back in one jitted ``lax.scan``.
Stochastic samplers (DDPM, DDIM eta > 0, Euler-Maruyama, PC) also pay for their Gaussian
noise, which the peer does not draw; ``--key_impl unsafe_rbg`` shows how much of it is the
default threefry generator.

The model is an eps-predicting MLP (64 -> 512 -> 512 -> 64, GELU, time added to the first
layer) on a batch of 256, so the network dominates a step and the ratio measures what the
sampler adds (coefficients, noise, conversions, bookkeeping). Goal: ratio <= 1.05.

Run from the repo root:
  python benchmarks/sampler_overhead.py [--steps 50] [--repeats 15] [--key_impl unsafe_rbg]
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import param
from gen_jax.core import samplers as S
from gen_jax.core.schedules import discretize_process
from gen_jax.core.sde import VPSDE

DIM, WIDTH, BATCH = 64, 512, 256


def init_mlp(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    dense = lambda k, m, n: jax.random.normal(k, (m, n)) / np.sqrt(m)
    return {"w1": dense(k1, DIM, WIDTH), "wt": dense(k2, 1, WIDTH)[0], "b1": jnp.zeros(WIDTH),
            "w2": dense(k3, WIDTH, WIDTH), "b2": jnp.zeros(WIDTH),
            "w3": dense(k4, WIDTH, DIM), "b3": jnp.zeros(DIM)}


def mlp(params, x, t):
    """(B, 64), (B,) -> (B, 64)."""
    h = jax.nn.gelu(x @ params["w1"] + t[:, None] * params["wt"] + params["b1"])
    h = jax.nn.gelu(h @ params["w2"] + params["b2"])
    return h @ params["w3"] + params["b3"]


def seconds(fn, arg):
    start = time.perf_counter()
    jax.block_until_ready(fn(arg))
    return time.perf_counter() - start


def paired_timings(fn, arg, peer, peer_arg, repeats):
    """Median seconds of fn and of peer, and the median of their per-repeat ratio; the two
    alternate so that load changes on a shared machine hit both alike."""
    jax.block_until_ready(fn(arg))  # compile and warm up
    jax.block_until_ready(peer(peer_arg))
    pairs = np.array([(seconds(fn, arg), seconds(peer, peer_arg)) for _ in range(repeats)])
    return np.median(pairs[:, 0]), np.median(pairs[:, 1]), np.median(pairs[:, 0] / pairs[:, 1])


def model_only(params, nfe):
    """nfe chained model calls inside one jitted scan (the peer every sampler is compared to)."""
    @jax.jit
    def run(x):
        def body(x, t):
            return mlp(params, x, jnp.full((BATCH,), t)), None
        return jax.lax.scan(body, x, jnp.linspace(1.0, 1e-3, nfe))[0]
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--key_impl", default="threefry2x32",
                        help="PRNG implementation (e.g. unsafe_rbg: cheaper noise for the stochastic samplers)")
    args = parser.parse_args()
    n = args.steps
    params = init_mlp(jax.random.PRNGKey(0))
    eps_fn = lambda x, t: mlp(params, x, t)
    vp = VPSDE()
    score_fn = param.Denoiser(vp, fn=eps_fn, prediction="eps").score
    # The same MLP as an EDM denoiser D(x, sigma) = x - sigma eps(x / sqrt(1 + sigma^2), c(sigma)).
    edm_fn = lambda x, sigma: x - sigma[:, None] * eps_fn(x / jnp.sqrt(1.0 + sigma[:, None] ** 2),
                                                         0.25 * jnp.log(sigma))
    schedule = discretize_process(vp, n)
    shape = (BATCH, DIM)
    samplers = {
        "ddpm": lambda k: S.ddpm_sample(k, eps_fn, schedule, shape, prediction="eps"),
        "ddim (eta=0)": lambda k: S.ddim_sample(k, eps_fn, schedule, shape, n, prediction="eps"),
        "ddim (eta=1)": lambda k: S.ddim_sample(k, eps_fn, schedule, shape, n, eta=1.0, prediction="eps"),
        "euler_maruyama": lambda k: S.euler_maruyama_sample(k, score_fn, vp, shape, n, denoise=False),
        "pc (1 corrector)": lambda k: S.pc_sample(k, score_fn, vp, shape, n, denoise=False),
        "ode euler": lambda k: S.ode_sample(k, score_fn, vp, shape, n),
        "ode heun": lambda k: S.ode_sample(k, score_fn, vp, shape, n, method="heun"),
        "dpm_solver_pp (2M)": lambda k: S.dpm_solver_pp_sample(k, eps_fn, vp, shape, n, prediction="eps"),
        "edm_heun (EDM-form D)": lambda k: S.edm_heun_sample(k, edm_fn, shape, n),
        "edm_heun (VP adapter)": lambda k: S.edm_heun_sample(
            k, S.edm_denoiser(param.Denoiser(vp, fn=eps_fn, prediction="eps").x0, vp), shape, n,
            sigma_max=80.0),
        "ode adaptive (dopri5, 1e-3)": lambda k: S.ode_sample_adaptive(
            k, score_fn, vp, shape, rtol=1e-3, atol=1e-3),
    }
    key = jax.random.key(1, impl=args.key_impl)
    x = jax.random.normal(key, shape)
    print(f"device: {jax.devices()[0].device_kind}; MLP {DIM}-{WIDTH}-{WIDTH}-{DIM}, batch {BATCH}, "
          f"N={n}, {args.key_impl} keys, medians of {args.repeats} alternating runs")
    print(f"{'sampler':30s} {'NFE':>5s} {'sampler ms':>11s} {'model-only ms':>14s} {'ratio':>7s}")
    for name, sample in samplers.items():
        sample = jax.jit(sample)
        nfe = int(sample(key).nfe)
        sampler_s, peer_s, ratio = paired_timings(
            lambda k: sample(k).samples, key, model_only(params, nfe), x, args.repeats)
        print(f"{name:30s} {nfe:5d} {1e3 * sampler_s:11.2f} {1e3 * peer_s:14.2f} {ratio:7.3f}")

if __name__ == "__main__":
    main()
