"""Model families as first-class definitions: one module per family implementing `Family`
(base.py), one registry (registry.py). Importing this package registers the built-in families
'ar', 'gaussian', 'masked', 'flow' and the block-diffusion sizes 'block' (b = 4), 'block1',
'block16' and 'blockL' (b = L).

    from gen_jax import families
    family = families.get("masked")
    model = families.build_model("ar", data_shape=(8, 8, 1), num_levels=17, rngs=nnx.Rngs(0))
"""
import dataclasses

from gen_jax.families.base import (EXACT, UPPER_BOUND, Estimator, Family, ModelView, Sampler,
                                   backbone_config, batch_tokens)
from gen_jax.families.registry import get, names, register, unregister
from gen_jax.families import ar, gaussian, masked, flow, block  # noqa: F401,E402  (registers the built-ins, in this order)
from gen_jax.models.transformer import TransformerConfig


def build_model(family: str, *, data_shape, num_levels=None, config=None, rngs, **options):
    """The NNX model of a registered family around one backbone configuration.

    Args:
        family: a registered family name ('ar', 'gaussian', 'masked', ...).
        data_shape: per-example shape: (L,) tokens or (H, W, C) images (token families flatten
            images in raster order).
        num_levels: vocabulary size V (K for K-level pixels); token families need it.
        config: a TransformerConfig (None: defaults); TransformerConfig fields in `options`
            replace its fields, the rest go to the family (e.g. gaussian's patch_size,
            prediction). Families built from the same config share the backbone exactly.
        rngs: nnx.Rngs.
    """
    fields = {f.name for f in dataclasses.fields(TransformerConfig)}
    overrides = {k: v for k, v in options.items() if k in fields}
    family_options = {k: v for k, v in options.items() if k not in fields}
    backbone = dataclasses.replace(config or TransformerConfig(), **overrides)
    return get(family).model(backbone, tuple(data_shape), num_levels, rngs=rngs, **family_options)


__all__ = ["EXACT", "UPPER_BOUND", "Estimator", "Family", "ModelView", "Sampler",
           "backbone_config", "batch_tokens", "build_model", "get", "names", "register",
           "unregister"]
