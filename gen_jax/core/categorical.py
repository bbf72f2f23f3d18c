"""Categorical sampling with temperature, top-k and nucleus (top-p) truncation.

Shared by autoregressive decoding and the masked-diffusion ancestral sampler. The vocabulary is
the last axis of ``logits``; any leading axes are batch axes.

Order of operations (the usual convention): divide by ``temperature``, keep the ``top_k`` largest
logits, then keep the nucleus of the renormalised top-k distribution (Holtzman et al. 2020,
"The Curious Case of Neural Text Degeneration"). Excluded entries become ``-inf``, so
``softmax(truncate_logits(...))`` is the truncated, renormalised distribution. Greedy decoding is
``temperature=0`` (the T -> 0 limit of softmax(logits / T): only the largest logits are kept,
ties drawn uniformly) or ``top_k=1``.
"""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp


def _check_truncation_args(logits, temperature, top_k, top_p):
    if jnp.ndim(logits) < 1:
        raise ValueError(f"logits must have a vocabulary axis, got shape {jnp.shape(logits)}")
    if isinstance(temperature, numbers.Real) and not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise ValueError(f"top_k must be None or a python int >= 1, got {top_k!r}")
    if isinstance(top_p, numbers.Real) and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def truncate_logits(logits, temperature=1.0, top_k=None, top_p=None):
    """Temperature-scaled logits with everything outside top-k / the top-p nucleus set to -inf.

    Args:
        logits: (..., V) unnormalised log-probabilities.
        temperature: >= 0; python float (validated) or a traced scalar (not validated). 0 is
            greedy: the largest logits become 0, every other entry -inf.
        top_k: None or a static python int >= 1 (values >= V keep everything). Entries tied with the
            k-th largest logit are all kept.
        top_p: None, or the nucleus mass in (0, 1] (python float, validated, or a traced scalar).
            Keeps the smallest set of most-probable tokens whose probability is >= top_p; the most
            probable token is always kept. Tokens tied with the least probable kept one are kept too.
    Returns:
        (..., V) float logits: ``logits / temperature`` on kept entries (0 when temperature is
        0), ``-inf`` elsewhere.
    """
    _check_truncation_args(logits, temperature, top_k, top_p)
    logits = jnp.asarray(logits)
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        logits = logits.astype(jnp.float32)
    neg_inf = jnp.asarray(-jnp.inf, logits.dtype)
    temperature = jnp.asarray(temperature, logits.dtype)
    greedy = temperature == 0
    scaled = logits / jnp.where(greedy, 1.0, temperature)
    argmax_only = jnp.where(logits < jnp.max(logits, axis=-1, keepdims=True), neg_inf, 0.0)
    logits = jnp.where(greedy, argmax_only, scaled)
    vocab = logits.shape[-1]
    if top_k is not None and top_k < vocab:
        kth_largest = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth_largest, neg_inf, logits)
    if top_p is not None and not (isinstance(top_p, numbers.Real) and top_p == 1.0):
        sorted_logits = -jnp.sort(-logits, axis=-1)  # descending
        sorted_probs = jax.nn.softmax(
            sorted_logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1)
        mass_before = jnp.cumsum(sorted_probs, axis=-1) - sorted_probs
        keep_sorted = mass_before < top_p
        keep_sorted = keep_sorted.at[..., 0].set(True)
        threshold = jnp.min(jnp.where(keep_sorted, sorted_logits, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < threshold, neg_inf, logits)
    return logits


def sample_categorical(key, logits, temperature=1.0, top_k=None, top_p=None):
    """Draw token ids from the truncated distribution ``softmax(truncate_logits(...))``.

    Args:
        key: a ``jax.random`` key.
        logits: (..., V) unnormalised log-probabilities.
        temperature, top_k, top_p: see ``truncate_logits``; ``temperature=0`` is greedy decoding
            (ties drawn uniformly), as is ``top_k=1``.
    Returns:
        (...) int32 token ids in [0, V).
    """
    truncated = truncate_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    return jax.random.categorical(key, truncated, axis=-1).astype(jnp.int32)
