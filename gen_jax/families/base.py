"""The family protocol: what a model family (AR, Gaussian diffusion, masked diffusion, ...) is.

A family is one module that subclasses `Family` and registers an instance
(`gen_jax.families.register`). Everything else — the training loop, config validation,
`experiments.compare`, `experiments.evaluate` — only iterates over the registry; nothing outside
a family's module branches on its name.

A family gives, for data described by a `gen_jax.data.DataSpec` and a training config
(`experiments/configs/base.py` layout, with the family's own section `config.<name>`):
  default_config()           its section: objective fields, plus `eval` / `sample` sub-sections
  validate(config, spec)     ValueError naming `config.<name>.<field>` for a bad field
  model(backbone, data_shape, num_levels, rngs, **options)  the Flax NNX module around a
                             `TransformerConfig`; build_model(spec, config, rngs) calls it with
                             the backbone of the shared `config.model` (matched sizes)
  loss(view, spec, config)   (params, batch, key) -> (B,) what training minimizes
  estimators(...)            labelled likelihood estimators; the first is the training eval NLL
  samplers(...)              labelled samplers (a sweep); default_sampler(...) for training
  write_samples(...)         how its samples are saved
Batches are dicts from `gen_jax.data`: {'image': uint8 (B, H, W, C) levels} or
{'tokens': int (B, L)} (optional 'token_mask' (B, L)).
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Callable, Optional

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from gen_jax.models.factory import ModelView
from gen_jax.models.transformer import TransformerConfig
from gen_jax.train.samples import save_image_grid, save_text_samples

EXACT = "exact"
UPPER_BOUND = "upper bound"
KINDS = (EXACT, UPPER_BOUND)


@dataclasses.dataclass(frozen=True)
class Estimator:
    """One likelihood estimator of a family's model.

    name: the row label ("continuous-time ELBO (VDM)"), unique within the family.
    kind: 'exact' (-log P(x) itself) or 'upper bound' (>= -log P(x) of the same model).
    fn: (params, batch, key) -> LikelihoodResult: nll (B,) nats of the discrete data, terms a
      dict of (B,) arrays (with 'nfe' (B,) for solver-based estimators).
    repeated: average `config.eval.repeats` independent draws per example (False: one draw,
      for deterministic or costly estimators; the SE over examples still includes a single
      draw's noise, as draws are independent across examples).
    Every key-dependent estimator draws its randomness independently per example (no
    stratification across the batch), so per-example values are independent and the mean and
    SE of any subset of examples, and paired differences on it, are honest.
    max_examples: evaluate on the first N held-out examples only (0: all), for costly ones.
    convergence_check_of: the name of an estimator this one recomputes at a tighter solver
      tolerance (usually on fewer examples), with the same key (same probes and dequantization
      draws): the audit compares the two to say whether the solve converged.
    """
    name: str
    kind: str
    fn: Callable
    repeated: bool = True
    max_examples: int = 0
    convergence_check_of: Optional[str] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Estimator.kind must be one of {KINDS}, got {self.kind!r}")


@dataclasses.dataclass(frozen=True)
class Sampler:
    """One sampler setting of a family's model.

    name: the sampler ("DPM-Solver++(2M)"); setting: its setting in words ("16 steps").
    fn: (params, key, num) -> SampleResult(samples (num, *spec.shape) int data (levels or
      token ids), nfe): model calls per sample. `num` is static (python int).
    """
    name: str
    setting: str
    fn: Callable


def batch_tokens(batch) -> jnp.ndarray:
    """(B, D) int32 tokens: text tokens as they are, image levels flattened in raster order."""
    if "tokens" in batch:
        return batch["tokens"].astype(jnp.int32)
    image = batch["image"]
    return image.reshape(image.shape[0], -1).astype(jnp.int32)


def backbone_config(model_config) -> TransformerConfig:
    """The transformer every family shares, from the config's `model` section. max_len starts at
    1: each family raises it to its sequence length, so a learned position table has exactly the
    rows the data needs. compute_dtype / remat default to float32 / False when absent."""
    return TransformerConfig(num_layers=model_config.depth, num_heads=model_config.num_heads,
                             d_model=model_config.width, mlp_ratio=model_config.mlp_ratio,
                             positional=model_config.positional, max_len=1,
                             dtype=jnp.dtype(model_config.get("compute_dtype", "float32")),
                             remat=bool(model_config.get("remat", False)))


def choice(section, prefix: str, field: str, choices) -> None:
    """ValueError naming config.<prefix>.<field> unless its value is one of `choices`."""
    value = section[field]
    if value not in choices:
        raise ValueError(f"config.{prefix}.{field} must be one of {tuple(choices)}, got {value!r}")


def positive_int(section, prefix: str, field: str) -> int:
    value = section[field]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"config.{prefix}.{field} must be an integer > 0, got {value!r}")
    return int(value)


def positive_float(section, prefix: str, field: str) -> float:
    value = section[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"config.{prefix}.{field} must be a number > 0, got {value!r}")
    return float(value)


class Family(abc.ABC):
    """A model family: one subclass per module, one registered instance.

    Subclasses set `name` (the registry key and the config section `config.<name>`) and
    `data_kinds` (the DataSpec kinds it models: 'image', 'text').
    """
    name: str = ""
    data_kinds: tuple = ()

    def section(self, config) -> ml_collections.ConfigDict:
        """The family's own config section, `config.<name>`."""
        if self.name not in config:
            raise ValueError(f"config has no section {self.name!r} for family {self.name!r}; "
                             f"build configs with experiments.configs.base.get_base_config after "
                             f"the family is registered")
        return config[self.name]

    def supports(self, spec) -> bool:
        return spec.kind in self.data_kinds

    def check_data(self, spec) -> None:
        if not self.supports(spec):
            raise ValueError(f"the {self.name!r} family models {' or '.join(self.data_kinds)} "
                             f"data; {spec.name!r} is {spec.kind!r} data")

    @abc.abstractmethod
    def default_config(self) -> ml_collections.ConfigDict:
        """The family's config section with defaults (objective fields, `eval`, `sample`)."""

    def validate(self, config) -> None:
        """Check the family's section; ValueError naming config.<name>.<field>."""

    def smoke(self, config) -> None:
        """Shrink the family's `eval` / `sample` settings in place to seconds (tests, CI)."""

    @abc.abstractmethod
    def model(self, backbone: TransformerConfig, data_shape, num_levels, *, rngs: nnx.Rngs,
              **options):
        """The family's NNX module around `backbone` (the family sets causality, time
        conditioning and raises max_len to its sequence length), for examples of `data_shape`
        ((L,) tokens or (H, W, C) images) with `num_levels` levels / vocabulary size."""

    def model_options(self, config) -> dict:
        """Keyword options of `model` taken from a training config (none by default)."""
        return {}

    def build_model(self, spec, config, rngs: nnx.Rngs):
        """The model for data `spec`, its backbone sized by the shared `config.model`."""
        self.check_data(spec)
        return self.model(backbone_config(config.model), spec.shape, spec.num_levels, rngs=rngs,
                          **self.model_options(config))

    @abc.abstractmethod
    def loss(self, view: ModelView, spec, config) -> Callable:
        """(params, batch, key) -> (B,) training objective (minimized as a batch mean)."""

    @abc.abstractmethod
    def estimators(self, view: ModelView, spec, config) -> list[Estimator]:
        """Every likelihood estimator of the model; the first is the training eval NLL."""

    @abc.abstractmethod
    def samplers(self, view: ModelView, spec, config) -> list[Sampler]:
        """The samplers (and settings) to sweep, e.g. over NFE."""

    @abc.abstractmethod
    def default_sampler(self, view: ModelView, spec, config) -> Sampler:
        """The sampler of training-time samples (`config.sample.num_steps` where it applies)."""

    def write_samples(self, samples, spec, stem: str) -> str:
        """Save samples (num, *spec.shape) ints: a PNG grid for images, a .txt for text."""
        if spec.kind == "image":
            return save_image_grid(samples, spec.num_levels, stem + ".png")
        rows = np.asarray(samples)
        if spec.tokenizer is None:
            return save_text_samples([" ".join(map(str, row)) for row in rows], stem + ".txt")
        return save_text_samples([spec.tokenizer.decode(row) for row in rows], stem + ".txt")
