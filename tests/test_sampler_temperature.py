"""Temperature 0 is greedy decoding in the masked-diffusion sampler (the AR decoder and
``sample_categorical`` are checked in test_models_decoding / test_categorical); negative
temperatures are a ValueError."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.core.masked import MaskingSchedule, masked_ancestral_sample
from gen_jax.core.results import SampleResult

V, L = 6, 5
MASK = V
TABLE = jnp.asarray(np.random.default_rng(0).normal(size=(L, V)), jnp.float32)


def fixed_logits_fn(x, t):
    """Position-dependent logits that ignore the input: the greedy answer is argmax per row."""
    return jnp.broadcast_to(TABLE, x.shape + (V,))


@pytest.mark.parametrize("num_steps", [1, 7])
def test_masked_sampler_temperature_zero_is_argmax(num_steps):
    result = jax.jit(lambda k: masked_ancestral_sample(
        k, fixed_logits_fn, 16, L, MaskingSchedule("cosine"), num_steps, MASK,
        temperature=0.0))(jax.random.key(3))
    assert isinstance(result, SampleResult) and result.nfe == num_steps
    np.testing.assert_array_equal(np.asarray(result.samples),
                                  np.tile(np.argmax(np.asarray(TABLE), axis=1), (16, 1)))


def test_masked_sampler_negative_temperature_raises():
    with pytest.raises(ValueError, match="temperature"):
        masked_ancestral_sample(jax.random.key(0), fixed_logits_fn, 2, L, MaskingSchedule(), 3,
                                MASK, temperature=-1.0)
