"""Transformer for block diffusion (BD3-LM, Arriola et al. 2025): the shared backbone with
block-causal attention (bidirectional within a block of b tokens, causal across blocks).

Training (`__call__`) is BD3-LM's vectorised pass: the noisy sequence x_t and the clean x are
concatenated into one sequence of 2L tokens, both at positions 0..L-1, under
`block_diffusion_mask`: noisy block k sees noisy block k and clean blocks < k, clean tokens see
clean blocks <= their own. One pass gives p(x_i | x_t^k, x^{<k}) for every block (no loop over
blocks), at twice the tokens of a masked-diffusion pass.

Sampling (`denoise`) keeps the clean blocks in the backbone's KV cache: a chunk of whole blocks
attends to the cached blocks before it and bidirectionally within its own block.

Not time-conditioned: each block has its own noise level, and the absorbing posterior
p(x_0 | x_t) does not depend on t (the masks carry it; MDLM, Sahoo et al. 2024), so a per-block
time input would only add per-token conditioning the backbone does not have. Input vocabulary
V + 1 (mask_id = V), output V; parameters match `MaskedTransformer` exactly.
"""
import jax.numpy as jnp
from flax import nnx

from gen_jax.models.attention import block_diffusion_mask
from gen_jax.models.matmul import Linear
from gen_jax.models.transformer import Transformer, TransformerConfig
from gen_jax.models.validation import check_token_shape


class BlockDiffusionTransformer(nnx.Module):
    """Block-causal token denoiser; block size `config.attention_block_size`."""

    prediction = "logits"

    def __init__(self, config: TransformerConfig, vocab_size: int, *, rngs: nnx.Rngs):
        if config.attention_block_size is None:
            raise ValueError("BlockDiffusionTransformer needs a block-causal backbone "
                             "(config.attention_block_size)")
        if config.time_conditioning:
            raise ValueError("BlockDiffusionTransformer is not time-conditioned "
                             "(time_conditioning=False)")
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.config = config
        self.block_size = config.attention_block_size
        self.vocab_size = vocab_size
        self.mask_id = vocab_size
        self.token_embed = nnx.Embed(vocab_size + 1, config.d_model, dtype=config.dtype,
                                     param_dtype=config.param_dtype, rngs=rngs)
        self.backbone = Transformer(config, rngs=rngs)
        self.head = Linear(config.d_model, vocab_size, dtype=config.dtype,
                           param_dtype=config.param_dtype, rngs=rngs)

    def __call__(self, x_t, x):
        """x_t (B, L) noisy tokens (mask_id = V), x (B, L) clean -> logits (B, L, V) float32:
        logits[:, i], i in block k, is p(x_i | x_t^k, x^{<k})."""
        check_token_shape(x_t, self.config.max_len, name="x_t")
        check_token_shape(x, self.config.max_len, name="x")
        if x_t.shape != x.shape:
            raise ValueError(f"x_t and x must have one shape, got {x_t.shape} and {x.shape}")
        batch, length = x.shape
        positions = jnp.broadcast_to(jnp.tile(jnp.arange(length), 2), (batch, 2 * length))
        h = self.backbone(self.token_embed(jnp.concatenate([x_t, x], axis=1)),
                          positions=positions, mask=block_diffusion_mask(length, self.block_size))
        return self.head(h[:, :length]).astype(jnp.float32)

    def init_cache(self, batch, length):
        """Empty KV cache for `length` positions (tuple of per-layer KVCache)."""
        return self.backbone.init_cache(batch, length)

    def decode(self, tokens, cache, positions):
        """Cached pass of a chunk of whole blocks: tokens, positions (B, n) -> (logits (B, n, V)
        f32, cache with the chunk written)."""
        check_token_shape(tokens, self.config.max_len)
        h, cache = self.backbone.decode(self.token_embed(tokens), cache, positions)
        return self.head(h).astype(jnp.float32), cache

    def denoise(self, cache, tokens, k, commit=None):
        """`block_ancestral_sample`'s denoise_fn: block k's tokens (B, b) (commit: None or clean
        block k - 1, written to the cache in the same pass) -> (logits (B, b, V), cache)."""
        b = self.block_size
        start = k * b
        if commit is not None:
            tokens, start = jnp.concatenate([commit, tokens], axis=1), start - b
        positions = jnp.broadcast_to(start + jnp.arange(tokens.shape[1]), tokens.shape)
        logits, cache = self.decode(tokens, cache, positions)
        return logits[:, -b:], cache
