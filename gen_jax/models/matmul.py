"""Matrix products whose reverse mode runs on XLA:CPU's fast GEMM path.

For y = a b with a (M, K), b (K, N), reverse mode needs a^T g, a contraction over the
*leading* axis of both operands. XLA:CPU's fast GEMM path (YNNPACK) only takes a left operand
contracted on its trailing axis, so autodiff's a^T g went to a slower fallback GEMM, after a
transposing copy of g that was fused with g's elementwise producers (e.g. the GELU backward)
and ran several times slower than a plain copy. In a transformer train step on CPU that was
the largest avoidable cost (benchmarks/train_step.py): every weight gradient x^T g.

`matmul` computes a @ b exactly as `jnp.matmul`, but its JVP is written so that its
*transpose* (what reverse mode evaluates) contracts against an explicit transpose of the
smaller of a (a^T, (K, M)) and g (g^T, (N, M)), held behind `lax.optimization_barrier` so
that XLA does not fold it back into the GEMM: every GEMM of the backward pass is then in the
(M, K) x (K, N) or (M, K) x (N, K) form. XLA:CPU drops the barrier before fusion, so a
transpose may still recompute its elementwise producer (e.g. a LayerNorm) while copying.
Forward mode (jax.jvp, used by the PF-ODE trace) and higher derivatives work as for
`jnp.matmul`, and values are identical. Batched products (equal leading axes) are handled
the same way. On other platforms (`lax.platform_dependent`) the plain product is used: GPU
and TPU GEMMs take transposed operands natively.
"""
import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero
from flax import nnx


def _barrier(x):
    return lax.optimization_barrier(x)


def _mT(x):  # noqa: N802 (matrix transpose of the last two axes)
    return jnp.swapaxes(x, -1, -2)


def _rhs_tangent_cpu(a, b_dot):
    """a (..., M, K) @ b_dot (..., K, N), written so that its transpose in b_dot runs fast GEMMs."""
    m, k = a.shape[-2:]
    n = b_dot.shape[-1]
    if k <= n:
        # transpose: [[a^T] g] with a^T (..., K, M) and the product (..., K, N) materialised
        # (so that XLA cannot fold a later transpose of the product back into the GEMM).
        return _mT(_barrier(_mT(_barrier(a)))) @ _barrier(b_dot)
    # transpose: ([g^T] a)^T with g^T (..., N, M) and the product (..., N, K) materialised.
    return _mT(_barrier(_barrier(_mT(b_dot)) @ _mT(a)))


def _rhs_tangent(a, b_dot):
    return lax.platform_dependent(a, b_dot, cpu=_rhs_tangent_cpu, default=jnp.matmul)


@jax.custom_jvp
def _matmul(a, b):
    return jnp.matmul(a, b)


def _matmul_jvp(primals, tangents):
    a, b = primals
    a_dot, b_dot = tangents
    y = _matmul(a, b)
    terms = []
    if not isinstance(a_dot, SymbolicZero):
        terms.append(jnp.matmul(a_dot, b))
    if not isinstance(b_dot, SymbolicZero):
        if b.ndim == 2:  # a Linear layer: fold a's leading axes into M
            terms.append(_rhs_tangent(a.reshape(-1, a.shape[-1]), b_dot).reshape(y.shape))
        else:
            terms.append(_rhs_tangent(a, b_dot))
    if not terms:
        return y, jnp.zeros_like(y)
    return y, sum(terms[1:], terms[0])


_matmul.defjvp(_matmul_jvp, symbolic_zeros=True)


def matmul(a, b):
    """a (..., M, K) @ b (K, N) or (..., K, N) with the same leading axes -> (..., M, N).

    Equal to `jnp.matmul`; differentiates into fast GEMMs on CPU (module docstring).
    Broadcasting leading axes other than these two forms is not supported.
    """
    if a.ndim < 2 and b.ndim != 2:
        raise ValueError(f"matmul needs a (..., M, K) and b (K, N); got {a.shape} and {b.shape}")
    if b.ndim != 2 and a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"matmul needs equal leading axes or a 2-D b; got {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: contracted sizes differ, {a.shape} @ {b.shape}")
    return _matmul(a, b)


def linear_dot_general(lhs, rhs, dimension_numbers, precision=None,
                       preferred_element_type=None, out_sharding=None):
    """`lax.dot_general` for a Linear layer: lhs (..., d_in) . rhs (d_in, d_out) -> (..., d_out).

    Same signature as `lax.dot_general` (pass it as `nnx.Linear(dot_general=...)`). The
    Linear contraction (last axis of lhs with axis 0 of rhs, no batch axes, default precision,
    no output sharding or dtype override) goes through `matmul`; anything else is handed to
    `lax.dot_general` unchanged.
    """
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    plain = (tuple(lhs_contract) != (lhs.ndim - 1,) or tuple(rhs_contract) != (0,)
             or lhs_batch or rhs_batch or rhs.ndim != 2 or precision is not None
             or preferred_element_type is not None or out_sharding is not None)
    if plain:
        return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                               preferred_element_type=preferred_element_type,
                               out_sharding=out_sharding)
    return _matmul(lhs, rhs)


def Linear(in_features, out_features, *, rngs, **kwargs):  # noqa: N802 (a layer constructor)
    """`nnx.Linear` (same parameters, initialisers and checkpoints) using `linear_dot_general`."""
    return nnx.Linear(in_features, out_features, dot_general=linear_dot_general, rngs=rngs,
                      **kwargs)
