"""The masked (absorbing-state) diffusion family (MD4, Shi et al. 2024; MDLM, Sahoo et al. 2024):
each token is kept with probability alpha(t) and otherwise replaced by the mask id V; a
bidirectional transformer predicts p(x0_i | x_t) at masked positions.

Estimators: the continuous-time ELBO (`core.masked.masked_elbo`) and, for each T of
`sample.steps`, the T-step ELBO — exactly the bound of the T-step ancestral sampler's output
distribution. Training minimizes the continuous ELBO in bits/dim. Samplers: T-step ancestral
unmasking (`masked_ancestral_sample`), NFE = T.
"""
import dataclasses
import functools
import math

import jax
import ml_collections

from gen_jax.core.masked import MaskingSchedule, masked_ancestral_sample, masked_elbo
from gen_jax.core.results import SampleResult
from gen_jax.core.units import nats_to_bits_per_dim
from gen_jax.families.base import UPPER_BOUND, Estimator, Family, Sampler, batch_tokens, choice
from gen_jax.families.registry import register
from gen_jax.models.masked import MaskedTransformer

SCHEDULES = ("linear", "cosine", "poly")


class MaskedDiffusionFamily(Family):
    name = "masked"
    data_kinds = ("image", "text")

    def default_config(self):
        c = ml_collections.ConfigDict()
        c.schedule = "linear"  # MD4 masking schedule alpha~(t): 'linear' | 'cosine' | 'poly'
        c.sample = ml_collections.ConfigDict()
        c.sample.steps = (64,)  # T of the ancestral sampler, each with its T-step ELBO
        return c

    def validate(self, config):
        s = self.section(config)
        choice(s, "masked", "schedule", SCHEDULES)
        if not s.sample.steps:
            raise ValueError("config.masked.sample.steps must name at least one T")
        for n in s.sample.steps:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"config.masked.sample.steps must hold integers >= 1, got {n!r}")

    def smoke(self, config):
        self.section(config).sample.steps = (8,)

    def model(self, backbone, data_shape, num_levels, *, rngs):
        if num_levels is None:
            raise ValueError("family 'masked' needs num_levels (the vocabulary size)")
        length = math.prod(data_shape)
        backbone = dataclasses.replace(backbone, causal=False,
                                       max_len=max(backbone.max_len, length))
        return MaskedTransformer(backbone, num_levels, rngs=rngs)

    def _elbo(self, view, spec, config, num_steps=None, antithetic=False):
        schedule = MaskingSchedule(kind=self.section(config).schedule)

        def elbo(params, batch, key):
            return masked_elbo(key, lambda x_t, t: view.apply(params, x_t, t), batch_tokens(batch),
                               schedule, spec.num_levels, num_steps=num_steps,
                               antithetic=antithetic)
        return elbo

    def loss(self, view, spec, config):
        elbo = self._elbo(view, spec, config, antithetic=True)  # stratified t: lower-variance loss
        return lambda p, b, k: nats_to_bits_per_dim(elbo(p, b, k).nll, spec.num_dims)

    def estimators(self, view, spec, config):
        steps = self.section(config).sample.steps
        return [Estimator("continuous-time ELBO (MD4)", UPPER_BOUND, self._elbo(view, spec, config))] + [
            Estimator(f"{T}-step ELBO (its sampler)", UPPER_BOUND,
                      self._elbo(view, spec, config, num_steps=T)) for T in steps]

    def _sampler(self, view, spec, config, num_steps):
        schedule = MaskingSchedule(kind=self.section(config).schedule)
        shape, length, K = tuple(spec.shape), spec.num_dims, spec.num_levels

        @functools.partial(jax.jit, static_argnums=2)
        def sample(params, key, num):
            fn = lambda x, t: view.apply(params, x, t)  # noqa: E731
            tokens, nfe = masked_ancestral_sample(key, fn, num, length, schedule, num_steps, K)
            return SampleResult(tokens.reshape((num,) + shape), nfe)

        return Sampler("ancestral", f"{num_steps} steps", sample)

    def samplers(self, view, spec, config):
        return [self._sampler(view, spec, config, T) for T in self.section(config).sample.steps]

    def default_sampler(self, view, spec, config):
        return self._sampler(view, spec, config, config.sample.num_steps)


register(MaskedDiffusionFamily())
