"""Flax NNX models: one transformer backbone and the AR, Gaussian-diffusion and masked models
built on it, a small U-Net, KV-cached AR decoding, and a pure-function view for the core.
(Models by family name: `gen_jax.families.build_model`.)"""
from gen_jax.models.ar import ARTransformer, ar_inputs
from gen_jax.models.decoding import generate
from gen_jax.models.factory import ModelView, count_params, functional
from gen_jax.models.gaussian import DiffusionTransformer, patchify, unpatchify
from gen_jax.models.masked import MaskedTransformer
from gen_jax.models.transformer import KVCache, Transformer, TransformerConfig
from gen_jax.models.unet import UNet
from gen_jax.models.validation import check_tokens

__all__ = [
    "ARTransformer", "ModelView", "DiffusionTransformer", "KVCache", "MaskedTransformer", "Transformer",
    "TransformerConfig", "UNet", "ar_inputs", "check_tokens", "count_params",
    "functional", "generate", "patchify", "unpatchify",
]
