"""The autoregressive family: p(x) = prod_i p(x_i | x_<i) over tokens (images in raster order).

Its one estimator is exact: -log P(x) = -sum_i log softmax(logits_i)[x_i] (`core.likelihood.
ar_nll`), from one forward pass over the BOS-shifted input. Training minimizes that NLL in
bits/dim. Sampling is ancestral decoding with a KV cache (`models.decoding.generate`): one model
call per token, so NFE = D.
"""
import dataclasses
import math

import jax.numpy as jnp
import ml_collections

from gen_jax.core.likelihood import ar_nll
from gen_jax.core.results import LikelihoodResult, SampleResult
from gen_jax.core.units import nats_to_bits_per_dim
from gen_jax.families.base import (EXACT, Estimator, Family, Sampler, batch_tokens)
from gen_jax.families.registry import register
from gen_jax.models.ar import ARTransformer, ar_inputs
from gen_jax.models.decoding import generate


class AutoregressiveFamily(Family):
    name = "ar"
    data_kinds = ("image", "text")

    def default_config(self):
        c = ml_collections.ConfigDict()
        c.sample = ml_collections.ConfigDict()
        c.sample.temperature = 1.0  # of the ancestral sampler (0: greedy)
        return c

    def validate(self, config):
        t = self.section(config).sample.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0:
            raise ValueError(f"config.ar.sample.temperature must be a number >= 0, got {t!r}")

    def model(self, backbone, data_shape, num_levels, *, rngs):
        if num_levels is None:
            raise ValueError("family 'ar' needs num_levels (the vocabulary size)")
        # Sampling holds BOS + all L tokens in the KV cache, hence L + 1 positions.
        length = math.prod(data_shape) + 1
        backbone = dataclasses.replace(backbone, causal=True, time_conditioning=False,
                                       max_len=max(backbone.max_len, length))
        return ARTransformer(backbone, num_levels, rngs=rngs)

    def _nll(self, view, spec):
        def nll(params, batch, key):
            del key
            tokens = batch_tokens(batch)
            logits = view.apply(params, ar_inputs(tokens, spec.num_levels))
            return ar_nll(logits, tokens, batch.get("token_mask"))
        return nll

    def loss(self, view, spec, config):
        nll = self._nll(view, spec)
        return lambda params, batch, key: nats_to_bits_per_dim(nll(params, batch, key), spec.num_dims)

    def estimators(self, view, spec, config):
        nll = self._nll(view, spec)
        return [Estimator("exact NLL", EXACT, lambda p, b, k: LikelihoodResult(nll(p, b, k), {}),
                          repeated=False)]

    def default_sampler(self, view, spec, config):
        temperature = float(self.section(config).sample.temperature)
        shape, length = tuple(spec.shape), spec.num_dims

        def sample(params, key, num):
            model = view.module(params)
            prompt = jnp.full((num, 1), model.bos_id, jnp.int32)
            tokens, nfe = generate(model, key, prompt, length, temperature=temperature)
            return SampleResult(tokens[:, 1:].reshape((num,) + shape), nfe)

        return Sampler("ancestral", f"KV cache, T={temperature:g}", sample)

    def samplers(self, view, spec, config):
        return [self.default_sampler(view, spec, config)]


register(AutoregressiveFamily())
