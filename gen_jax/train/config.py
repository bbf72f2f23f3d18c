"""Validation of a training config (ml_collections.ConfigDict, layout of
experiments/configs/base.py): fails before any work with a ValueError naming the field."""
import copy

import jax

from gen_jax import families
from gen_jax.models.transformer import COMPUTE_DTYPES, POSITIONALS
from gen_jax.train.sharding import PARAM_STRATEGIES


# Sections / fields that define the trajectory of a run: a resumed run must match them exactly,
# and so must the active family's section `config.<family>` except its `eval` and `sample`
# sub-sections. `data` is whole: its name, options, splits and where it is read from (data_dir,
# tfds_dir); the data actually read is also checked, by its fingerprint (loop.run). The others
# (logging, eval cadence, sampling, checkpoint cadence, mesh) and RESUME_FREE may change.
RUN_DEFINING = ("family", "seed", "data", "model", "optimizer", "train")
FAMILY_NOT_RUN_DEFINING = ("eval", "sample")
# Run-defining sections' fields that only stop a run, never change its trajectory.
# model.remat: recomputation gives the same gradients.
RESUME_FREE = ("train.max_consecutive_skips", "model.remat")
# Fields added after runs may have been saved, with the value that reproduces those runs: a
# saved config without one is read as having this value (resume and evaluation of older runs).
ADDED_FIELDS = {"model.compute_dtype": "float32", "model.remat": False,
                "train.microbatches": 1, "mesh.model_parallelism": 1}


def _get(cfg, dotted):
    value = cfg
    for part in dotted.split("."):
        if part not in value:
            raise ValueError(f"config is missing the field {dotted!r}")
        value = value[part]
    return value


def _positive_int(cfg, name, allow_zero=False):
    value = _get(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"config.{name} must be an integer {bound}, got {value!r}")
    return value


def _in_range(cfg, name, low, high, low_open=False, high_open=False):
    value = _get(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"config.{name} must be a number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"config.{name} must be in {interval}, got {value!r}")
    return value


def _choice(cfg, name, choices):
    value = _get(cfg, name)
    if value not in choices:
        raise ValueError(f"config.{name} must be one of {choices}, got {value!r}")
    return value


def validate_config(cfg, known_datasets=None) -> None:
    """Check every field the training loop reads. `known_datasets` defaults to the data layer's
    registered names. Raises ValueError naming the first bad field."""
    _choice(cfg, "family", families.names())
    _positive_int(cfg, "seed", allow_zero=True)
    if known_datasets is None:
        from gen_jax.data import KNOWN_DATASETS
        known_datasets = tuple(KNOWN_DATASETS)
    _choice(cfg, "data.name", tuple(known_datasets))
    for name in ("model.width", "model.depth", "model.num_heads"):
        _positive_int(cfg, name)
    if cfg.model.width % cfg.model.num_heads:
        raise ValueError(f"config.model.width ({cfg.model.width}) must be divisible by "
                         f"config.model.num_heads ({cfg.model.num_heads})")
    _in_range(cfg, "model.mlp_ratio", 0, float("inf"), low_open=True, high_open=True)
    _positive_int(cfg, "model.patch_size")
    _choice(cfg, "model.positional", POSITIONALS)
    _choice(cfg, "model.compute_dtype", COMPUTE_DTYPES)
    if not isinstance(_get(cfg, "model.remat"), bool):
        raise ValueError(f"config.model.remat must be True or False, got {cfg.model.remat!r}")
    families.get(cfg.family).section(cfg)  # the active family's section must exist
    for name in families.names():  # every family section the config carries
        if name in cfg:
            families.get(name).validate(cfg)
    steps = _positive_int(cfg, "train.steps")
    batch = _positive_int(cfg, "train.batch_size")
    _positive_int(cfg, "train.max_consecutive_skips")
    _in_range(cfg, "optimizer.learning_rate", 0.0, float("inf"), low_open=True, high_open=True)
    warmup = _positive_int(cfg, "optimizer.warmup_steps", allow_zero=True)
    if warmup > steps:
        raise ValueError(f"config.optimizer.warmup_steps ({warmup}) exceeds config.train.steps ({steps})")
    _in_range(cfg, "optimizer.end_lr_ratio", 0.0, 1.0)
    _in_range(cfg, "optimizer.weight_decay", 0.0, float("inf"), high_open=True)
    _in_range(cfg, "optimizer.b1", 0.0, 1.0, high_open=True)
    _in_range(cfg, "optimizer.b2", 0.0, 1.0, high_open=True)
    _in_range(cfg, "optimizer.grad_clip_norm", 0.0, float("inf"), high_open=True)
    _in_range(cfg, "optimizer.ema_decay", 0.0, 1.0, high_open=True)
    strategy = _choice(cfg, "mesh.param_sharding", PARAM_STRATEGIES)
    num_devices = _positive_int(cfg, "mesh.num_devices", allow_zero=True) or jax.device_count()
    if num_devices > jax.device_count():
        raise ValueError(f"config.mesh.num_devices ({num_devices}) exceeds the "
                         f"{jax.device_count()} available devices")
    model_parallelism = _positive_int(cfg, "mesh.model_parallelism")
    if num_devices % model_parallelism:
        raise ValueError(f"config.mesh.model_parallelism ({model_parallelism}) must divide the "
                         f"number of devices ({num_devices})")
    if model_parallelism > 1 and strategy != "fsdp_tp":
        raise ValueError(f"config.mesh.model_parallelism ({model_parallelism}) > 1 needs "
                         f"config.mesh.param_sharding='fsdp_tp', got {strategy!r}")
    data_parallelism = num_devices // model_parallelism
    microbatches = _positive_int(cfg, "train.microbatches")
    if batch % (microbatches * data_parallelism):
        raise ValueError(f"config.train.batch_size ({batch}) must be divisible by "
                         f"config.train.microbatches ({microbatches}) times the data parallelism "
                         f"({data_parallelism} = devices / model_parallelism)")
    if batch % jax.process_count():
        raise ValueError(f"config.train.batch_size ({batch}) must be divisible by the number "
                         f"of processes ({jax.process_count()})")
    _positive_int(cfg, "checkpoint.every_steps")
    _positive_int(cfg, "checkpoint.keep")
    _positive_int(cfg, "logging.every_steps")
    _positive_int(cfg, "eval.every_steps", allow_zero=True)
    eval_batch = _positive_int(cfg, "eval.batch_size")
    if eval_batch % data_parallelism:
        raise ValueError(f"config.eval.batch_size ({eval_batch}) must be divisible by the data "
                         f"parallelism ({data_parallelism} = devices / model_parallelism)")
    _positive_int(cfg, "eval.max_batches", allow_zero=True)
    _positive_int(cfg, "eval.repeats")
    _positive_int(cfg, "eval.max_examples", allow_zero=True)
    _positive_int(cfg, "sample.every_steps", allow_zero=True)
    _positive_int(cfg, "sample.num_samples")
    _positive_int(cfg, "sample.num_steps")


def _flatten(d, prefix=""):
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def with_added_fields(saved: dict) -> dict:
    """A copy of the saved config dict with every missing `ADDED_FIELDS` entry filled in."""
    out = copy.deepcopy(saved)
    for name, value in ADDED_FIELDS.items():
        *sections, field = name.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node.setdefault(field, value)
    return out


def check_resume_compatible(saved: dict, current: dict) -> None:
    """Raise ValueError naming the first run-defining field that differs between the config a
    checkpoint was written with and the current one (both plain dicts; the saved one read with
    `with_added_fields`)."""
    saved_flat, current_flat = _flatten(with_added_fields(saved)), _flatten(current)
    family = current.get("family")
    defining = RUN_DEFINING + (family,)
    free = tuple(f"{family}.{sub}" for sub in FAMILY_NOT_RUN_DEFINING)
    for name in sorted(set(saved_flat) | set(current_flat)):
        if name in RESUME_FREE or not any(name == p or name.startswith(p + ".") for p in defining):
            continue
        if any(name == p or name.startswith(p + ".") for p in free):
            continue
        old, new = saved_flat.get(name, "<missing>"), current_flat.get(name, "<missing>")
        if old != new:
            raise ValueError(f"config mismatch on resume: config.{name} was {old!r} in the "
                             f"checkpoint, now {new!r}; use a new workdir or the old value")


def check_data_fingerprint(saved, current) -> None:
    """Raise ValueError naming the first split whose data differs from what the checkpoint was
    trained on (fingerprints from `gen_jax.data.fingerprint`, plain dicts; None: unchecked)."""
    if saved is None or current is None:
        return
    for split in sorted(set(saved) | set(current)):
        old, new = saved.get(split), current.get(split)
        if old != new:
            raise ValueError(
                f"data mismatch on resume: the {split} split read now ({new}) differs from the one "
                f"the checkpoint was trained on ({old}): the files under the same config changed. "
                f"Restore the original data or use a new workdir")
