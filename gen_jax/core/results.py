"""Result types shared by every sampler and likelihood: one structure per kind of result."""
from typing import Any, NamedTuple


class SampleResult(NamedTuple):
    """samples: (B, ...) array; nfe: model calls per sample (python int or int array)."""
    samples: Any
    nfe: Any


class LikelihoodResult(NamedTuple):
    """nll: (B,) nats per example; terms: dict of named (B,) arrays (components, nfe, flags)."""
    nll: Any
    terms: dict
