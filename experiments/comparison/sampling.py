"""Samplers of the comparison: each family's `Sampler`s run on the same key, their cost (model
calls and wall time per sample of one compiled call) and the quality of what they produce
(Frechet distance / KID on a classifier's features, images only)."""
import dataclasses
import time
from typing import Optional

import jax
import numpy as np

from gen_jax import data as data_lib
from gen_jax.eval import frechet_distance, kernel_inception_distance


@dataclasses.dataclass
class SamplerRun:
    """One sampler setting: NFE (model calls per sample), wall seconds per sample, the samples
    (N, ...) as ints in [0, K) and, for images, FD / KID."""
    model: str
    sampler: str
    setting: str
    nfe: float
    seconds_per_sample: float
    samples: np.ndarray
    fd: Optional[float] = None
    kid: Optional[float] = None
    kid_se: Optional[float] = None


def run_sampler(model: str, sampler, params, key, num: int) -> SamplerRun:
    """Time one call of `sampler.fn(params, key, num)`, compile excluded.

    A jitted sampler (its `num` static, as the Sampler contract says) is compiled ahead of time
    and its compiled form called once; any other is called once untimed to warm it up, then once
    timed. The samples are the same either way (same key)."""
    fn = sampler.fn
    if hasattr(fn, "lower"):
        compiled = fn.lower(params, key, num).compile()
        call = lambda: compiled(params, key)  # noqa: E731  (static num is compiled in)
    else:
        jax.block_until_ready(fn(params, key, num))
        call = lambda: fn(params, key, num)  # noqa: E731
    start = time.perf_counter()
    result = jax.block_until_ready(call())
    seconds = (time.perf_counter() - start) / num
    return SamplerRun(model, sampler.name, sampler.setting, float(np.mean(result.nfe)), seconds,
                      np.asarray(result.samples))


def score_quality(runs: list[SamplerRun], classifier, reference_levels, num_levels: int) -> None:
    """Fill FD and KID of each run against `reference_levels` (held-out images), in the
    classifier's feature space."""
    reference = classifier.features(data_lib.to_centers(reference_levels, num_levels))
    for run in runs:
        feats = classifier.features(data_lib.to_centers(run.samples, num_levels))
        run.fd = frechet_distance(feats, reference)
        run.kid, run.kid_se = kernel_inception_distance(feats, reference)
