"""In-graph PF-ODE NLL (diffrax, gen_jax.core.ode_likelihood.pf_ode_nll) vs the score_sde approach
(host-side scipy.integrate.solve_ivp RK45 calling a jitted augmented drift on flattened numpy
state), on the same model, data, probes and tolerances.

Model: the exact VP-SDE score of a 64-dim diagonal Gaussian plus a small random-weight MLP
perturbation (so it is a generic network, not a closed form). Data: 64 examples of 256-level
data drawn from that Gaussian, uniformly dequantized (both methods see the same y and the same
Rademacher probes), reported as bits/dim upper bounds. Also reported: the standard error of the
batch-mean bits/dim of the Hutchinson estimator over probes and of the continuous VDM ELBO
(same model as an eps-predictor) over time samples.

Run from the repo root: python benchmarks/ode_likelihood.py [--batch 64] [--dim 64] [--repeats 5]
"""
import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

from gen_jax.core.likelihood import continuous_elbo
from gen_jax.core.ode_likelihood import pf_ode_nll
from gen_jax.core.param import Denoiser
from gen_jax.core.units import dequantized_bits_per_dim, nats_to_bits_per_dim, uniform_dequantize
from gen_jax.core.sde import VPSDE, probability_flow_drift

NUM_LEVELS = 256
T_MIN = 1e-5
TOL = 1e-5


def make_score_model(key, dim, hidden=128, data_std=0.3, perturbation=0.1):
    """score(x (B, dim), t (B,)): Gaussian-oracle score under the VP SDE + a random-weight MLP."""
    sde = VPSDE()
    k1, k2, k3 = jax.random.split(key, 3)
    w1 = jax.random.normal(k1, (dim + 1, hidden)) / math.sqrt(dim + 1)
    w2 = jax.random.normal(k2, (hidden, dim)) / math.sqrt(hidden)
    mean = 0.1 * jax.random.normal(k3, (dim,))

    def score(x, t):
        alpha, sigma = sde.alpha_sigma(t)
        var = alpha[:, None] ** 2 * data_std**2 + sigma[:, None] ** 2
        oracle = -(x - alpha[:, None] * mean) / var
        h = jnp.tanh(jnp.concatenate([x, t[:, None]], axis=-1) @ w1)
        return oracle + perturbation * (h @ w2) / jnp.sqrt(var)

    return sde, score, mean, data_std


def make_host_solver(sde, score, probes):
    """score_sde's likelihood loop: scipy RK45 on the flattened batch, one host round trip per
    drift evaluation (the augmented drift is jitted once). Returns solve(y) -> (nll (B,), nfe)."""
    shape = probes.shape
    size = probes.size

    @jax.jit
    def augmented_drift(state, t):
        x = state[:size].reshape(shape)
        t_batch = jnp.full((shape[0],), t)
        drift_fn = lambda z: probability_flow_drift(sde, score, z, t_batch)
        drift, jv = jax.jvp(drift_fn, (x,), (probes,))
        div = jnp.sum((probes * jv).reshape(shape[0], -1), axis=-1)
        return jnp.concatenate([drift.reshape(-1), div])

    def ode_func(t, state):
        return np.asarray(augmented_drift(jnp.asarray(state, jnp.float32), jnp.float32(t)), np.float64)

    def solve(y):
        init = np.concatenate([np.asarray(y, np.float64).reshape(-1), np.zeros(shape[0])])
        solution = solve_ivp(ode_func, (T_MIN, sde.T), init, rtol=TOL, atol=TOL, method="RK45")
        z = jnp.asarray(solution.y[:size, -1].reshape(shape), jnp.float32)
        delta = solution.y[size:, -1]
        return -(np.asarray(sde.prior_logp(z), np.float64) + delta), solution.nfev

    return solve


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--se_draws", type=int, default=16, help="probe / time draws for the SEs")
    parser.add_argument("--elbo_t_min", type=float, default=1e-3,
                        help="ELBO start time: sigma(1e-3) ~ 0.01, about one bin (2/256); below it the "
                             "continuous-data model pays for not knowing the data are discrete in a "
                             "rarely sampled, heavy-tailed part of the t integral")
    args = parser.parse_args()

    sde, score, mean, data_std = make_score_model(jax.random.PRNGKey(0), args.dim)
    x = mean + data_std * jax.random.normal(jax.random.PRNGKey(1), (args.batch, args.dim))
    k_int = jnp.clip(jnp.floor((x + 1.0) * NUM_LEVELS / 2.0), 0, NUM_LEVELS - 1).astype(jnp.int32)
    y = uniform_dequantize(jax.random.PRNGKey(2), k_int, NUM_LEVELS)
    probe_key = jax.random.PRNGKey(3)
    probes = jax.random.rademacher(probe_key, y.shape, dtype=jnp.float32)  # as pf_ode_nll draws them

    def in_graph_solver(joint_solve):
        def solve(key, data):
            result = pf_ode_nll(key, sde, score, data, t_min=T_MIN, rtol=TOL, atol=TOL,
                                divergence="hutchinson", probe="rademacher", joint_solve=joint_solve)
            return result.nll, result.terms["nfe"]
        return jax.jit(solve)

    in_graph, in_graph_joint = in_graph_solver(False), in_graph_solver(True)
    to_bpd = lambda nll: dequantized_bits_per_dim(jnp.asarray(nll), args.dim, NUM_LEVELS)

    compile_start = time.perf_counter()
    nll_graph, nfe_graph = jax.block_until_ready(in_graph(probe_key, y))
    graph_first = time.perf_counter() - compile_start
    graph_time = median_time(lambda: in_graph(probe_key, y), args.repeats)
    nll_joint, nfe_joint = jax.block_until_ready(in_graph_joint(probe_key, y))
    joint_time = median_time(lambda: in_graph_joint(probe_key, y), args.repeats)

    host_solve = make_host_solver(sde, score, probes)
    nll_host, nfe_host = host_solve(y)  # compiles the drift
    host_time = median_time(lambda: host_solve(y)[0], args.repeats)

    bpd_graph = np.asarray(to_bpd(nll_graph), np.float64)
    bpd_host = np.asarray(to_bpd(nll_host), np.float64)
    bpd_joint = np.asarray(to_bpd(nll_joint), np.float64)

    # Standard errors of the batch-mean bits/dim: Hutchinson over probes, ELBO over t samples.
    probe_means = [float(np.mean(to_bpd(in_graph(jax.random.PRNGKey(100 + i), y)[0])))
                   for i in range(args.se_draws)]
    denoiser = Denoiser(sde, fn=score, prediction="score")
    elbo = jax.jit(lambda key, k: continuous_elbo(key, denoiser, sde, k, NUM_LEVELS, t_min=args.elbo_t_min)[0])
    elbo_means = [float(np.mean(nats_to_bits_per_dim(elbo(jax.random.PRNGKey(200 + i), k_int), args.dim)))
                  for i in range(args.se_draws)]
    elbo_time = median_time(lambda: elbo(jax.random.PRNGKey(0), k_int), args.repeats)

    print(f"PF-ODE NLL, VP-SDE, batch {args.batch} x {args.dim} dims, rtol=atol={TOL}, Hutchinson "
          f"(Rademacher), device {jax.devices()[0].platform}, {args.repeats} timed repeats")
    print(f"{'method':<34}{'median s':>10}{'NFE':>8}{'bits/dim':>10}{'SE(batch mean)':>16}")
    print(f"{'in-graph, per-example (default)':<34}{graph_time:>10.3f}{int(np.max(nfe_graph)):>8d}"
          f"{bpd_graph.mean():>10.4f}{np.std(probe_means, ddof=1):>16.4f}")
    print(f"{'in-graph, joint_solve=True':<34}{joint_time:>10.3f}{int(np.max(nfe_joint)):>8d}"
          f"{bpd_joint.mean():>10.4f}{'':>16}")
    print(f"{'host scipy RK45 (score_sde)':<34}{host_time:>10.3f}{int(nfe_host):>8d}{bpd_host.mean():>10.4f}"
          f"{'':>16}")
    print(f"{'VDM ELBO (t_min=' + format(args.elbo_t_min, 'g') + ', 1 t/ex.)':<34}{elbo_time:>10.3f}{1:>8d}{np.mean(elbo_means):>10.4f}"
          f"{np.std(elbo_means, ddof=1):>16.4f}")
    print(f"speed-up vs host (goal >= 10x): per-example {host_time / graph_time:.1f}x, joint "
          f"{host_time / joint_time:.1f}x; first per-example call (trace + compile + run) {graph_first:.1f} s")
    for name, bpd in (("per-example", bpd_graph), ("joint", bpd_joint)):
        print(f"bits/dim difference {name} - host (same probes): batch mean {bpd.mean() - bpd_host.mean():+.6f}, "
              f"max per example {np.max(np.abs(bpd - bpd_host)):.6f} (goal <= 0.01)")
    print("NFE: per-example is the largest count over the batch; joint and host solve the batch as one "
          "ODE. SE(batch mean): std over probe draws (PF-ODE) or time draws (ELBO) of the batch-mean "
          "bits/dim.")


if __name__ == "__main__":
    main()
