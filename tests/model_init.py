"""Model-test helpers shared by the tests/test_models_*.py files."""
import jax
import jax.numpy as jnp
from flax import nnx


def rngs(seed):
    """Init RNGs on the rbg PRNG: same init code, much cheaper to compile on CPU than threefry."""
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


@jax.jit
def perturbed(params, key, scale=0.2):
    """Add a deterministic, non-constant pattern (no RNG: threefry per leaf compiles slowly)."""
    leaves, treedef = jax.tree.flatten(params)
    phase = jax.random.uniform(key)
    leaves = [x + scale * jnp.sin(jnp.arange(x.size, dtype=x.dtype).reshape(x.shape) * 0.7
                                  + i + phase) for i, x in enumerate(leaves)]
    return jax.tree.unflatten(treedef, leaves)
