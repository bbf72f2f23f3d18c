"""Samplers of the comparison, their cost (model calls and wall time per sample) and the
quality of what they produce (Frechet distance / KID on a classifier's features).

Gaussian model, all started from the same noise (one key):
  DDPM              ancestral sampling of the NFE-step DDPM chain of the process
                    (`discretize_process(process, NFE)`), x0 clipped to [-1, 1]
  DDIM              eta = 0 on the 1000-step chain, NFE 'trailing' steps, x0 clipped
  DPM-Solver++(2M)  NFE steps uniform in log-SNR, t = 1 -> 1e-3
  adaptive ODE      diffrax Dopri5 on the PF-ODE with rtol = atol = tol (NFE as counted)
AR: KV-cached ancestral decoding, one token per model call. Masked: T-step ancestral unmasking.
Continuous outputs are rounded to the nearest of the K levels before any evaluation.
"""
import dataclasses
import functools
import time
from typing import Callable, Optional

import jax
import numpy as np

from gen_jax import data as data_lib
from gen_jax.core.param import Denoiser
from gen_jax.core.samplers import (ddim_sample, ddpm_sample, dpm_solver_pp_sample,
                                   ode_sample_adaptive)
from gen_jax.core.schedules import discretize_process
from gen_jax.eval import frechet_distance, kernel_inception_distance

DIFFUSION_SAMPLERS = ("DDPM", "DDIM", "DPM-Solver++(2M)", "adaptive ODE")


@dataclasses.dataclass
class SamplerRun:
    """One sampler setting: NFE (model calls per sample), wall seconds per sample (a second,
    compiled call), the samples (N, ...) as ints in [0, K) and, for images, FD / KID."""
    model: str
    sampler: str
    setting: str
    nfe: float
    seconds_per_sample: float
    samples: np.ndarray
    fd: Optional[float] = None
    kid: Optional[float] = None
    kid_se: Optional[float] = None


def timed(sample: Callable, key, num: int):
    """Compile `sample(key, num)` ahead of time (a jitted function; else one warm-up call), then
    run it once, timed. Returns (samples, nfe, wall seconds per sample)."""
    if hasattr(sample, "lower"):
        sample = sample.lower(key, num).compile()
        call = lambda: sample(key)  # noqa: E731  (num is static, baked in)
    else:
        jax.block_until_ready(sample(key, num))
        call = lambda: sample(key, num)  # noqa: E731
    start = time.perf_counter()
    samples, nfe = jax.block_until_ready(call())
    return samples, nfe, (time.perf_counter() - start) / num


def gaussian_sampler(name: str, apply_fn, params, process, prediction, shape, setting):
    """`(key, num) -> (x (num, *shape) float, nfe)` for one of DIFFUSION_SAMPLERS; `setting` is
    the NFE (fixed-step samplers) or the tolerance (adaptive ODE)."""
    denoiser = Denoiser(process, fn=lambda x, t: apply_fn(params, x, t), prediction=prediction)

    @functools.partial(jax.jit, static_argnums=1)
    def sample(key, num):
        full = (num,) + tuple(shape)
        if name == "DDPM":
            return ddpm_sample(key, denoiser, discretize_process(process, setting), full,
                               clip_x0=1.0)
        if name == "DDIM":
            return ddim_sample(key, denoiser, discretize_process(process, 1000), full, setting,
                               eta=0.0, clip_x0=1.0)
        if name == "DPM-Solver++(2M)":
            return dpm_solver_pp_sample(key, denoiser, process, full, setting)
        if name == "adaptive ODE":
            return ode_sample_adaptive(key, denoiser.score, process, full, rtol=setting,
                                       atol=setting)
        raise ValueError(f"sampler must be one of {DIFFUSION_SAMPLERS}, got {name!r}")

    return sample


def run_gaussian_samplers(apply_fn, params, process, prediction, spec, key, num: int, nfe_list,
                          tolerances) -> list[SamplerRun]:
    runs = []
    settings = [(name, n) for name in DIFFUSION_SAMPLERS[:3] for n in nfe_list]
    settings += [("adaptive ODE", tol) for tol in tolerances]
    for name, setting in settings:
        sample = gaussian_sampler(name, apply_fn, params, process, prediction, spec.shape, setting)
        x, nfe, seconds = timed(sample, key, num)
        levels = data_lib.from_centers(np.asarray(x), spec.num_levels)
        label = f"rtol=atol={setting:g}" if name == "adaptive ODE" else f"{setting} steps"
        runs.append(SamplerRun("gaussian", name, label, float(np.mean(nfe)), seconds, levels))
    return runs


def run_token_sampler(model: str, sample_fn, params, key, num: int, nfe: int,
                      setting: str) -> SamplerRun:
    """AR or masked model through its family's `sample_fn(params, key, num) -> ints`."""
    samples, _, seconds = timed(lambda k, n: (sample_fn(params, k, n), nfe), key, num)
    return SamplerRun(model, "ancestral", setting, float(nfe), seconds, np.asarray(samples))


def score_quality(runs: list[SamplerRun], classifier, reference_levels, num_levels: int) -> None:
    """Fill FD and KID of each run against `reference_levels` (held-out images), in the
    classifier's feature space."""
    reference = classifier.features(data_lib.to_centers(reference_levels, num_levels))
    for run in runs:
        feats = classifier.features(data_lib.to_centers(run.samples, num_levels))
        run.fd = frechet_distance(feats, reference)
        run.kid, run.kid_se = kernel_inception_distance(feats, reference)
