"""`pytree_dataclass`: a frozen dataclass registered as a pytree whose class is part of its
tree structure.

Fields with ``metadata=dict(static=True)`` are structure (hashable, compared on every jit cache
lookup); the others are leaves. This replaces ``jax.tree_util.register_dataclass``, whose tree
structures (jax 0.10.2) compare equal across *different* classes with equal static values:
``VPSDE()`` and ``SubVPSDE()`` give equal PyTreeDefs, so a jitted function's cache can serve one
process's executable to the other (seen as an intermittent wrong answer). A node registered with
``register_pytree_with_keys`` compares its class as well. Unflattening bypasses ``__init__``
(leaves may be tracers or placeholders), as jax's own dataclass nodes do.
"""
import dataclasses

import jax
from jax.tree_util import GetAttrKey


def pytree_dataclass(cls):
    """Register the dataclass `cls` (decorator): static fields are aux data, the rest leaves."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"pytree_dataclass needs a dataclass, got {cls!r}")
    fields = dataclasses.fields(cls)
    data = tuple(f.name for f in fields if not f.metadata.get("static", False))
    meta = tuple(f.name for f in fields if f.metadata.get("static", False))

    def flatten_with_keys(obj):
        return ([(GetAttrKey(n), getattr(obj, n)) for n in data],
                tuple(getattr(obj, n) for n in meta))

    def flatten(obj):
        return [getattr(obj, n) for n in data], tuple(getattr(obj, n) for n in meta)

    def unflatten(aux, children):
        obj = object.__new__(cls)
        for name, value in zip(data, children):
            object.__setattr__(obj, name, value)
        for name, value in zip(meta, aux):
            object.__setattr__(obj, name, value)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls
