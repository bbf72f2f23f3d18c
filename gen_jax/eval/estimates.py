"""A family's likelihood estimators run over a held-out split, through the training mesh.

`estimate(...)` runs one `gen_jax.families.Estimator` on the held-out examples `indices` in
batches of `batch_size` (at most the examples, rounded up to the devices; the last one filled by
wrapping, its extra rows dropped: one compile),
with the batch sharded over the mesh's 'data' axis and the parameters placed as in training, and
averages `repeats` independent draws per example for a repeated estimator, so a bound's standard
error over examples includes its own sampling noise. The key of an estimator is derived from its
name (a convergence check shares the key of the estimator it checks: same probes and draws), so
`experiments.compare` and `experiments.evaluate` give the same numbers for the same params.
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Optional

import jax
import numpy as np
from jax.experimental import multihost_utils

from gen_jax.train import sharding as sharding_lib


@dataclasses.dataclass
class Estimate:
    """One row of a likelihood table. values: (N,) bits/dim per example (mean over repeats) on
    the held-out examples `indices`; kind: 'exact' | 'upper bound'; nfe: mean model calls per
    example (solver-based estimators only); convergence_check_of: see `Estimator`."""
    name: str
    model: str
    kind: str
    values: np.ndarray
    indices: np.ndarray
    nfe: Optional[float] = None
    convergence_check_of: Optional[str] = None


def estimator_key(key, estimator):
    """The key of `estimator`: `key` folded with a hash of its name (or of the estimator it
    checks), independent of the order estimators are run in."""
    name = estimator.convergence_check_of or estimator.name
    return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def _gather(x):
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def estimate(estimator, model_name: str, params, data: dict, indices, *, num_dims: int,
             batch_size: int, key, repeats: int = 1, mesh=None,
             param_strategy: str = "replicated") -> Estimate:
    """Run `estimator` on `data[indices]` (data: dict of host arrays over the whole split).

    Uses the first `estimator.max_examples` indices when that is set. The global `batch_size`
    must be divisible by the mesh's 'data' axis size; each process feeds its slice of every batch. Raises
    ValueError when an estimate is not finite (a failed solve, a diverged model): never a number
    that looks fine.
    """
    mesh = mesh or sharding_lib.make_mesh()
    num_devices = sharding_lib.data_parallelism(mesh)  # batch shards
    if batch_size % num_devices:
        raise ValueError(f"batch_size ({batch_size}) must be divisible by the mesh's {num_devices} "
                         f"batch shards ('data' axis)")
    indices = np.asarray(indices)
    if estimator.max_examples:
        indices = indices[:estimator.max_examples]
    n = len(indices)
    if n == 0:
        raise ValueError(f"{estimator.name}: no held-out examples to evaluate")
    repeats = repeats if estimator.repeated else 1
    batch_size = min(batch_size, -(-n // num_devices) * num_devices)  # no padding rows past n
    rows_sh = sharding_lib.batch_sharding(mesh)

    def nll_and_nfe(p, b, k):
        out = estimator.fn(p, b, k)
        return out.nll, out.terms.get("nfe", -np.ones(out.nll.shape, np.int32))

    fn = jax.jit(nll_and_nfe,
                 in_shardings=(sharding_lib.param_shardings(mesh, params, param_strategy), rows_sh,
                               sharding_lib.replicated(mesh)),
                 out_shardings=(rows_sh, rows_sh))
    key = estimator_key(key, estimator)
    nats, nfe = np.zeros(n), np.zeros(n)
    for r in range(repeats):
        for start in range(0, n, batch_size):
            rows = np.arange(start, start + batch_size) % n
            local = sharding_lib.process_rows(rows, jax.process_index(), jax.process_count())
            batch = sharding_lib.global_batch({k: v[indices[local]] for k, v in data.items()}, mesh)
            nll, calls = fn(params, batch, jax.random.fold_in(jax.random.fold_in(key, r), start))
            m = min(batch_size, n - start)
            nats[start:start + m] += _gather(nll)[:m]
            nfe[start:start + m] += _gather(calls)[:m]
    has_nfe = bool(np.all(nfe >= 0))  # estimators without 'nfe' report -1
    values = nats / repeats / (num_dims * math.log(2.0))
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{model_name} / {estimator.name}: {int(bad.sum())} of {n} held-out "
                         f"examples gave a non-finite estimate (held-out indices "
                         f"{indices[bad][:8].tolist()}...): a failed solve or a diverged model")
    return Estimate(estimator.name, model_name, estimator.kind, values, indices,
                    float(nfe.mean() / repeats) if has_nfe else None,
                    estimator.convergence_check_of)
