"""KV-cached generation: same logits as full recomputation, ragged prompts, eos handling, and the
per-step sampling distribution (temperature / top-k / top-p) checked by chi-square."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from gen_jax.models import ARTransformer, TransformerConfig, functional, generate
from model_init import rngs

VOCAB = 8
FIXED_LOGITS = np.array([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0], np.float32)


@pytest.fixture(scope="module", params=["rope", "learned", "rope+learned"])
def model(request):
    cfg = TransformerConfig(num_layers=2, num_heads=2, d_model=32, max_len=24,
                            positional=request.param, mlp="swiglu" if request.param == "rope" else "gelu")
    model = ARTransformer(cfg, VOCAB, rngs=rngs(0))
    if request.param == "rope+learned":  # the table starts at zero: fill it so both paths count
        table = model.backbone.position_embed.embedding
        table[...] = jax.random.normal(jax.random.key(1), table[...].shape)
    return model


def full_logits(model, tokens):
    """Logits of one uncached causal pass over the whole sequence (jitted pure view)."""
    apply_fn, params = functional(model)
    return np.asarray(jax.jit(apply_fn)(params, tokens))


@pytest.fixture(scope="module")
def fixed_model():
    """AR model whose next-token logits are FIXED_LOGITS whatever the input (zero head kernel)."""
    cfg = TransformerConfig(num_layers=1, num_heads=2, d_model=16, max_len=40)
    m = ARTransformer(cfg, VOCAB, rngs=rngs(1))
    m.head.kernel[...] = jnp.zeros_like(m.head.kernel[...])
    m.head.bias[...] = jnp.asarray(FIXED_LOGITS)
    return m


def test_cached_logits_match_full_recompute_ragged(model):
    batch, prompt_len, new = 3, 5, 9
    prompt = jax.random.randint(jax.random.key(1), (batch, prompt_len), 0, VOCAB)
    lengths = jnp.array([5, 1, 3])
    (tokens, nfe), logits = generate(model, jax.random.key(2), prompt, new, prompt_lengths=lengths,
                                     return_logits=True)
    assert nfe == new
    assert tokens.shape == (batch, prompt_len + new) and logits.shape == (batch, new, VOCAB)
    full = full_logits(model, tokens)
    for b in range(batch):
        n = int(lengths[b])
        np.testing.assert_array_equal(tokens[b, :n], prompt[b, :n])
        np.testing.assert_allclose(logits[b], full[b, n - 1:n - 1 + new], atol=2e-5, rtol=1e-5)
        assert np.all(np.asarray(tokens[b, n + new:]) == 0)  # pad_id defaults to 0


def test_greedy_is_argmax_of_full_recompute(fixed_model):
    cfg = TransformerConfig(num_layers=2, num_heads=2, d_model=32, max_len=24)
    model = ARTransformer(cfg, VOCAB, rngs=rngs(5))
    prompt = jnp.array([[model.bos_id], [3]])
    tokens = generate(model, jax.random.key(0), prompt, 10, top_k=1).samples
    full = full_logits(model, tokens)
    np.testing.assert_array_equal(np.asarray(tokens[:, 1:]), full[:, :-1].argmax(-1))
    for temperature in (0.0, jnp.float32(0.0)):  # temperature 0 is greedy too (traced or not)
        greedy = generate(model, jax.random.key(1), prompt, 10, temperature=temperature).samples
        np.testing.assert_array_equal(np.asarray(greedy), np.asarray(tokens))


def _truncated_probs(temperature, top_k, top_p):
    """Reference truncated distribution in float64, written directly from the definitions."""
    z = FIXED_LOGITS.astype(np.float64) / temperature
    order = np.argsort(-z)
    keep = np.zeros(VOCAB, bool)
    keep[order[:top_k or VOCAB]] = True
    p = np.where(keep, np.exp(z - z.max()), 0.0)
    p /= p.sum()
    if top_p is not None:
        cum_before = np.cumsum(p[order]) - p[order]
        keep_sorted = cum_before < top_p
        keep_sorted[0] = True
        p = np.where(np.isin(np.arange(VOCAB), order[keep_sorted]), p, 0.0)
        p /= p.sum()
    return p


@pytest.mark.parametrize("temperature,top_k,top_p", [
    (1.0, None, None), (0.6, None, None), (1.0, 3, None), (1.0, None, 0.7), (1.7, 5, 0.8)])
def test_sampling_distribution(fixed_model, temperature, top_k, top_p):
    batch, new = 64, 32
    prompt = jnp.full((batch, 1), fixed_model.bos_id)
    tokens = generate(fixed_model, jax.random.key(42), prompt, new, temperature=temperature,
                      top_k=top_k, top_p=top_p).samples
    counts = np.bincount(np.asarray(tokens[:, 1:]).ravel(), minlength=VOCAB)
    probs = _truncated_probs(temperature, top_k, top_p)
    assert counts[probs == 0].sum() == 0, "sampled a token outside the truncation"
    kept = probs > 0
    if kept.sum() > 1:
        _, pvalue = scipy.stats.chisquare(counts[kept], counts.sum() * probs[kept])
        assert pvalue > 1e-4


def test_eos_then_padding(fixed_model):
    eos, pad = 2, 7  # eos has probability ~0.14 per step
    prompt = jnp.full((16, 1), fixed_model.bos_id)
    tokens = np.asarray(generate(fixed_model, jax.random.key(3), prompt, 30, eos_id=eos,
                                 pad_id=pad).samples)[:, 1:]
    finished = 0
    for row in tokens:
        hits = np.flatnonzero(row == eos)
        if hits.size:
            finished += 1
            assert np.all(row[hits[0] + 1:] == pad)
    assert finished >= 12  # P(no eos in 30 steps) ~ 0.01 per row


def test_bad_arguments(fixed_model):
    prompt = jnp.zeros((2, 3), jnp.int32)
    with pytest.raises(ValueError, match="max_len"):
        generate(fixed_model, jax.random.key(0), prompt, 38)
    with pytest.raises(ValueError, match="integer"):
        generate(fixed_model, jax.random.key(0), prompt.astype(jnp.float32), 2)
    with pytest.raises(ValueError, match="prompt_lengths"):
        generate(fixed_model, jax.random.key(0), prompt, 2, prompt_lengths=jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(fixed_model, jax.random.key(0), prompt, 0)
    with pytest.raises(ValueError, match="temperature"):
        generate(fixed_model, jax.random.key(0), prompt, 2, temperature=-0.5)
    with pytest.raises(ValueError, match="causal"):
        cfg = TransformerConfig(num_layers=1, num_heads=2, d_model=16, causal=False)
        ARTransformer(cfg, VOCAB, rngs=rngs(0))
