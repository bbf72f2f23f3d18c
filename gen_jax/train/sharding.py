"""Device mesh and shardings: the batch is split over the 'data' axis, parameters replicated.

Parameter placement is chosen by name (`param_shardings(..., strategy=...)`) so a fully sharded
(FSDP) strategy can be added as one more entry without touching the train step.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
PARAM_STRATEGIES = ("replicated",)


def maybe_initialize_distributed(*, enabled: bool, coordinator_address: str = "",
                                 num_processes: int = 0, process_id: int = -1) -> None:
    """Call `jax.distributed.initialize()` for multi-host runs (before any other JAX call).

    Empty / non-positive arguments are left for JAX to auto-detect (TPU pods, SLURM, ...).
    """
    if not enabled:
        return
    kwargs = {}
    if coordinator_address:
        kwargs["coordinator_address"] = coordinator_address
    if num_processes > 0:
        kwargs["num_processes"] = num_processes
    if process_id >= 0:
        kwargs["process_id"] = process_id
    jax.distributed.initialize(**kwargs)


def make_mesh(num_devices: int = 0) -> Mesh:
    """1-D mesh over the first `num_devices` devices (all devices if 0), axis 'data'."""
    devices = jax.devices()
    if num_devices < 0 or num_devices > len(devices):
        raise ValueError(f"num_devices must be in [0, {len(devices)}], got {num_devices}")
    if num_devices:
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over 'data', the rest replicated."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def param_shardings(mesh: Mesh, params, strategy: str = "replicated"):
    """Pytree of shardings for `params` (or any pytree placed like params: opt state, EMA)."""
    if strategy not in PARAM_STRATEGIES:
        raise ValueError(f"unknown parameter sharding strategy {strategy!r}; known: {PARAM_STRATEGIES}")
    return jax.tree.map(lambda _: replicated(mesh), params)


def global_batch(local_batch, mesh: Mesh):
    """Global arrays sharded over 'data' from this host's slice of the batch (dict of numpy).

    Each host passes its own `global_batch_size / process_count` rows; on one host this is the
    whole batch.
    """
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local_batch.items()}
