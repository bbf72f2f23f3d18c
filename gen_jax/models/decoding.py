"""KV-cached autoregressive generation (batched, ragged prompts, jit-compiled).

The prompt is run once through the model to fill an explicit KV cache (prefill); then one token
per step in a `lax.scan`: sample from the last logits with temperature / top-k / top-p
(`gen_jax.core.categorical.sample_categorical`), write it, run the model on that single token at
its position, update the cache. Shapes are static: the cache holds P + max_new_tokens slots.

Ragged prompts: right-pad prompts to a common length P and pass `prompt_lengths` (B,). Row b's
first new token is sampled from the logits at position prompt_lengths[b] - 1 and written at
position prompt_lengths[b]; the padded prompt slots are overwritten as decoding proceeds and are
never attended to before that (a query at position p sees cache slots <= p only).
"""
import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gen_jax.core.categorical import sample_categorical
from gen_jax.core.results import SampleResult
from gen_jax.models.validation import check_token_shape


def _check_args(model, prompt, max_new_tokens, prompt_lengths, eos_id, pad_id, temperature):
    check_token_shape(prompt, name="prompt")
    if not isinstance(temperature, jax.core.Tracer):
        if not np.all(np.asarray(temperature) >= 0):
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if prompt.shape[1] < 1:
        raise ValueError("prompt must hold at least one token (e.g. the BOS id)")
    if not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a python int >= 1, got {max_new_tokens!r}")
    total = prompt.shape[1] + max_new_tokens
    if total > model.config.max_len:
        raise ValueError(f"prompt length {prompt.shape[1]} + max_new_tokens {max_new_tokens} = "
                         f"{total} exceeds the model's max_len {model.config.max_len}")
    if prompt_lengths is not None:
        if jnp.shape(prompt_lengths) != (prompt.shape[0],):
            raise ValueError(f"prompt_lengths must have shape ({prompt.shape[0]},), "
                             f"got {jnp.shape(prompt_lengths)}")
        if not jnp.issubdtype(jnp.asarray(prompt_lengths).dtype, jnp.integer):
            raise ValueError("prompt_lengths must be an integer array")
    for name, value in (("eos_id", eos_id), ("pad_id", pad_id)):
        if value is not None and not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must be None or a python int, got {value!r}")


def generate(model, key, prompt, max_new_tokens, *, temperature=1.0, top_k=None, top_p=None,
             eos_id=None, pad_id=None, prompt_lengths=None, label=None, return_logits=False):
    """Sample continuations of `prompt` from an `ARTransformer` with a KV cache.

    Args:
        model: ARTransformer (causal).
        key: jax.random key; step s uses fold_in(key, s).
        prompt: (B, P) int ids (for unconditional sampling: a column of model.bos_id).
        max_new_tokens: N, python int; P + N <= max_len.
        temperature, top_k, top_p: as in `gen_jax.core.categorical.truncate_logits`
            (temperature and top_p may be traced; top_k is static). temperature 0 is greedy
            (argmax), as is top_k=1; a negative concrete temperature is a ValueError.
        eos_id: once a row emits it, the row emits pad_id afterwards.
        pad_id: filler after eos and beyond each ragged row's end; default eos_id, else 0.
        prompt_lengths: (B,) int true prompt lengths (1..P) for right-padded ragged prompts.
        label: (B,) int class labels for a class-conditional model.
        return_logits: also return the (B, N, V) float32 logits each new token was sampled from
            (before truncation).
    Returns:
        SampleResult(samples, nfe = N model calls: the prefill and N - 1 single-token steps),
        samples (B, P + N) int32: row b holds its prompt in [0, len_b), new tokens in
        [len_b, len_b + N) and pad_id after that; ``(SampleResult, logits)`` if return_logits.
    """
    _check_args(model, prompt, max_new_tokens, prompt_lengths, eos_id, pad_id, temperature)
    if pad_id is None:
        pad_id = eos_id if eos_id is not None else 0
    if prompt_lengths is None:
        prompt_lengths = jnp.full((prompt.shape[0],), prompt.shape[1], jnp.int32)
    graphdef, state = nnx.split(model)
    tokens, logits = _generate(graphdef, state, key, prompt.astype(jnp.int32),
                               jnp.asarray(prompt_lengths, jnp.int32), label, temperature, top_p,
                               max_new_tokens=max_new_tokens, top_k=top_k, eos_id=eos_id,
                               pad_id=pad_id, return_logits=return_logits)
    result = SampleResult(tokens, max_new_tokens)
    return (result, logits) if return_logits else result


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=(
    "max_new_tokens", "top_k", "eos_id", "pad_id", "return_logits"))
def _generate(graphdef, state, key, prompt, lengths, label, temperature, top_p, *,
              max_new_tokens, top_k, eos_id, pad_id, return_logits):
    model = nnx.merge(graphdef, state)
    batch, prompt_len = prompt.shape
    total = prompt_len + max_new_tokens
    rows = jnp.arange(batch)

    cache = model.init_cache(batch, total)
    positions = jnp.broadcast_to(jnp.arange(prompt_len), (batch, prompt_len))
    logits, cache = model.decode(prompt, cache, positions, label=label)
    last = logits[rows, lengths - 1]  # (B, V)
    slots = jnp.arange(total)
    padded = jnp.pad(prompt, ((0, 0), (0, max_new_tokens)))
    out = jnp.where(slots[None, :] < lengths[:, None], padded, pad_id)
    done = jnp.zeros((batch,), bool)

    def sample(step, last, out, done):
        tok = sample_categorical(jax.random.fold_in(key, step), last, temperature, top_k, top_p)
        tok = jnp.where(done, pad_id, tok)
        out = out.at[rows, lengths + step].set(tok)
        if eos_id is not None:
            done = done | (tok == eos_id)
        return tok, out, done

    def step_fn(carry, step):
        cache, last, out, done = carry
        tok, out, done = sample(step, last, out, done)
        logits, cache = model.decode(tok[:, None], cache, (lengths + step)[:, None], label=label)
        return (cache, logits[:, 0], out, done), (last if return_logits else None)

    (cache, last, out, done), seen = jax.lax.scan(
        step_fn, (cache, last, out, done), jnp.arange(max_new_tokens - 1))
    _, out, _ = sample(max_new_tokens - 1, last, out, done)
    if not return_logits:
        return out, None
    return out, jnp.concatenate([jnp.moveaxis(seen, 0, 1), last[:, None]], axis=1)
