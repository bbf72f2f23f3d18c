"""Build models by family, count parameters, and view a model as a pure function.

Matched sizes: build every family from the *same* TransformerConfig (d_model, num_layers,
num_heads, mlp...). The backbone is then identical and the families differ only in their
embeddings and heads:
  'ar'       token table (V+1) d + head d V + V
  'masked'   token table (V+1) d + head d V + V        (+ time MLP if time_conditioning)
  'gaussian' patch embed (p^2 C) d + d + head d (p^2 C) + p^2 C + time MLP (256 d + d + d^2 + d)
             + adaLN-zero modulation (6 d^2 + 6 d per block, 2 d^2 + 2 d final)
so `count_params` differs by those terms only (checked in tests/test_models_transformer.py).
"""
import dataclasses
import math

import jax
from flax import nnx

from gen_jax.models.ar import ARTransformer
from gen_jax.models.gaussian import DiffusionTransformer
from gen_jax.models.masked import MaskedTransformer
from gen_jax.models.transformer import TransformerConfig

FAMILIES = ("ar", "gaussian", "masked")


def count_params(model) -> int:
    """Number of scalar parameters (nnx.Param leaves) in an NNX module."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def functional(model):
    """Pure view of a module: returns (apply_fn, params).

    `apply_fn(params, *inputs, **kwargs)` == `model(*inputs, **kwargs)` as a plain function of
    the nnx.State `params` (the nnx.Param variables), usable under jax.jit / grad / vmap by core
    losses, likelihoods and samplers, e.g. `fn = lambda x, t: apply_fn(params, x, t)`. Other
    state (RNG counters of dropout layers) is captured in the closure and not updated, so the
    view is deterministic: train with dropout through nnx transforms on the module instead.
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def apply_fn(params, *inputs, **kwargs):
        return nnx.merge(graphdef, params, rest)(*inputs, **kwargs)

    return apply_fn, params


def build_model(family, *, data_shape, num_levels=None, config=None, rngs,
                patch_size=1, prediction="eps", **config_overrides):
    """Build an 'ar', 'gaussian' or 'masked' model around one backbone configuration.

    Args:
        family: 'ar' | 'gaussian' | 'masked'.
        data_shape: per-example shape: (L,) for token sequences, (H, W, C) for images. Token
            families flatten images in raster order (L = H W C).
        num_levels: vocabulary size V (K for K-level pixels); required for 'ar' and 'masked'.
        config: a TransformerConfig (or None for defaults); `config_overrides` replace fields.
            The factory sets what the family requires: causal (ar: True, others: False),
            time_conditioning=True for 'gaussian', and raises max_len to the sequence length
            (+1 for 'ar': BOS plus L tokens when sampling) if it is smaller.
        rngs: nnx.Rngs.
        patch_size, prediction: 'gaussian' only.
    Returns:
        ARTransformer | DiffusionTransformer | MaskedTransformer.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    config = dataclasses.replace(config or TransformerConfig(), **config_overrides)
    data_shape = tuple(data_shape)
    if family == "gaussian":
        if len(data_shape) != 3:
            raise ValueError(f"'gaussian' needs data_shape (H, W, C), got {data_shape}")
        h, w, _ = data_shape
        length = (h // patch_size) * (w // patch_size)
        config = dataclasses.replace(config, causal=False, time_conditioning=True,
                                     max_len=max(config.max_len, length))
        return DiffusionTransformer(config, data_shape, patch_size=patch_size,
                                    prediction=prediction, rngs=rngs)
    if num_levels is None:
        raise ValueError(f"family {family!r} needs num_levels (the vocabulary size)")
    # AR sampling holds BOS + all L tokens in its KV cache, hence L + 1 positions.
    length = math.prod(data_shape) + (family == "ar")
    config = dataclasses.replace(config, causal=(family == "ar"),
                                 max_len=max(config.max_len, length))
    cls = ARTransformer if family == "ar" else MaskedTransformer
    return cls(config, num_levels, rngs=rngs)
