"""The registry of model families: names -> `Family` instances.

Built-in families register themselves when `gen_jax.families` is imported; a new family is one
module that defines a `Family` subclass and calls `register(MyFamily())`.
"""
from __future__ import annotations

from gen_jax.families.base import Family

_FAMILIES: dict[str, Family] = {}


def register(family: Family, *, replace: bool = False) -> Family:
    """Add `family` under `family.name`; ValueError if the name is taken (unless `replace`)."""
    if not isinstance(family, Family):
        raise ValueError(f"register takes a Family instance, got {type(family).__name__}")
    if not family.name or not family.name.isidentifier():
        raise ValueError(f"a family needs a name that is a python identifier (it names its config "
                         f"section), got {family.name!r}")
    if family.name in _FAMILIES and not replace:
        raise ValueError(f"a family named {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a registered family (tests that register a temporary one)."""
    if name not in _FAMILIES:
        raise ValueError(f"no family named {name!r} is registered; known: {names()}")
    del _FAMILIES[name]


def get(name: str) -> Family:
    """The family registered as `name`; ValueError listing the known names otherwise."""
    if name not in _FAMILIES:
        raise ValueError(f"unknown family {name!r}; registered families: {names()}")
    return _FAMILIES[name]


def names() -> tuple[str, ...]:
    """Registered family names, in registration order."""
    return tuple(_FAMILIES)
