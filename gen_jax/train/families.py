"""Assemble `loop.Components` for a config: data from `gen_jax.data`, a model from
`gen_jax.models.factory` sized by `config.model`, the family's objective and its sampler."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gen_jax import data as data_lib
from gen_jax.core.masked import MaskingSchedule, masked_ancestral_sample
from gen_jax.core.param import Denoiser
from gen_jax.core.samplers import dpm_solver_pp_sample
from gen_jax.models.decoding import generate
from gen_jax.models.factory import build_model
from gen_jax.models.transformer import TransformerConfig
from gen_jax.train.components import Components
from gen_jax.train.objectives import gaussian_process, make_objective
from gen_jax.train.samples import save_image_grid, save_text_samples


def load_split(config, split: str):
    """`gen_jax.data.load` with the config's data fields (empty strings mean 'not given')."""
    d = config.data
    return data_lib.load(d.name, split, data_dir=d.data_dir or None, tfds_dir=d.tfds_dir or None,
                         **d.options.to_dict())


def backbone_config(model_config) -> TransformerConfig:
    """The transformer shared by all families (the factory sets causality / time conditioning,
    and raises max_len from 1 to the family's sequence length, so a learned position table has
    exactly the rows the data needs)."""
    return TransformerConfig(num_layers=model_config.depth, num_heads=model_config.num_heads,
                             d_model=model_config.width, mlp_ratio=model_config.mlp_ratio,
                             positional=model_config.positional, max_len=1)


def _sampler(family, graphdef, rest, spec, config):
    """(params, key, num) -> (num, *spec.shape) int samples (levels or token ids).

    ar: KV-cached ancestral decoding from BOS (`models.decoding.generate`, temperature 1).
    masked: `masked_ancestral_sample` with `sample.num_steps` uniform steps.
    gaussian: DPM-Solver++(2M) (`core.samplers.dpm_solver_pp_sample`), `sample.num_steps`
      model calls from t=1 to t=1e-3, then each value rounded to its nearest level centre.
    """
    num_steps = config.sample.num_steps
    shape = tuple(spec.shape)
    length = math.prod(shape)
    K = spec.num_levels
    if family == "ar":
        def sample(params, key, num):
            model = nnx.merge(graphdef, params, rest)
            prompt = jnp.full((num, 1), model.bos_id, jnp.int32)
            return generate(model, key, prompt, length)[:, 1:].reshape((num,) + shape)
        return sample
    if family == "masked":
        schedule = MaskingSchedule(kind=config.objective.masked_schedule)

        @functools.partial(jax.jit, static_argnums=2)
        def tokens(params, key, num):
            fn = lambda x, t: nnx.merge(graphdef, params, rest)(x, t)  # noqa: E731
            return masked_ancestral_sample(key, fn, num, length, schedule, num_steps, K)

        return lambda params, key, num: tokens(params, key, num).reshape((num,) + shape)
    process = gaussian_process(config.objective.logsnr_min, config.objective.logsnr_max)

    @functools.partial(jax.jit, static_argnums=2)
    def centers(params, key, num):
        fn = lambda x, t: nnx.merge(graphdef, params, rest)(x, t)  # noqa: E731
        x, _ = dpm_solver_pp_sample(key, Denoiser(process, fn=fn, prediction=config.objective.prediction), process,
                                    (num,) + shape, num_steps)
        return x

    def sample(params, key, num):
        return data_lib.from_centers(np.asarray(centers(params, key, num)), K)
    return sample


def _sample_writer(spec):
    if spec.kind == "image":
        return lambda samples, stem: save_image_grid(samples, spec.num_levels, stem + ".png")
    if spec.tokenizer is None:
        return lambda samples, stem: save_text_samples(
            [" ".join(map(str, row)) for row in np.asarray(samples)], stem + ".txt")
    return lambda samples, stem: save_text_samples(
        [spec.tokenizer.decode(row) for row in np.asarray(samples)], stem + ".txt")


def build_components(config) -> Components:
    """Data, model, objective and sampler of `config` as the loop's `Components`."""
    family = config.family
    train_ds = load_split(config, config.data.train_split)
    eval_ds = load_split(config, config.data.eval_split)
    spec = train_ds.spec
    # Initialised in one compiled program (same values as eager init, far fewer compiles).
    model = nnx.jit(lambda: build_model(
        family, data_shape=spec.shape, num_levels=spec.num_levels,
        config=backbone_config(config.model), rngs=nnx.Rngs(config.seed),
        **({"patch_size": config.model.patch_size, "prediction": config.objective.prediction}
           if family == "gaussian" else {})))()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def apply_fn(p, *inputs):
        return nnx.merge(graphdef, p, rest)(*inputs)

    objective = make_objective(family, apply_fn, spec, config.objective)

    def train_batches(start_step, shard_index, num_shards):
        return data_lib.BatchIterator(train_ds, config.train.batch_size, seed=config.seed,
                                      start_step=start_step, shard_index=shard_index,
                                      num_shards=num_shards)

    def eval_batches():
        return data_lib.eval_batches(eval_ds, config.eval.batch_size,
                                     shard_index=jax.process_index(),
                                     num_shards=jax.process_count())

    return Components(train_batches=train_batches, eval_batches=eval_batches, params=params,
                      loss_fn=objective.loss, nll_fn=objective.nll, num_dims=objective.num_dims,
                      sample_fn=_sampler(family, graphdef, rest, spec, config),
                      write_samples=_sample_writer(spec), apply_fn=apply_fn, spec=spec,
                      data_fingerprint={"train": data_lib.fingerprint(train_ds), "eval": data_lib.fingerprint(eval_ds)})
