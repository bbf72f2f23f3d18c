"""Count parameters, and view a model as a pure function.

Matched sizes: families built from the *same* TransformerConfig (`gen_jax.families.build_model`)
share the backbone exactly and differ only in their embeddings and heads:
  'ar'       token table (V+1) d + head d V + V
  'masked'   token table (V+1) d + head d V + V        (+ time MLP if time_conditioning)
  'gaussian' patch embed (p^2 C) d + d + head d (p^2 C) + p^2 C + time MLP (256 d + d + d^2 + d)
             + adaLN-zero modulation (6 d^2 + 6 d per block, 2 d^2 + 2 d final)
so `count_params` differs by those terms only (checked in tests/test_models_transformer.py).
"""
import dataclasses

import jax
from flax import nnx


def count_params(model) -> int:
    """Number of scalar parameters (nnx.Param leaves) in an NNX module."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


@dataclasses.dataclass(frozen=True)
class ModelView:
    """A Flax NNX module seen as pure functions of its parameters.

    apply(params, *inputs, **kwargs) == module(*inputs, **kwargs); module(params) rebuilds the module (for methods
    other than __call__, e.g. AR decoding with a KV cache). Other state (RNG counters) is
    captured and not updated, so the view is deterministic.
    """
    graphdef: object
    rest: object

    @classmethod
    def of(cls, model) -> tuple["ModelView", object]:
        """(view, params) of an NNX module; params are its nnx.Param variables."""
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        return cls(graphdef, rest), params

    def module(self, params):
        return nnx.merge(self.graphdef, params, self.rest)

    def apply(self, params, *inputs, **kwargs):
        return self.module(params)(*inputs, **kwargs)


def functional(model):
    """Pure view of a module: (apply_fn, params) with `apply_fn(params, *inputs, **kwargs)` ==
    `model(*inputs, **kwargs)` (`ModelView.apply`), usable under jax.jit / grad / vmap by core
    losses, likelihoods and samplers, e.g. `fn = lambda x, t: apply_fn(params, x, t)`."""
    view, params = ModelView.of(model)
    return view.apply, params
