"""Transformer for masked (absorbing-state) discrete diffusion (MDLM, Sahoo et al. 2024; MD4,
Shi et al. 2024).

(tokens (B, L) int in {0..V}, V = mask id; t (B,) or None) -> logits (B, L, V) float32 over the
real tokens (never the mask). Bidirectional. Time conditioning is optional: MDLM shows the
network does not need t (the number of masks carries it); with config.time_conditioning=False a
given t is ignored, so losses and samplers can always pass it.
"""
import jax.numpy as jnp
from flax import nnx

from gen_jax.core.checks import ids_in_range, nan_where_invalid
from gen_jax.models.matmul import Linear
from gen_jax.models.transformer import Transformer, TransformerConfig
from gen_jax.models.validation import check_token_shape


class MaskedTransformer(nnx.Module):
    """Bidirectional token denoiser; input vocab V + 1 (mask_id = V), output vocab V."""

    prediction = "logits"

    def __init__(self, config: TransformerConfig, vocab_size: int, *, rngs: nnx.Rngs):
        if config.causal:
            raise ValueError("MaskedTransformer needs a bidirectional backbone (causal=False)")
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.mask_id = vocab_size
        self.token_embed = nnx.Embed(vocab_size + 1, config.d_model, dtype=config.dtype,
                                     param_dtype=config.param_dtype, rngs=rngs)
        self.backbone = Transformer(config, rngs=rngs)
        self.head = Linear(config.d_model, vocab_size, dtype=config.dtype,
                           param_dtype=config.param_dtype, rngs=rngs)

    def __call__(self, tokens, t=None, label=None):
        """tokens (B, L) int (mask_id = vocab_size), t (B,)/scalar/None -> logits (B, L, V) f32.

        Concrete ids outside {0..V} raise ValueError; traced ones give NaN logits for their example."""
        check_token_shape(tokens, self.config.max_len)
        valid = ids_in_range(tokens, self.vocab_size + 1, "tokens")
        if not self.config.time_conditioning:
            t = None
        h = self.backbone(self.token_embed(tokens), t=t, label=label)
        return nan_where_invalid(self.head(h).astype(jnp.float32), valid)
