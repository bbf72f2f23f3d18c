"""Every likelihood number of the comparison, per held-out example, in bits/dim.

Each estimator is a function `(params, batch, key) -> {'bpd': (B,), 'nfe': (B,) optional}`;
`per_example` runs it over a whole split in fixed-size batches (one compile) and averages
`repeats` independent draws per example, so a stochastic bound's standard error over examples
includes its own sampling noise.

  AR exact NLL             core.likelihood.ar_nll (via the family objective)
  continuous ELBO          core.likelihood.continuous_elbo (VDM, Kingma et al. 2021)
  T-step ELBO              core.likelihood.discrete_time_elbo (VDM's discrete-time bound)
  discrete-time VLB        core.likelihood.vlb_one_t on the N-step DDPM chain of the same
                           process (Ho et al. 2020; discretized-Gaussian decoder)
  PF-ODE NLL               core.ode_likelihood.pf_ode_bits_per_dim (Song et al. 2021), the
                           data dequantized by the forward process at t_min with the matching
                           decoder (tight at low K, unlike uniform dequantization) + Hutchinson
                           trace, adaptive Dopri5
  masked ELBO              core.masked.masked_elbo, continuous time (MD4 / MDLM) and T-step
                           (the bound of the ancestral sampler with T steps)
"""
import dataclasses
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core.likelihood import discrete_time_elbo, vlb_one_t
from gen_jax.core.masked import MaskingSchedule, masked_elbo
from gen_jax.core.ode_likelihood import pf_ode_bits_per_dim
from gen_jax.core.units import nats_to_bits_per_dim
from gen_jax.core.param import Denoiser
from gen_jax.core.schedules import discretize_process
from gen_jax.train.objectives import batch_tokens


@dataclasses.dataclass
class Estimate:
    """One row of the likelihood table. values: (N,) bits/dim per example (mean over repeats)
    on the held-out examples `indices`; kind: 'exact' | 'upper bound'; nfe: mean model calls per
    example (PF-ODE only)."""
    name: str
    model: str
    kind: str
    values: np.ndarray
    indices: np.ndarray
    nfe: Optional[float] = None


def per_example(fn: Callable, params, data: dict, indices: np.ndarray, batch_size: int, key,
                repeats: int = 1) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Run `fn` on `data[indices]` in batches of `batch_size` (the last one filled by wrapping,
    its extra rows dropped) for `repeats` keys. Returns ((N,) mean bits/dim, (N,) mean NFE or
    None)."""
    step = jax.jit(fn)
    n = len(indices)
    bpd, nfe = np.zeros(n), np.zeros(n)
    has_nfe = False
    for r in range(repeats):
        for start in range(0, n, batch_size):
            rows = np.arange(start, start + batch_size) % n
            batch = {k: v[indices[rows]] for k, v in data.items()}
            out = step(params, batch, jax.random.fold_in(jax.random.fold_in(key, r), start))
            m = min(batch_size, n - start)
            bpd[start:start + m] += np.asarray(out["bpd"])[:m]
            if "nfe" in out:
                has_nfe = True
                nfe[start:start + m] += np.asarray(out["nfe"])[:m]
    return bpd / repeats, (nfe / repeats if has_nfe else None)


def from_nll(nll_fn: Callable, num_dims: int) -> Callable:
    """A family objective's `nll(params, batch, key) -> (B,) nats` as an estimator."""
    return lambda params, batch, key: {"bpd": nats_to_bits_per_dim(nll_fn(params, batch, key), num_dims)}


def _denoiser(apply_fn, params, process, prediction):
    return Denoiser(process, fn=lambda x, t: apply_fn(params, x, t), prediction=prediction)


def vdm_discrete_elbo(apply_fn, process, prediction: str, num_levels: int,
                      num_steps: int) -> Callable:
    """VDM's T-step ELBO (same decoder and prior as the continuous one): (params, batch, key)
    -> (B,) nats."""

    def nll(params, batch, key):
        total, _ = discrete_time_elbo(key, _denoiser(apply_fn, params, process, prediction), process,
                                      batch["image"].astype(jnp.int32), num_levels, num_steps)
        return total

    return nll


def discrete_vlb(apply_fn, process, prediction: str, num_levels: int, num_dims: int,
                 num_steps: int) -> Callable:
    """Ho et al.'s N-step VLB of the Gaussian model, one uniformly drawn step per example."""
    schedule = discretize_process(process, num_steps)

    def fn(params, batch, key):
        total, _ = vlb_one_t(key, _denoiser(apply_fn, params, process, prediction), schedule,
                             batch["image"].astype(jnp.int32), num_levels)
        return {"bpd": nats_to_bits_per_dim(total, num_dims)}

    return fn


def pf_ode(apply_fn, process, prediction: str, num_levels: int, *, tolerance: float, t_min: float,
           probe: str, dequantization: str = "forward") -> Callable:
    """Dequantized PF-ODE bits/dim with one Hutchinson probe per example and solve
    (`dequantization` as in `pf_ode_bits_per_dim`)."""

    def fn(params, batch, key):
        result = pf_ode_bits_per_dim(
            key, process, _denoiser(apply_fn, params, process, prediction).score,
            batch["image"].astype(jnp.int32), num_levels, divergence="hutchinson", probe=probe,
            rtol=tolerance, atol=tolerance, t_min=t_min, dequantization=dequantization)
        return {"bpd": result.terms["bits_per_dim"], "nfe": result.terms["nfe"]}

    return fn


def masked_discrete_elbo(apply_fn, schedule_kind: str, num_levels: int, num_dims: int,
                         num_steps: int) -> Callable:
    """T-step masked-diffusion ELBO: bounds -log P of the T-step ancestral sampler's output."""
    schedule = MaskingSchedule(kind=schedule_kind)

    def fn(params, batch, key):
        logits_fn = lambda x_t, t: apply_fn(params, x_t, t)  # noqa: E731
        out = masked_elbo(key, logits_fn, batch_tokens(batch), schedule, num_levels,
                          num_steps=num_steps)
        return {"bpd": nats_to_bits_per_dim(out.nll, num_dims)}

    return fn


def entropy_bits_per_dim(spec) -> Optional[float]:
    """The data's exact entropy in bits/dim when the dataset knows it (synthetic data)."""
    if spec.entropy_nats_per_example is None:
        return None
    return spec.entropy_nats_per_example / (spec.num_dims * math.log(2.0))
