"""Autoregressive transformer: tokens (B, L) int -> next-token logits (B, L, V).

Convention (position i predicts token i+1 of the *input*): build the input with `ar_inputs`,
which prepends a BOS id and drops the last token, so for data x (B, L)

    logits = model(ar_inputs(x, model.bos_id));   logits[:, i] = log p(x_i | x_<i) (unnormalised)

and p(x_0) is modelled too (an exact likelihood of every token, images included: K-level pixels
in raster order are tokens 0..K-1). The input vocabulary is V + 1 (BOS = V); the output
vocabulary is V. Class-conditional AR models use the backbone's label embedding (num_classes).
"""
import jax.numpy as jnp
from flax import nnx

from gen_jax.core.checks import ids_in_range, nan_where_invalid
from gen_jax.models.matmul import Linear
from gen_jax.models.transformer import Transformer, TransformerConfig
from gen_jax.models.validation import check_token_shape


def ar_inputs(tokens, bos_id):
    """Shift right with a BOS id: (B, L) -> (B, L) = [bos, x_0, ..., x_{L-2}]."""
    check_token_shape(tokens)
    bos = jnp.full((tokens.shape[0], 1), bos_id, tokens.dtype)
    return jnp.concatenate([bos, tokens[:, :-1]], axis=1)


class ARTransformer(nnx.Module):
    """Causal transformer LM. `vocab_size` V output classes; input ids in {0..V} (V = BOS)."""

    prediction = "logits"

    def __init__(self, config: TransformerConfig, vocab_size: int, *, rngs: nnx.Rngs):
        if not config.causal:
            raise ValueError("ARTransformer needs a causal backbone (causal=True)")
        if config.time_conditioning:
            raise ValueError("ARTransformer does not take time conditioning")
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.bos_id = vocab_size
        self.token_embed = nnx.Embed(vocab_size + 1, config.d_model, dtype=config.dtype,
                                     param_dtype=config.param_dtype, rngs=rngs)
        self.backbone = Transformer(config, rngs=rngs)
        self.head = Linear(config.d_model, vocab_size, dtype=config.dtype,
                           param_dtype=config.param_dtype, rngs=rngs)

    def __call__(self, tokens, label=None):
        """tokens (B, L) int in {0..V} -> logits (B, L, V) float32; logits[:, i] predict token i+1.

        Concrete ids outside {0..V} raise ValueError; traced ones give NaN logits for their example."""
        check_token_shape(tokens, self.config.max_len)
        valid = ids_in_range(tokens, self.vocab_size + 1, "tokens")
        h = self.backbone(self.token_embed(tokens), label=label)
        return nan_where_invalid(self.head(h).astype(jnp.float32), valid)

    def init_cache(self, batch, length):
        """Empty KV cache (tuple of per-layer KVCache) for sequences up to `length` tokens."""
        return self.backbone.init_cache(batch, length)

    def decode(self, tokens, cache, positions, label=None):
        """Cached forward of a chunk: tokens, positions (B, L) -> (logits (B, L, V) f32, cache).
        Token ids as in ``__call__``."""
        check_token_shape(tokens, self.config.max_len)
        valid = ids_in_range(tokens, self.vocab_size + 1, "tokens")
        h, cache = self.backbone.decode(self.token_embed(tokens), cache, positions, label=label)
        return nan_where_invalid(self.head(h).astype(jnp.float32), valid), cache
