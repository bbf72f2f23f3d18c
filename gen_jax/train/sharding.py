"""Device mesh and shardings: a 2-D mesh ('data', 'model'); the batch is split over 'data', and
parameters (with everything placed like them: optimizer state, EMA) by a named strategy.

Strategies (`param_shardings(mesh, tree, strategy)`), each a list of rules from a leaf's path
name to a PartitionSpec:
  'replicated'  every leaf on every device.
  'fsdp'        fully sharded data parallel (ZeRO-3): each floating-point leaf is split over
                'data' on its largest dimension that 'data' divides (replicated if none does).
  'fsdp_tp'     'fsdp' plus Megatron-style tensor parallelism over 'model' (Shoeybi et al.
                2019): the attention qkv and MLP-in kernels are column-parallel (output dim
                over 'model'), the attention-out and MLP-out kernels row-parallel (input dim
                over 'model'); then FSDP on the largest remaining dimension.
A dimension a mesh axis does not divide stays replicated on that axis. Integer leaves (step
counters, PRNG keys) are always replicated. GSPMD (jit + NamedSharding) inserts the
collectives, so the same program gives the same result on any mesh up to float reduction order.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
MODEL_AXIS = "model"
PARAM_STRATEGIES = ("replicated", "fsdp", "fsdp_tp")

# Tensor-parallel rules: (regex searched in the leaf's path "a/b/0/c", spec template per dim).
# Kernels are (in, out); a column-parallel layer's bias is split like its output.
TENSOR_PARALLEL_RULES = (
    (r"attn/qkv/kernel", (None, MODEL_AXIS)),
    (r"attn/qkv/bias", (MODEL_AXIS,)),
    (r"mlp/dense_in/kernel", (None, MODEL_AXIS)),
    (r"mlp/dense_in/bias", (MODEL_AXIS,)),
    (r"attn/out/kernel", (MODEL_AXIS, None)),
    (r"mlp/dense_out/kernel", (MODEL_AXIS, None)),
)


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


def make_mesh(num_devices: int = 0, model_parallelism: int = 1) -> Mesh:
    """Mesh of shape (num_devices / model_parallelism, model_parallelism), axes ('data',
    'model'), over the first `num_devices` devices (all devices if 0)."""
    devices = jax.devices()
    if isinstance(num_devices, bool) or num_devices < 0 or num_devices > len(devices):
        raise ValueError(f"num_devices must be in [0, {len(devices)}], got {num_devices}")
    devices = devices[:num_devices] if num_devices else devices
    if isinstance(model_parallelism, bool) or model_parallelism < 1 or len(devices) % model_parallelism:
        raise ValueError(f"model_parallelism must be a positive divisor of the {len(devices)} "
                         f"devices, got {model_parallelism}")
    grid = np.asarray(devices).reshape(len(devices) // model_parallelism, model_parallelism)
    return Mesh(grid, (DATA_AXIS, MODEL_AXIS))


def data_parallelism(mesh: Mesh) -> int:
    """Number of batch shards: the size of the mesh's 'data' axis."""
    return mesh.shape[DATA_AXIS]


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over 'data', the rest replicated (also over 'model')."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _path_name(path) -> str:
    """'params/backbone/blocks/0/attn/qkv/kernel/value' from a pytree key path."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def _leaf_spec(name: str, shape, mesh: Mesh, strategy: str) -> P:
    """PartitionSpec of one floating-point leaf under `strategy` (module docstring)."""
    spec = [None] * len(shape)
    if strategy == "fsdp_tp":
        for pattern, template in TENSOR_PARALLEL_RULES:
            if re.search(pattern, name) and len(template) == len(shape):
                spec = [axis if axis is None or shape[d] % mesh.shape[axis] == 0 else None
                        for d, axis in enumerate(template)]
                break
    if strategy in ("fsdp", "fsdp_tp"):
        free = [d for d in range(len(shape)) if spec[d] is None
                and shape[d] % mesh.shape[DATA_AXIS] == 0]
        if free and mesh.shape[DATA_AXIS] > 1:
            spec[max(free, key=lambda d: (shape[d], -d))] = DATA_AXIS
    return P(*spec)


def param_shardings(mesh: Mesh, tree, strategy: str = "replicated"):
    """Pytree of NamedShardings for `tree` (params, or any pytree holding params, optimizer
    state and EMA, e.g. a whole TrainState), leaf by leaf from its path name and shape."""
    if strategy not in PARAM_STRATEGIES:
        raise ValueError(f"unknown parameter sharding strategy {strategy!r}; known: {PARAM_STRATEGIES}")

    def sharding(path, leaf):
        shape, dtype = np.shape(leaf), getattr(leaf, "dtype", np.asarray(leaf).dtype)
        if not jnp.issubdtype(dtype, jnp.inexact):
            return replicated(mesh)
        return NamedSharding(mesh, _leaf_spec(_path_name(path), shape, mesh, strategy))

    return jax.tree_util.tree_map_with_path(sharding, tree)


def process_rows(rows, process_index: int, process_count: int):
    """This process's contiguous slice of a global batch's `rows` (the rule for every batch:
    process i feeds rows [i b, (i + 1) b), b = len(rows) / process_count, as `BatchIterator`
    and `eval_batches` shard; `global_batch` assembles them)."""
    rows = np.asarray(rows)
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"need 0 <= process_index < process_count, got {process_index}, "
                         f"{process_count}")
    if len(rows) % process_count:
        raise ValueError(f"a batch of {len(rows)} rows does not split over {process_count} processes")
    per_process = len(rows) // process_count
    return rows[process_index * per_process:(process_index + 1) * per_process]


def global_batch(local_batch, mesh: Mesh):
    """Global arrays sharded over 'data' from this host's slice of the batch (dict of numpy).

    Each host passes its own `global_batch_size / process_count` rows; on one host this is the
    whole batch.
    """
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local_batch.items()}
