"""The one transformer backbone shared by the AR, Gaussian-diffusion and masked models.

Maps embeddings (B, L, d_model) -> features (B, L, d_model). Pre-norm blocks (attention, then
MLP), attention through `gen_jax.models.attention` (cached decoding through
`jax.nn.dot_product_attention`), causal, bidirectional or block-causal
(`attention_block_size`), or any boolean (L, L) `mask` given to the call; RoPE or learned
absolute positions.
Linear layers are `gen_jax.models.matmul.Linear` (nnx.Linear with CPU-friendly gradients).
With `time_conditioning` and/or `num_classes` the blocks are conditioned adaLN-zero style (DiT,
Peebles & Xie 2023): a conditioning vector c (B, d_model) — embedded time plus embedded label —
produces a per-block shift, scale and gate for each sublayer, from a zero-initialised linear
layer, so every block starts as the identity.

KV-cached decoding (causal and block-causal models): `init_cache` returns an explicit cache
pytree (one `KVCache` per layer) and `decode` consumes and returns it; nothing is stored on the
module.
"""
import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gen_jax.models.attention import attention, block_causal_mask
from gen_jax.models.embeddings import LabelEmbedding, TimeEmbedding
from gen_jax.models.matmul import Linear
from gen_jax.models.positional import apply_rope
from gen_jax.models.validation import check_label, check_time

POSITIONALS = ("rope", "learned", "rope+learned")
COMPUTE_DTYPES = ("float32", "bfloat16")  # names of the compute dtypes training configs take
ATTENTION_IMPLEMENTATIONS = (None, "xla", "cudnn")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Backbone hyper-parameters.

    mlp: 'gelu' (d -> mlp_ratio*d -> d) or 'swiglu' (hidden 2/3 * mlp_ratio * d, rounded up to
    a multiple of 8, so the parameter count matches 'gelu'). positional: 'rope' (relative, in attention), 'learned' (absolute table
    added to the input) or 'rope+learned' (both: bidirectional denoisers need absolute positions
    when their input is all noise or masks, and learn neighbour lookups much faster with RoPE).
    time_scale multiplies t before the Fourier features (1000 for t in [0, 1]; 1 for log-SNR).
    dtype is the compute dtype (e.g. jnp.bfloat16); parameters are kept in param_dtype.
    remat: recompute each block's activations in the backward pass (activation checkpointing,
    `nnx.remat`; uncached calls): less memory, same gradients, one more forward per block.
    attention_implementation: None / 'xla' (portable) or 'cudnn' (cuDNN flash attention: NVIDIA
    GPUs only, bf16/fp16 compute; choose it on GPU only, as benchmarks/accelerator.py does).
    attention_block_size: None, or b for block-causal attention (BD3-LM, Arriola et al. 2025):
    position i attends to j iff j // b <= i // b (needs causal=False; b = 1 is causal attention).
    """
    num_layers: int = 4
    num_heads: int = 4
    d_model: int = 256
    mlp_ratio: float = 4.0
    mlp: str = "gelu"
    positional: str = "rope"
    max_len: int = 1024
    causal: bool = True
    time_conditioning: bool = False
    num_classes: Optional[int] = None
    dropout: float = 0.0
    time_scale: float = 1000.0
    attention_block_size: Optional[int] = None
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    remat: bool = False
    attention_implementation: Optional[str] = None

    def __post_init__(self):
        for name in ("num_layers", "num_heads", "d_model", "max_len"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}")
        if self.positional not in POSITIONALS:
            raise ValueError(f"positional must be one of {POSITIONALS}, got {self.positional!r}")
        if "rope" in self.positional and (self.d_model // self.num_heads) % 2:
            raise ValueError(f"RoPE needs an even head dim, got {self.d_model // self.num_heads}")
        if self.mlp not in ("gelu", "swiglu"):
            raise ValueError(f"mlp must be 'gelu' or 'swiglu', got {self.mlp!r}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.attention_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(f"attention_implementation must be one of "
                             f"{ATTENTION_IMPLEMENTATIONS}, got {self.attention_implementation!r}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be None or >= 1, got {self.num_classes}")
        b = self.attention_block_size
        if b is not None:
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
                raise ValueError(f"attention_block_size must be None or an integer >= 1, got {b!r}")
            if self.causal:
                raise ValueError("attention_block_size gives block-causal attention: "
                                 "set causal=False")

    @property
    def conditioned(self):
        """True when blocks carry adaLN-zero modulation (time and/or label conditioning)."""
        return self.time_conditioning or self.num_classes is not None

    @property
    def head_dim(self):
        return self.d_model // self.num_heads


class KVCache(NamedTuple):
    """Keys and values of one attention layer, each (B, S, heads, head_dim) in compute dtype."""
    k: jax.Array
    v: jax.Array


def _dense(cfg, n_in, n_out, rngs, zero=False, use_bias=True):
    init = dict(kernel_init=nnx.initializers.zeros_init()) if zero else {}
    return Linear(n_in, n_out, use_bias=use_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                  rngs=rngs, **init)


def _norm(cfg, affine, rngs):
    return nnx.LayerNorm(cfg.d_model, use_scale=affine, use_bias=affine, dtype=cfg.dtype,
                         param_dtype=cfg.param_dtype, rngs=rngs)


class SelfAttention(nnx.Module):
    """Multi-head self-attention; causal, bidirectional, block-causal or masked; optional RoPE;
    optional KV cache."""

    def __init__(self, cfg, *, rngs):
        self.cfg = cfg
        self.qkv = _dense(cfg, cfg.d_model, 3 * cfg.d_model, rngs)
        self.out = _dense(cfg, cfg.d_model, cfg.d_model, rngs)

    def __call__(self, x, positions, cache=None, mask=None):
        """x (B, L, d), positions (B, L) int -> ((B, L, d), updated cache or None).

        Without a cache, `mask` (L, L) bool (True: may attend) replaces the config's attention
        pattern. With a cache (length S), this call's keys/values are written at positions[:, 0]
        .. positions[:, 0] + L - 1 of each row, and a query at position p attends to cache slots
        0..p (causal), or to the slots of blocks <= p // attention_block_size (block-causal).
        Rows may sit at different positions (ragged prompts).
        """
        cfg = self.cfg
        b, length, _ = x.shape
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        shape = (b, length, cfg.num_heads, cfg.head_dim)
        q, k, v = q.reshape(shape), k.reshape(shape), v.reshape(shape)
        if "rope" in cfg.positional:
            q, k = apply_rope(q, positions), apply_rope(k, positions)
        if cache is None:
            if mask is None and cfg.attention_block_size is not None:
                mask = block_causal_mask(length, cfg.attention_block_size)
            y = attention(q, k, v, causal=cfg.causal and mask is None, mask=mask,
                          implementation=cfg.attention_implementation)
        else:
            if mask is not None:
                raise ValueError("a mask applies to uncached calls only")
            write = jax.vmap(lambda buf, new, start: jax.lax.dynamic_update_slice(
                buf, new.astype(buf.dtype), (start, 0, 0)))
            cache = KVCache(write(cache.k, k, positions[:, 0]), write(cache.v, v, positions[:, 0]))
            slots = jnp.arange(cache.k.shape[1])
            if cfg.attention_block_size is None:
                visible = slots[None, None, :] <= positions[:, :, None]  # (B, L, S)
            else:
                size = cfg.attention_block_size
                visible = slots[None, None, :] // size <= positions[:, :, None] // size
            y = jax.nn.dot_product_attention(q, cache.k.astype(q.dtype), cache.v.astype(q.dtype),
                                             mask=visible[:, None])
        return self.out(y.reshape(b, length, cfg.d_model)), cache


class MLP(nnx.Module):
    """Position-wise feed-forward: GELU (d -> r d -> d) or SwiGLU (Shazeer 2020)."""

    def __init__(self, cfg, *, rngs):
        self.kind = cfg.mlp
        if cfg.mlp == "gelu":
            hidden = int(round(cfg.mlp_ratio * cfg.d_model))
            self.dense_in = _dense(cfg, cfg.d_model, hidden, rngs)
        else:
            hidden = -(-int(round(2 * cfg.mlp_ratio * cfg.d_model / 3)) // 8) * 8
            self.dense_in = _dense(cfg, cfg.d_model, 2 * hidden, rngs)
        self.dense_out = _dense(cfg, hidden, cfg.d_model, rngs)

    def __call__(self, x):
        h = self.dense_in(x)
        if self.kind == "gelu":
            h = jax.nn.gelu(h)
        else:
            gate, up = jnp.split(h, 2, axis=-1)
            h = jax.nn.silu(gate) * up
        return self.dense_out(h)


class Block(nnx.Module):
    """Pre-norm transformer block; adaLN-zero modulated when the config is conditioned."""

    def __init__(self, cfg, *, rngs):
        self.conditioned = cfg.conditioned
        self.norm_attn = _norm(cfg, not cfg.conditioned, rngs)
        self.attn = SelfAttention(cfg, rngs=rngs)
        self.norm_mlp = _norm(cfg, not cfg.conditioned, rngs)
        self.mlp = MLP(cfg, rngs=rngs)
        self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs) if cfg.dropout > 0 else None
        if cfg.conditioned:
            self.modulation = _dense(cfg, cfg.d_model, 6 * cfg.d_model, rngs, zero=True)

    def _drop(self, x):
        return x if self.dropout is None else self.dropout(x)

    def __call__(self, x, cond, positions, cache=None, mask=None):
        """x (B, L, d), cond (B, d) or None, positions (B, L), mask (L, L) bool or None ->
        ((B, L, d), cache)."""
        if self.conditioned:
            mods = self.modulation(jax.nn.silu(cond))[:, None, :]
            shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = jnp.split(mods, 6, axis=-1)
            h, cache = self.attn(self.norm_attn(x) * (1 + scale_a) + shift_a, positions, cache,
                                 mask)
            x = x + gate_a * self._drop(h)
            x = x + gate_m * self._drop(self.mlp(self.norm_mlp(x) * (1 + scale_m) + shift_m))
        else:
            h, cache = self.attn(self.norm_attn(x), positions, cache, mask)
            x = x + self._drop(h)
            x = x + self._drop(self.mlp(self.norm_mlp(x)))
        return x, cache


@nnx.remat
def _checkpointed_block(block, h, cond, positions, mask):
    """`block` without a cache, its activations recomputed in the backward pass."""
    return block(h, cond, positions, None, mask)


class Transformer(nnx.Module):
    """Backbone: embeddings (B, L, d_model) -> features (B, L, d_model), final norm applied.

    Owns the position table ('learned'), the time embedding (time_conditioning) and the label
    embedding (num_classes, with null id num_classes). Family models add token/patch embeddings
    and output heads around it.
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        cfg = config
        self.config = cfg
        if "learned" in cfg.positional:
            # With RoPE beside it the table starts at zero: the model starts as pure RoPE and
            # learns only the absolute part it needs.
            init = ({"embedding_init": nnx.initializers.zeros_init()}
                    if "rope" in cfg.positional else {})
            self.position_embed = nnx.Embed(cfg.max_len, cfg.d_model, dtype=cfg.dtype,
                                            param_dtype=cfg.param_dtype, rngs=rngs, **init)
        if cfg.time_conditioning:
            self.time_embed = TimeEmbedding(cfg.d_model, time_scale=cfg.time_scale,
                                            dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs)
        if cfg.num_classes is not None:
            self.label_embed = LabelEmbedding(cfg.num_classes, cfg.d_model, dtype=cfg.dtype,
                                              param_dtype=cfg.param_dtype, rngs=rngs)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.final_norm = _norm(cfg, not cfg.conditioned, rngs)
        if cfg.conditioned:
            self.final_modulation = _dense(cfg, cfg.d_model, 2 * cfg.d_model, rngs, zero=True)

    def condition(self, batch, t=None, label=None):
        """Conditioning vector (B, d_model) from t (B,) / scalar and label (B,), or None.

        A conditioned model called with label=None uses the null label (unconditional).
        """
        cfg = self.config
        if t is not None and not cfg.time_conditioning:
            raise ValueError("t given but the backbone was built with time_conditioning=False")
        check_label(label, batch, cfg.num_classes)
        if not cfg.conditioned:
            return None
        cond = 0.0
        if cfg.time_conditioning:
            if t is None:
                raise ValueError("this backbone is time-conditioned: pass t of shape (batch,)")
            check_time(t, batch)
            cond = self.time_embed(jnp.broadcast_to(jnp.asarray(t, jnp.float32), (batch,)))
        if cfg.num_classes is not None:
            if label is None:
                label = jnp.full((batch,), self.label_embed.null_id, jnp.int32)
            cond = cond + self.label_embed(label)
        return cond

    def _check(self, h, positions):
        cfg = self.config
        if h.ndim != 3 or h.shape[-1] != cfg.d_model:
            raise ValueError(f"backbone input must have shape (batch, length, {cfg.d_model}), "
                             f"got {h.shape}")
        if positions is None and h.shape[1] > cfg.max_len:
            raise ValueError(f"sequence length {h.shape[1]} exceeds max_len {cfg.max_len}")
        if positions is not None and positions.shape != h.shape[:2]:
            raise ValueError(f"positions must have shape {h.shape[:2]}, got {positions.shape}")

    def _run(self, h, cond, positions, caches, mask=None):
        cfg = self.config
        if "learned" in cfg.positional:
            h = h + self.position_embed(positions)
        h = h.astype(cfg.dtype)
        new_caches = []
        for i, block in enumerate(self.blocks):
            if cfg.remat and caches is None:
                h, cache = _checkpointed_block(block, h, cond, positions, mask)
            else:
                h, cache = block(h, cond, positions, None if caches is None else caches[i], mask)
            new_caches.append(cache)
        h = self.final_norm(h)
        if cfg.conditioned:
            shift, scale = jnp.split(self.final_modulation(jax.nn.silu(cond))[:, None, :], 2, -1)
            h = h * (1 + scale) + shift
        return h, (None if caches is None else tuple(new_caches))

    def __call__(self, h, *, t=None, label=None, positions=None, mask=None):
        """h (B, L, d_model) -> (B, L, d_model).

        positions (B, L) int, default 0..L-1 (L <= max_len); explicit positions must lie in
        [0, max_len) (the sequence may be longer, e.g. two views of one sequence). mask: None
        (the config's causal / bidirectional / block-causal attention) or a boolean (L, L) array,
        True where query i may attend to key j.
        """
        self._check(h, positions)
        b, length, _ = h.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(length), (b, length))
        return self._run(h, self.condition(b, t, label), positions, None, mask)[0]

    def init_cache(self, batch, length):
        """Empty KV cache for `length` positions: tuple of num_layers KVCache (causal and
        block-causal models)."""
        cfg = self.config
        if not cfg.causal and cfg.attention_block_size is None:
            raise ValueError("KV caching needs a causal or block-causal backbone (causal=True or "
                             "attention_block_size)")
        if length > cfg.max_len:
            raise ValueError(f"cache length {length} exceeds max_len {cfg.max_len}")
        shape = (batch, length, cfg.num_heads, cfg.head_dim)
        return tuple(KVCache(jnp.zeros(shape, cfg.dtype), jnp.zeros(shape, cfg.dtype))
                     for _ in range(cfg.num_layers))

    def decode(self, h, cache, positions, *, t=None, label=None):
        """Cached step: h (B, L, d) at positions (B, L) (consecutive per row) -> (features, cache).

        Writes this chunk's keys/values into `cache` and attends to cache slots <= position;
        slots beyond a row's position are ignored, so stale entries never leak. Block-causal:
        attends to the slots of blocks <= its own, so a chunk must cover whole blocks (every slot
        of its blocks is written by this call).
        """
        self._check(h, positions)
        if positions is None:
            raise ValueError("decode needs explicit positions of shape (batch, length)")
        if len(cache) != self.config.num_layers:
            raise ValueError(f"cache has {len(cache)} layers, model has {self.config.num_layers}")
        return self._run(h, self.condition(h.shape[0], t, label), positions, cache)
