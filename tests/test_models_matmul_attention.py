"""The CPU-friendly matmul (Linear layers) and attention against plain JAX autodiff.

`matmul` and `attention` rewrite how reverse mode (and, for attention, the whole computation)
runs on CPU; the references are `jnp.matmul` and a one-line einsum attention differentiated by
JAX itself (a different code path), in float64, plus numerical derivatives (`check_grads`).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax
from jax.test_util import check_grads

from gen_jax.models.attention import attention
from gen_jax.models.matmul import Linear, linear_dot_general, matmul

# (a shape, b shape): Linear with d_in <= d_out and d_in > d_out (a^T vs g^T materialised), and
# batched products with K <= N and K > N.
SHAPES = [((2, 4, 3), (3, 5)), ((2, 4, 6), (6, 2)), ((2, 3, 4, 6), (2, 3, 6, 7)),
          ((2, 3, 4, 6), (2, 3, 6, 2))]


@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
def test_matmul_value_and_derivatives_match_plain_autodiff(a_shape, b_shape):
    with jax.enable_x64(True):
        a = jax.random.normal(jax.random.key(0), a_shape, jnp.float64)
        b = jax.random.normal(jax.random.key(1), b_shape, jnp.float64)

        def loss(mm, a, b):
            return jnp.sum(jnp.tanh(mm(a, b)) ** 2)

        np.testing.assert_array_equal(matmul(a, b), jnp.matmul(a, b))
        got = jax.jit(jax.grad(lambda a, b: loss(matmul, a, b), (0, 1)))(a, b)
        want = jax.grad(lambda a, b: loss(jnp.matmul, a, b), (0, 1))(a, b)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
        # forward mode (the PF-ODE trace uses jax.jvp) and second order, both modes
        check_grads(lambda a, b: jnp.tanh(matmul(a, b)), (a, b), order=2, modes=["fwd", "rev"])


def test_matmul_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="contracted sizes differ"):
        matmul(jnp.ones((4, 3)), jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="equal leading axes"):
        matmul(jnp.ones((2, 4, 3)), jnp.ones((3, 3, 5)))


def test_linear_matches_nnx_linear_and_falls_back_for_other_contractions():
    ours = Linear(6, 3, rngs=nnx.Rngs(0))
    plain = nnx.Linear(6, 3, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(2), (2, 5, 6))
    np.testing.assert_array_equal(ours.kernel[...], plain.kernel[...])
    np.testing.assert_allclose(ours(x), plain(x), rtol=1e-6, atol=1e-6)
    # Any other contraction is lax.dot_general unchanged.
    lhs, rhs = jnp.ones((3, 4)), jnp.ones((3, 5))
    dims = (((0,), (0,)), ((), ()))
    np.testing.assert_array_equal(linear_dot_general(lhs, rhs, dims),
                                  lax.dot_general(lhs, rhs, dims))


@pytest.mark.parametrize("batch,causal", [(1, True), (3, True), (5, False), (8, True)])
def test_attention_matches_dot_product_attention(batch, causal):
    """Batch sizes that do and do not divide into the CPU chunks; values, VJP and JVP."""
    with jax.enable_x64(True):
        q, k, v = (jax.random.normal(jax.random.key(i), (batch, 6, 2, 4), jnp.float64)
                   for i in range(3))
        ct = jax.random.normal(jax.random.key(3), q.shape, jnp.float64)

        def ours(q, k, v):
            return attention(q, k, v, causal=causal)

        def ref(q, k, v):  # softmax(q k^T / sqrt(D)) v, straight from the definition
            scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
            if causal:
                scores = jnp.where(np.tril(np.ones((6, 6), bool)), scores, -np.inf)
            return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, -1), v)

        np.testing.assert_allclose(ours(q, k, v), ref(q, k, v), rtol=1e-12, atol=1e-12)
        got = jax.vjp(ours, q, k, v)[1](ct)
        want = jax.vjp(ref, q, k, v)[1](ct)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(jax.jvp(ours, (q, k, v), (ct, ct, ct))[1],
                                   jax.jvp(ref, (q, k, v), (ct, ct, ct))[1], rtol=1e-10, atol=1e-10)


def test_attention_causality_and_bad_shapes():
    q = jax.random.normal(jax.random.key(0), (2, 5, 2, 4))
    out = attention(q, q, q, causal=True)
    changed = q.at[:, 3].add(1.0)
    out2 = attention(changed, changed, changed, causal=True)
    np.testing.assert_array_equal(out[:, :3], out2[:, :3])
    assert not np.allclose(out[:, 3:], out2[:, 3:])
    with pytest.raises(ValueError, match="one shape"):
        attention(q, q[:, :4], q, causal=True)
