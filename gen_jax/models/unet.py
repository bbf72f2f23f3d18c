"""A small conventional U-Net for Gaussian diffusion (DDPM, Ho et al. 2020; improved-diffusion,
Nichol & Dhariwal 2021), NHWC.

(x (B, H, W, C) float, t (B,), label (B,) or None) -> prediction like x (float32).
Levels: len(channel_mults); each level has num_res_blocks ResBlocks (GroupNorm, SiLU, 3x3 conv,
time/label embedding added after the first conv); every level but the last ends with a stride-2
conv, so H and W must be divisible by 2^(levels - 1). 8x8 digits and 28x28 MNIST both work with
2 or 3 levels (28 -> 14 -> 7): no padding is needed. Self-attention (one head over all pixels)
runs at the levels listed in attention_levels and in the middle. Output conv is zero-initialised.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.models.embeddings import LabelEmbedding, TimeEmbedding
from gen_jax.models.gaussian import PREDICTIONS, check_image
from gen_jax.models.validation import check_label, check_time


class ResBlock(nnx.Module):
    """GN-SiLU-conv, + Dense(emb), GN-SiLU-conv(zero init), residual (1x1 conv if channels change)."""

    def __init__(self, in_ch, out_ch, emb_dim, groups, *, kw, rngs):
        self.norm1 = nnx.GroupNorm(in_ch, num_groups=groups, rngs=rngs, **kw)
        self.conv1 = nnx.Conv(in_ch, out_ch, (3, 3), rngs=rngs, **kw)
        self.emb = nnx.Linear(emb_dim, out_ch, rngs=rngs, **kw)
        self.norm2 = nnx.GroupNorm(out_ch, num_groups=groups, rngs=rngs, **kw)
        self.conv2 = nnx.Conv(out_ch, out_ch, (3, 3), kernel_init=nnx.initializers.zeros_init(),
                              rngs=rngs, **kw)
        self.skip = nnx.Conv(in_ch, out_ch, (1, 1), rngs=rngs, **kw) if in_ch != out_ch else None

    def __call__(self, x, emb):
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.emb(jax.nn.silu(emb))[:, None, None, :]
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class AttentionBlock(nnx.Module):
    """Single-head self-attention over the H*W pixels, residual; output projection zero-init."""

    def __init__(self, ch, groups, *, kw, rngs):
        self.norm = nnx.GroupNorm(ch, num_groups=groups, rngs=rngs, **kw)
        self.qkv = nnx.Linear(ch, 3 * ch, rngs=rngs, **kw)
        self.out = nnx.Linear(ch, ch, kernel_init=nnx.initializers.zeros_init(), rngs=rngs, **kw)

    def __call__(self, x):
        b, h, w, c = x.shape
        q, k, v = jnp.split(self.qkv(self.norm(x)).reshape(b, h * w, 1, 3 * c), 3, axis=-1)
        y = jax.nn.dot_product_attention(q, k, v).reshape(b, h, w, c)
        return x + self.out(y)


class UNet(nnx.Module):
    """U-Net denoiser; `prediction` ('eps'|'v'|'x0'|'score') is recorded for the core Denoiser."""

    def __init__(self, image_shape, *, base_channels=32, channel_mults=(1, 2), num_res_blocks=1,
                 attention_levels=(1,), num_groups=8, num_classes=None, time_scale=1000.0,
                 prediction="eps", dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {image_shape}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        h, w, c = image_shape
        levels = len(channel_mults)
        if levels < 1 or num_res_blocks < 1:
            raise ValueError("channel_mults must be non-empty and num_res_blocks >= 1")
        factor = 2 ** (levels - 1)
        if h % factor or w % factor:
            raise ValueError(f"image size {h}x{w} is not divisible by 2^(levels-1) = {factor} "
                             f"for channel_mults {channel_mults}")
        chans = [base_channels * m for m in channel_mults]
        if any(ch % num_groups for ch in chans):
            raise ValueError(f"num_groups {num_groups} must divide every level's channels {chans}")
        if any(not 0 <= lvl < levels for lvl in attention_levels):
            raise ValueError(f"attention_levels {attention_levels} must lie in [0, {levels})")
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        self.image_shape = tuple(image_shape)
        self.prediction = prediction
        self.num_classes = num_classes
        self.dtype = dtype
        emb_dim = 4 * base_channels
        self.time_embed = TimeEmbedding(emb_dim, time_scale=time_scale, rngs=rngs, **kw)
        self.label_embed = (LabelEmbedding(num_classes, emb_dim, rngs=rngs, **kw)
                            if num_classes is not None else None)
        self.conv_in = nnx.Conv(c, chans[0], (3, 3), rngs=rngs, **kw)

        down, skip_chans, ch = [], [chans[0]], chans[0]
        for lvl, out_ch in enumerate(chans):
            for _ in range(num_res_blocks):
                down.append(ResBlock(ch, out_ch, emb_dim, num_groups, kw=kw, rngs=rngs))
                ch = out_ch
                if lvl in attention_levels:
                    down.append(AttentionBlock(ch, num_groups, kw=kw, rngs=rngs))
                down.append("skip")
            if lvl != levels - 1:
                down.append(nnx.Conv(ch, ch, (3, 3), strides=(2, 2), rngs=rngs, **kw))
                down.append("skip")
            skip_chans += [ch] * (num_res_blocks + (lvl != levels - 1))
        self.mid = nnx.List([ResBlock(ch, ch, emb_dim, num_groups, kw=kw, rngs=rngs),
                             AttentionBlock(ch, num_groups, kw=kw, rngs=rngs),
                             ResBlock(ch, ch, emb_dim, num_groups, kw=kw, rngs=rngs)])
        up = []
        for lvl in reversed(range(levels)):
            for _ in range(num_res_blocks + 1):
                up.append(ResBlock(ch + skip_chans.pop(), chans[lvl], emb_dim, num_groups, kw=kw,
                                   rngs=rngs))
                ch = chans[lvl]
                if lvl in attention_levels:
                    up.append(AttentionBlock(ch, num_groups, kw=kw, rngs=rngs))
            if lvl != 0:
                up.append(nnx.Conv(ch, ch, (3, 3), rngs=rngs, **kw))  # after 2x nearest upsample
        # "skip" markers are plain strings: where to push an activation for the decoder.
        self.down_layout = tuple(isinstance(m, str) for m in down)
        self.down = nnx.List([m for m in down if not isinstance(m, str)])
        self.up = nnx.List(up)
        self.norm_out = nnx.GroupNorm(ch, num_groups=num_groups, rngs=rngs, **kw)
        self.conv_out = nnx.Conv(ch, c, (3, 3), kernel_init=nnx.initializers.zeros_init(),
                                 rngs=rngs, **kw)

    def __call__(self, x, t, label=None):
        """x (B, H, W, C), t (B,) or scalar, label (B,) int or None -> (B, H, W, C) float32."""
        check_image(x, self.image_shape)
        b = x.shape[0]
        check_time(t, b)
        check_label(label, b, self.num_classes)
        emb = self.time_embed(jnp.broadcast_to(jnp.asarray(t, jnp.float32), (b,)))
        if self.label_embed is not None:
            if label is None:
                label = jnp.full((b,), self.label_embed.null_id, jnp.int32)
            emb = emb + self.label_embed(label)

        h = self.conv_in(x.astype(self.dtype))
        skips, modules = [h], iter(self.down)
        for is_skip in self.down_layout:
            if is_skip:
                skips.append(h)
                continue
            h = self._apply(next(modules), h, emb)
        for module in self.mid:
            h = self._apply(module, h, emb)
        for module in self.up:
            if isinstance(module, ResBlock):
                h = module(jnp.concatenate([h, skips.pop()], axis=-1), emb)
            elif isinstance(module, AttentionBlock):
                h = module(h)
            else:
                h = module(jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2))
        return self.conv_out(jax.nn.silu(self.norm_out(h))).astype(jnp.float32)

    @staticmethod
    def _apply(module, h, emb):
        return module(h, emb) if isinstance(module, ResBlock) else module(h)
