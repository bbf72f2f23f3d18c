"""A family is one definition: a toy family defined in this file alone (independent categorical
pixels, whose exact NLL is the sum of per-pixel cross-entropies) is registered, trained by the
training loop, evaluated by experiments.evaluate and included in a smoke experiments.compare —
through the registry only. And experiments.evaluate reproduces compare's numbers."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from experiments.comparison.run import run_comparison
from experiments.configs.base import get_base_config
from experiments.configs.compare import get_config, smoke
from experiments.comparison.evaluation import evaluate_run
from gen_jax import families
from gen_jax.core.results import LikelihoodResult, SampleResult
from gen_jax.families import EXACT, Estimator, Family, Sampler, batch_tokens
from gen_jax.train.build import load_split
from gen_jax.train.loop import train


class PixelLogits(nnx.Module):
    """p(x) = prod_i Categorical(x_i; softmax(logits_i)): one free logit table (D, K)."""

    def __init__(self, num_dims, num_levels, *, rngs):
        self.logits = nnx.Param(0.01 * jax.random.normal(rngs.params(), (num_dims, num_levels)))

    def __call__(self):
        return self.logits[...]


class IndependentPixels(Family):
    name = "toy_pixels"
    data_kinds = ("image", "text")

    def default_config(self):
        c = ml_collections.ConfigDict()
        c.sample = ml_collections.ConfigDict()
        c.sample.temperature = 1.0
        return c

    def model(self, backbone, data_shape, num_levels, *, rngs):
        return PixelLogits(math.prod(data_shape), num_levels, rngs=rngs)

    def _nll(self, view):
        def nll(params, batch, key):
            tokens = batch_tokens(batch)
            log_p = jax.nn.log_softmax(view.apply(params), axis=-1)  # (D, K)
            return -jnp.sum(jnp.take_along_axis(log_p[None], tokens[..., None], -1)[..., 0], -1)
        return nll

    def loss(self, view, spec, config):
        nll = self._nll(view)
        return lambda p, b, k: nll(p, b, k) / (spec.num_dims * math.log(2.0))

    def estimators(self, view, spec, config):
        nll = self._nll(view)
        return [Estimator("exact NLL", EXACT, lambda p, b, k: LikelihoodResult(nll(p, b, k), {}),
                          repeated=False)]

    def default_sampler(self, view, spec, config):
        def sample(params, key, num):
            draws = jax.random.categorical(key, view.apply(params), shape=(num, spec.num_dims))
            return SampleResult(draws.reshape((num,) + tuple(spec.shape)), 1)
        return Sampler("independent", "1 call", sample)

    def samplers(self, view, spec, config):
        return [self.default_sampler(view, spec, config)]


@pytest.fixture(scope="module")
def toy_family():
    family = families.register(IndependentPixels())
    yield family
    families.unregister(family.name)


def _small(config, steps):
    config.model.width, config.model.depth, config.model.num_heads = 16, 1, 2
    config.train.steps, config.train.batch_size = steps, 16
    config.optimizer.warmup_steps, config.optimizer.learning_rate = 1, 0.05
    config.checkpoint.every_steps = steps
    config.logging.every_steps, config.logging.progress_bar = steps, False
    config.logging.tensorboard = False
    config.eval.every_steps, config.eval.batch_size = 0, 64
    config.eval.max_examples = 128
    config.sample.every_steps = 0
    return config


def _closed_form_bits(logits, images):
    """Sum of per-pixel cross-entropies in float64 numpy, per example, in bits/dim."""
    logits = np.asarray(logits, np.float64)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    k = images.reshape(len(images), -1).astype(int)
    nats = -log_p[np.arange(k.shape[1]), k].sum(-1)
    return nats / (k.shape[1] * math.log(2.0))


def test_toy_family_trains_and_evaluates_through_the_registry(toy_family, tmp_path):
    config = _small(get_base_config(toy_family.name, "digits"), steps=40)
    result = train(config, str(tmp_path))
    assert result.history[-1]["loss"] < math.log2(17)  # it learned (uniform: log2 K)
    evaluation = evaluate_run(str(tmp_path))
    (row,) = evaluation["likelihoods"]
    assert row["model"] == toy_family.name and row["kind"] == "exact"
    test = load_split(config, "test").get_batch(np.arange(128))["image"]
    expected = _closed_form_bits(result.state.ema_params["logits"][...], test)
    assert row["bits_per_dim"] == pytest.approx(expected.mean(), rel=1e-5)
    assert row["se"] == pytest.approx(expected.std(ddof=1) / math.sqrt(len(expected)), rel=1e-4)
    assert all(c["holds"] for c in evaluation["audit"])


def test_smoke_compare_includes_the_toy_family_and_evaluate_reproduces_it(toy_family, tmp_path):
    cfg = smoke(get_config("digits"))
    cfg.families = ("masked", toy_family.name)
    results = run_comparison(cfg, str(tmp_path))
    rows = {(r["model"], r["name"]): r for r in results["likelihoods"]}
    assert (toy_family.name, "exact NLL") in rows
    assert {r["model"] for r in results["sampling"]} == {"masked", toy_family.name}
    assert (tmp_path / f"samples_{toy_family.name}.png").stat().st_size > 0
    for family in cfg.families:  # the same params, examples, batches and keys: the same numbers
        again = evaluate_run(str(tmp_path / family))
        for r in again["likelihoods"]:
            assert r["bits_per_dim"] == pytest.approx(rows[(family, r["name"])]["bits_per_dim"],
                                                      rel=1e-6, abs=1e-6), (family, r["name"])
            assert r["se"] == pytest.approx(rows[(family, r["name"])]["se"], rel=1e-5, abs=1e-7)
