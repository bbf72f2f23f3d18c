"""Result types shared by the likelihoods and samplers.

Rule for every likelihood in ``gen_jax.core``: ``nll`` is (B,) **nats** per example of the
quantity the function bounds or computes (for ``pf_ode_bits_per_dim``: the bound on -log P of
the discrete data, so nll / (D ln 2) is its bits/dim); ``terms`` maps names to per-example (B,)
(or (B, N)) arrays: the parts of the bound, the times drawn, and diagnostics such as ``nfe`` and
``solver_ok``. Examples that failed (invalid traced input, a failed solve) have nll = NaN.
A LikelihoodResult unpacks as ``nll, terms = result``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax


class LikelihoodResult(NamedTuple):
    nll: jax.Array  # (B,) nats
    terms: dict  # name -> (B,) arrays


class SampleResult(NamedTuple):
    samples: jax.Array
    nfe: jax.Array | int


__all__ = ["LikelihoodResult", "SampleResult"]
