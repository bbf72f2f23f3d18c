"""Count parameters, and view a model as a pure function.

Matched sizes: families built from the *same* TransformerConfig (`gen_jax.families.build_model`)
share the backbone exactly and differ only in their embeddings and heads:
  'ar'       token table (V+1) d + head d V + V
  'masked'   token table (V+1) d + head d V + V        (+ time MLP if time_conditioning)
  'gaussian' patch embed (p^2 C) d + d + head d (p^2 C) + p^2 C + time MLP (256 d + d + d^2 + d)
             + adaLN-zero modulation (6 d^2 + 6 d per block, 2 d^2 + 2 d final)
so `count_params` differs by those terms only (checked in tests/test_models_transformer.py).
"""
import jax
from flax import nnx


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
