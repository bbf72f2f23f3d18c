"""Assemble `loop.Components` for a training config: data from `gen_jax.data`, the model, loss,
eval NLL and sampler of the registered family `config.family` (`gen_jax.families`). The loss runs
in `config.model.compute_dtype`; the eval NLL, sampler and `Components.view` always compute in
float32 (`float32_view`)."""
import jax
from flax import nnx

from gen_jax import data as data_lib
from gen_jax import families
from gen_jax.train.components import Components


def load_split(config, split: str):
    """`gen_jax.data.load` with the config's data fields (empty strings mean 'not given')."""
    d = config.data
    return data_lib.load(d.name, split, data_dir=d.data_dir or None, tfds_dir=d.tfds_dir or None,
                         **d.options.to_dict())


def float32_view(family, spec, config, view):
    """The model as a pure function with float32 compute, for likelihoods and sampling: `view`
    itself when `config.model.compute_dtype` is float32, else the same architecture rebuilt with
    float32 compute (parameters are float32 in both, so they are shared unchanged)."""
    if config.model.compute_dtype == "float32":
        return view
    f32_config = config.copy_and_resolve_references()
    f32_config.model.compute_dtype = "float32"
    model = nnx.eval_shape(lambda: family.build_model(spec, f32_config, nnx.Rngs(config.seed)))
    f32_view, _ = families.ModelView.of(model)
    if jax.tree.leaves(f32_view.rest):
        raise ValueError("a float32 evaluation copy needs a model with no state besides its "
                         "parameters")
    return f32_view


def build_components(config) -> Components:
    """Data, model, objective and sampler of `config` as the loop's `Components`."""
    family = families.get(config.family)
    train_ds = load_split(config, config.data.train_split)
    eval_ds = load_split(config, config.data.eval_split)
    spec = train_ds.spec
    family.check_data(spec)
    # Initialised in one compiled program (same values as eager init, far fewer compiles).
    model = nnx.jit(lambda: family.build_model(spec, config, nnx.Rngs(config.seed)))()
    view, params = families.ModelView.of(model)
    eval_view = float32_view(family, spec, config, view)
    nll = family.estimators(eval_view, spec, config)[0].fn
    sampler = family.default_sampler(eval_view, spec, config)

    def train_batches(start_step, shard_index, num_shards):
        return data_lib.BatchIterator(train_ds, config.train.batch_size, seed=config.seed,
                                      start_step=start_step, shard_index=shard_index,
                                      num_shards=num_shards)

    def eval_batches():
        return data_lib.eval_batches(eval_ds, config.eval.batch_size,
                                     shard_index=jax.process_index(),
                                     num_shards=jax.process_count())

    return Components(
        train_batches=train_batches, eval_batches=eval_batches, params=params,
        loss_fn=family.loss(view, spec, config),
        nll_fn=lambda p, batch, key: nll(p, batch, key).nll, num_dims=spec.num_dims,
        sample_fn=lambda p, key, num: sampler.fn(p, key, num).samples,
        write_samples=lambda samples, stem: family.write_samples(samples, spec, stem),
        view=eval_view, spec=spec,
        data_fingerprint={"train": data_lib.fingerprint(train_ds), "eval": data_lib.fingerprint(eval_ds)})
