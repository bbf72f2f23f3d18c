"""The block-diffusion family (BD3-LM, Arriola et al. 2025): autoregressive over blocks of b
tokens, masked diffusion within a block (`gen_jax.core.block`); b = 1 is an AR model, b = L
masked diffusion. Images are modelled as raster-order tokens.

Several block sizes in one comparison: a model trained at one b and evaluated at another is not
the same model (its attention pattern and its bound differ), so each b is its own trained model.
One class, several registered instances with different default b, each with its own config
section: `block` (b = 4), `block1`, `block16` and `blockL` (b = L, the whole sequence). Any of
them can be set to another b with `config.<name>.block_size`; `--families block` alone trains one.

`supports()` is text only, so the default digits comparison does not train four more models
(it would not fit its 5-minute budget); images are modelled when a block family is named
explicitly (`--families ar,block`).

Estimators: the continuous-time NELBO and, for each T of `sample.steps`, the T-step NELBO
(exactly the bound of the T-step-per-block sampler). Training minimizes the continuous NELBO in
bits/dim (optionally on BD3-LM's clipped time range, `train_clip`). Sampler: block by block with a
KV cache of the clean blocks, T masked ancestral steps per block, NFE = (L / b) T.
"""
import dataclasses
import functools
import math

import jax
import ml_collections

from gen_jax.core.block import MaskingSchedule, block_ancestral_sample, block_elbo
from gen_jax.core.units import nats_to_bits_per_dim
from gen_jax.core.results import LikelihoodResult, SampleResult
from gen_jax.families.base import UPPER_BOUND, Estimator, Family, Sampler, batch_tokens, choice
from gen_jax.families.registry import register
from gen_jax.models.block import BlockDiffusionTransformer

SCHEDULES = ("linear", "cosine", "poly")


def _int_at_least(value, minimum, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


class BlockDiffusionFamily(Family):
    """Block diffusion with default block size `block_size` (0: the whole sequence)."""

    data_kinds = ("image", "text")

    def __init__(self, name: str, block_size: int):
        self.name = name
        self.default_block_size = block_size

    def default_config(self):
        c = ml_collections.ConfigDict()
        c.block_size = self.default_block_size  # b, tokens per block (divides L); 0: b = L
        c.schedule = "linear"  # MD4 masking schedule alpha~(t) within a block (core.masked)
        c.train_clip = ()  # () or (lo, hi): train on t ~ U[lo, hi] (BD3-LM's clipped schedule)
        c.sample = ml_collections.ConfigDict()
        c.sample.steps = (0,)  # T per block of the sampler, each with its T-step NELBO; 0: T = b
        c.sample.temperature = 1.0  # of the sampler's categorical draws
        c.sample.top_p = 1.0  # nucleus mass of the draws (1: no truncation)
        return c

    def supports(self, spec):
        return spec.kind == "text"

    def check_data(self, spec):
        if spec.kind not in self.data_kinds:
            raise ValueError(f"the {self.name!r} family models image or text data; {spec.name!r} "
                             f"is {spec.kind!r} data")

    def validate(self, config):
        s, p = self.section(config), self.name
        _int_at_least(s.block_size, 0, f"config.{p}.block_size")
        choice(s, p, "schedule", SCHEDULES)
        clip = tuple(s.train_clip)
        if clip and not (len(clip) == 2 and all(isinstance(c, (int, float)) for c in clip)
                         and 0.0 <= clip[0] < clip[1] <= 1.0):
            raise ValueError(f"config.{p}.train_clip must be () or (lo, hi) with "
                             f"0 <= lo < hi <= 1, got {clip!r}")
        if not s.sample.steps:
            raise ValueError(f"config.{p}.sample.steps must name at least one T")
        for n in s.sample.steps:
            _int_at_least(n, 0, f"config.{p}.sample.steps entries")
        t = s.sample.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise ValueError(f"config.{p}.sample.temperature must be a number > 0, got {t!r}")
        top_p = s.sample.top_p
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ValueError(f"config.{p}.sample.top_p must be in (0, 1], got {top_p!r}")

    def smoke(self, config):
        self.section(config).sample.steps = (2,)

    def block_size(self, config, length: int) -> int:
        """b of this config for sequences of `length` tokens; ValueError unless it divides L."""
        b = self.section(config).block_size
        return self._resolve(b, length)

    def _resolve(self, b, length):
        b = length if b == 0 else b
        if length % b:
            raise ValueError(f"config.{self.name}.block_size = {b} must divide the sequence "
                             f"length {length} (0: the whole sequence)")
        return b

    def model_options(self, config):
        return dict(block_size=self.section(config).block_size)

    def model(self, backbone, data_shape, num_levels, *, rngs, block_size=None):
        if num_levels is None:
            raise ValueError(f"family {self.name!r} needs num_levels (the vocabulary size)")
        length = math.prod(data_shape)
        b = self._resolve(self.default_block_size if block_size is None else block_size, length)
        backbone = dataclasses.replace(backbone, causal=False, time_conditioning=False,
                                       attention_block_size=b,
                                       max_len=max(backbone.max_len, length))
        return BlockDiffusionTransformer(backbone, num_levels, rngs=rngs)

    def _steps(self, config, spec, n):
        return self.block_size(config, spec.num_dims) if n == 0 else n

    def _elbo(self, view, spec, config, num_steps=None, clip=None, antithetic=False):
        s = self.section(config)
        schedule, b = MaskingSchedule(kind=s.schedule), self.block_size(config, spec.num_dims)

        def elbo(params, batch, key):
            out = block_elbo(key, lambda x_t, x: view.apply(params, x_t, x), batch_tokens(batch),
                             schedule, spec.num_levels, b, num_steps=num_steps, clip=clip,
                             antithetic=antithetic)
            return LikelihoodResult(out.nll, {k: v for k, v in out.terms.items() if k != "t"})
        return elbo

    def loss(self, view, spec, config):
        clip = tuple(self.section(config).train_clip) or None
        elbo = self._elbo(view, spec, config, clip=clip, antithetic=True)  # stratified t
        return lambda p, b, k: nats_to_bits_per_dim(elbo(p, b, k).nll, spec.num_dims)

    def estimators(self, view, spec, config):
        b = self.block_size(config, spec.num_dims)
        steps = [self._steps(config, spec, n) for n in self.section(config).sample.steps]
        return [Estimator(f"continuous-time NELBO (BD3-LM, b={b})", UPPER_BOUND,
                          self._elbo(view, spec, config))] + [
            Estimator(f"{T}-step/block NELBO (its sampler)", UPPER_BOUND,
                      self._elbo(view, spec, config, num_steps=T)) for T in steps]

    def _sampler(self, view, spec, config, num_steps):
        s = self.section(config)
        schedule, b = MaskingSchedule(kind=s.schedule), self.block_size(config, spec.num_dims)
        shape, length, K = tuple(spec.shape), spec.num_dims, spec.num_levels
        temperature, top_p = float(s.sample.temperature), float(s.sample.top_p)

        @functools.partial(jax.jit, static_argnums=2)
        def sample(params, key, num):
            model = view.module(params)
            out = block_ancestral_sample(key, model.denoise, model.init_cache(num, length), num,
                                         length, b, schedule, num_steps, K,
                                         temperature=temperature,
                                         top_p=None if top_p == 1.0 else top_p)
            return SampleResult(out.samples.reshape((num,) + shape), out.nfe)

        return Sampler("block ancestral", f"b={b}, {num_steps} steps/block, KV cache", sample)

    def samplers(self, view, spec, config):
        return [self._sampler(view, spec, config, self._steps(config, spec, n))
                for n in self.section(config).sample.steps]

    def default_sampler(self, view, spec, config):
        steps = self._steps(config, spec, self.section(config).sample.steps[0])
        return self._sampler(view, spec, config, steps)


register(BlockDiffusionFamily("block", 4))
register(BlockDiffusionFamily("block1", 1))
register(BlockDiffusionFamily("block16", 16))
register(BlockDiffusionFamily("blockL", 0))
