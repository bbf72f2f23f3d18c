"""Samplers of the comparison: each family's `Sampler`s run on the same key, their cost (model
calls and wall time per sample of a second, compiled call) and the quality of what they produce
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
    """Run `sampler.fn(params, key, num)` once to compile / warm up, then once timed."""
    jax.block_until_ready(sampler.fn(params, key, num))
    start = time.perf_counter()
    result = jax.block_until_ready(sampler.fn(params, key, num))
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
