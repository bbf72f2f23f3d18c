"""Truncated categorical sampling vs a numpy float64 reference of the truncated distribution."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gen_jax.core.categorical import sample_categorical, truncate_logits

LOGITS = np.log(np.array([0.30, 0.22, 0.18, 0.12, 0.10, 0.05, 0.03]))
NUM_DRAWS = 20_000


def reference_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """Truncated, renormalised distribution in float64, written from the definitions."""
    z = np.asarray(logits, np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    if top_k is not None:
        keep = np.zeros_like(p, bool)
        keep[order[:top_k]] = True
        p = np.where(keep, p, 0.0) / p[keep].sum()
    if top_p is not None:
        cumulative = np.cumsum(p[order])
        num_kept = int(np.argmax(cumulative >= top_p - 1e-12)) + 1  # smallest prefix with mass >= top_p
        keep = np.zeros_like(p, bool)
        keep[order[:num_kept]] = True
        p = np.where(keep, p, 0.0) / p[keep].sum()
    return p


CASES = [
    dict(),
    dict(temperature=0.6),
    dict(temperature=1.7),
    dict(top_k=3),
    dict(top_p=0.65),
    dict(top_p=0.9, temperature=0.8),
    dict(top_k=5, top_p=0.7, temperature=1.3),
]


@pytest.fixture(scope="module")
def draws():
    """One jit compile per case; NUM_DRAWS samples each from a broadcast batch of logits."""
    logits = jnp.broadcast_to(jnp.asarray(LOGITS, jnp.float32), (NUM_DRAWS, LOGITS.size))
    out = {}
    for i, case in enumerate(CASES):
        sample = jax.jit(lambda k, l, case=case: sample_categorical(k, l, **case))
        out[i] = np.asarray(sample(jax.random.key(100 + i), logits))
    return out


@pytest.mark.parametrize("case_index", range(len(CASES)))
def test_truncated_probabilities_match_reference(case_index):
    case = CASES[case_index]
    got = np.asarray(jax.nn.softmax(truncate_logits(jnp.asarray(LOGITS, jnp.float32), **case)))
    np.testing.assert_allclose(got, reference_probs(LOGITS, **case), atol=1e-6)


@pytest.mark.parametrize("case_index", range(len(CASES)))
def test_sample_frequencies_chi_square(draws, case_index):
    case = CASES[case_index]
    expected = reference_probs(LOGITS, **case)
    counts = np.bincount(draws[case_index], minlength=LOGITS.size)
    assert counts[expected == 0].sum() == 0, "a truncated token was sampled"
    kept = expected > 0
    result = stats.chisquare(counts[kept], NUM_DRAWS * expected[kept])
    assert result.pvalue > 1e-3, (case, counts, NUM_DRAWS * expected)


def test_rows_truncate_independently():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 9)) * 2.0
    got = np.asarray(jax.nn.softmax(truncate_logits(jnp.asarray(logits, jnp.float32), top_k=6,
                                                    top_p=0.8, temperature=0.9)))
    for index in np.ndindex(2, 3):
        ref = reference_probs(logits[index], top_k=6, top_p=0.8, temperature=0.9)
        np.testing.assert_allclose(got[index], ref, atol=1e-6)


def test_top_p_always_keeps_argmax_and_may_be_traced():
    logits = jnp.asarray([[0.1, 3.0, -1.0, 0.5], [2.0, 2.5, 2.4, -3.0]], jnp.float32)
    for top_p in (1e-6, 0.01):
        kept = np.isfinite(np.asarray(truncate_logits(logits, top_p=top_p)))
        np.testing.assert_array_equal(kept, np.eye(4, dtype=bool)[[1, 1]])
    traced = jax.jit(lambda l, p: truncate_logits(l, top_p=p))(logits, jnp.float32(0.6))
    np.testing.assert_array_equal(np.asarray(traced), np.asarray(truncate_logits(logits, top_p=0.6)))


def test_greedy_and_no_op_settings():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(64, 11)), jnp.float32)
    greedy = sample_categorical(jax.random.key(0), logits, top_k=1)
    np.testing.assert_array_equal(np.asarray(greedy), np.argmax(np.asarray(logits), axis=-1))
    np.testing.assert_allclose(np.asarray(truncate_logits(logits, top_k=11, top_p=1.0)),
                               np.asarray(logits))
    np.testing.assert_allclose(np.asarray(truncate_logits(logits, top_k=50)), np.asarray(logits))


def test_temperature_zero_is_greedy():
    """T -> 0 limit of softmax(logits / T): the argmax, ties drawn uniformly; traced 0 too."""
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(64, 11)), jnp.float32)
    argmax = np.argmax(np.asarray(logits), axis=-1)
    for temperature in (0.0, 0):
        greedy = sample_categorical(jax.random.key(0), logits, temperature=temperature)
        np.testing.assert_array_equal(np.asarray(greedy), argmax)
    traced = jax.jit(lambda k, l, t: sample_categorical(k, l, temperature=t, top_p=0.5))
    np.testing.assert_array_equal(np.asarray(traced(jax.random.key(1), logits, 0.0)), argmax)
    ties = jnp.tile(jnp.array([[1.0, 3.0, 3.0, -2.0]]), (4000, 1))
    draws = np.asarray(sample_categorical(jax.random.key(2), ties, temperature=0.0))
    assert set(np.unique(draws)) == {1, 2}
    assert abs(np.mean(draws == 1) - 0.5) < 5 * 0.5 / np.sqrt(4000)


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-1.0), "temperature"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=2.5), "top_k"),
    (dict(top_k=True), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
])
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        truncate_logits(jnp.zeros((2, 5)), **kwargs)
    with pytest.raises(ValueError, match=message):
        sample_categorical(jax.random.key(0), jnp.zeros((2, 5)), **kwargs)


def test_scalar_logits_raise():
    with pytest.raises(ValueError, match="vocabulary axis"):
        truncate_logits(jnp.float32(1.0))
