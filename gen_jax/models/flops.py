"""Training FLOPs of a transformer step: an analytic count (the 6·N·D convention of Kaplan et al.
2020 plus attention) and XLA's own count of a compiled function.

Convention of `transformer_train_flops` (one multiply-add = 2 FLOPs, backward = 2x forward, so
training = 3x forward; embedding lookups, norms, softmax and the optimizer are not counted):
  N = matmul parameters = depth·(4·d² + 2·mlp_ratio·d²) (Q, K, V, output; MLP in and out) + d·V
      (output head), biases and embeddings excluded
  forward FLOPs per example = 2·N·L + depth·4·L²·d   (QKᵀ and AV over all L² pairs, causal or
      not: the code computes the full masked product)
  training FLOPs per step = 3 · batch · forward = 6·N·L·batch + 12·L²·d·depth·batch.
"""
from typing import Callable

import jax

from gen_jax.models.transformer import TransformerConfig


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer > 0, got {value!r}")
    return value


def matmul_params(config: TransformerConfig, vocab_size: int) -> int:
    """N of the convention: attention and MLP weight matrices of every layer, plus the head."""
    _positive("vocab_size", vocab_size)
    d = config.d_model
    hidden = int(round(config.mlp_ratio * d))
    return config.num_layers * (4 * d * d + 2 * d * hidden) + d * vocab_size


def transformer_train_flops(config: TransformerConfig, seq_len: int, batch_size: int,
                            vocab_size: int) -> int:
    """FLOPs of one training step (forward + backward) on `batch_size` sequences of `seq_len`
    tokens: 6·N·L·B + 12·L²·d·depth·B (module docstring)."""
    L, B = _positive("seq_len", seq_len), _positive("batch_size", batch_size)
    attention = 12 * L * L * config.d_model * config.num_layers * B
    return 6 * matmul_params(config, vocab_size) * L * B + attention


def compiled_flops(fn: Callable, *args) -> float:
    """FLOPs XLA counts for `jax.jit(fn)(*args)`: its cost analysis of the lowered program
    (before backend optimisation, so no compile is needed)."""
    analysis = jax.jit(fn).lower(*args).cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    if not analysis or "flops" not in analysis:
        raise ValueError("XLA's cost analysis of fn reports no 'flops' on this backend")
    return float(analysis["flops"])
