"""Diffusion transformer for Gaussian diffusion over images (DiT; Peebles & Xie 2023).

(x (B, H, W, C) float, t (B,), label (B,) or None) -> prediction like x (float32). The image is
cut into non-overlapping p x p patches (p = 1: one token per pixel), each linearly embedded,
run through the shared bidirectional, time-conditioned backbone (adaLN-zero), and projected back
by a zero-initialised linear head (the model predicts 0 at initialisation).

`prediction` ('eps' | 'v' | 'x0' | 'score') is recorded as an attribute for the core
`Denoiser`; it does not change the network.
"""
import jax.numpy as jnp
from flax import nnx

from gen_jax.models.matmul import Linear
from gen_jax.models.transformer import Transformer, TransformerConfig

PREDICTIONS = ("eps", "v", "x0", "score")


def patchify(x, patch_size):
    """(B, H, W, C) -> (B, (H/p) (W/p), p p C), patches in raster order, pixels row-major inside."""
    b, h, w, c = x.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size {p}")
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens, patch_size, image_shape):
    """Inverse of `patchify`: (B, N, p p C) -> (B, H, W, C) for image_shape (H, W, C)."""
    h, w, c = image_shape
    p = patch_size
    b = tokens.shape[0]
    if tokens.shape[1:] != ((h // p) * (w // p), p * p * c):
        raise ValueError(f"tokens of shape {tokens.shape} do not tile an image of shape "
                         f"{image_shape} with patch_size {p}")
    x = tokens.reshape(b, h // p, w // p, p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def check_image(x, image_shape, name="x"):
    """Raise ValueError unless x is a float (B, H, W, C) array with (H, W, C) == image_shape."""
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (batch, height, width, channels), got {x.shape}")
    if tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(f"{name} has image shape {tuple(x.shape[1:])}, the model was built for "
                         f"{tuple(image_shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be a float array, got dtype {x.dtype}")


class DiffusionTransformer(nnx.Module):
    """DiT over pixels (patch_size=1) or patches; needs config.time_conditioning and causal=False."""

    def __init__(self, config: TransformerConfig, image_shape, *, patch_size=1, prediction="eps",
                 rngs: nnx.Rngs):
        if config.causal:
            raise ValueError("DiffusionTransformer needs a bidirectional backbone (causal=False)")
        if not config.time_conditioning:
            raise ValueError("DiffusionTransformer needs time_conditioning=True")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {image_shape}")
        h, w, c = image_shape
        if h % patch_size or w % patch_size:
            raise ValueError(f"image size {h}x{w} is not divisible by patch_size {patch_size}")
        num_patches = (h // patch_size) * (w // patch_size)
        if num_patches > config.max_len:
            raise ValueError(f"{num_patches} patches exceed the backbone's max_len {config.max_len}")
        self.config = config
        self.image_shape = tuple(image_shape)
        self.patch_size = patch_size
        self.prediction = prediction
        patch_dim = patch_size * patch_size * c
        self.patch_embed = Linear(patch_dim, config.d_model, dtype=config.dtype,
                                  param_dtype=config.param_dtype, rngs=rngs)
        self.backbone = Transformer(config, rngs=rngs)
        self.head = Linear(config.d_model, patch_dim, dtype=config.dtype,
                           param_dtype=config.param_dtype,
                               kernel_init=nnx.initializers.zeros_init(), rngs=rngs)

    def __call__(self, x, t, label=None):
        """x (B, H, W, C), t (B,) or scalar, label (B,) int or None -> (B, H, W, C) float32."""
        check_image(x, self.image_shape)
        h = self.patch_embed(patchify(x, self.patch_size))
        h = self.backbone(h, t=t, label=label)
        out = unpatchify(self.head(h), self.patch_size, self.image_shape)
        return out.astype(jnp.float32)
