"""Block diffusion (BD3-LM): the block NELBO, the block-causal model and the block sampler against
things that cannot share their bugs.

  - b = 1 is AR: with every token masked (T = 1) the NELBO is the AR NLL of the same network
    (`core.likelihood.ar_nll`), and in expectation over t it is (alpha(0) - alpha(1)) NLL plus the
    schedule's endpoint terms (Monte Carlo, 5 SE); the sampler draws from the AR distribution.
  - b = L is masked diffusion: `block_elbo` and the sampler reproduce `core.masked` with the same
    keys, and the b = L model is the masked model with the same parameters.
  - Brute force on a random table over all V**L sequences, with the exact conditional denoiser
    p(x_i | x_t^k, x^{<k}) by enumeration (jnp for the code under test, numpy float64 for the
    references): the exact continuous NELBO (a quadrature in alpha), the exact T-step NELBO and
    the exact output distribution of the T-step block sampler.
  - The masks by their definition, attention under a mask vs softmax written out, block
    causality of the model, the vectorised pass vs a loop over blocks, KV cache vs recompute.
"""
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from scipy import integrate, stats

from experiments.configs.base import get_base_config
from gen_jax import families
from gen_jax.core.block import block_ancestral_sample, block_elbo
from gen_jax.core.likelihood import ar_nll
from gen_jax.core.masked import MaskingSchedule, masked_ancestral_sample, masked_elbo
from gen_jax.models.attention import attention, block_causal_mask, block_diffusion_mask
from gen_jax.models.masked import MaskedTransformer
from gen_jax.models.transformer import TransformerConfig
from tests.model_init import perturbed, rngs

V, L = 3, 4
MASK = V
SEQS = np.array(list(itertools.product(range(V), repeat=L)))  # (81, L)
TABLE = np.random.default_rng(0).dirichlet(2.0 * np.ones(V**L))
NEG_LOG_P = -np.log(TABLE)
ENTROPY = float(TABLE @ NEG_LOG_P)


def nll_of(out):
    """`masked_elbo`'s nll (a LikelihoodResult)."""
    return out.nll


def exact_block_logits(x_t, x, b):
    """log of the (unnormalised) marginal of x_i given clean x^{<k} and the unmasked x_t^k."""
    seqs, table = jnp.asarray(SEQS), jnp.asarray(TABLE, jnp.float32)
    out = []
    for k in range(L // b):
        lo, hi = k * b, (k + 1) * b
        prefix = jnp.all(seqs[None, :, :lo] == x[:, None, :lo], axis=-1)
        noisy = x_t[:, None, lo:hi]
        match = jnp.all((noisy == MASK) | (noisy == seqs[None, :, lo:hi]), axis=-1)
        weights = jnp.where(prefix & match, table, 0.0)  # (B, 81)
        out.append(jnp.log(jnp.einsum("bj,jiv->biv", weights, jax.nn.one_hot(seqs[:, lo:hi], V))))
    return jnp.concatenate(out, axis=1)


def exact_denoiser(b):
    """`block_ancestral_sample`'s denoise_fn for the exact model; state: the (B, L) clean tokens."""
    def denoise(state, tokens, k, commit):
        if commit is not None:
            state = jax.lax.dynamic_update_slice(state, commit, (0, (k - 1) * b))
        x_t = jax.lax.dynamic_update_slice(jnp.full_like(state, MASK), tokens, (0, k * b))
        logits = exact_block_logits(x_t, state, b)
        return jax.lax.dynamic_slice_in_dim(logits, k * b, b, axis=1), state
    return denoise


# ---- numpy float64 references ------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def np_marginals(state):
    """(L, V) marginals of each token given a partial state (tuple, -1 = free)."""
    state = np.array(state)
    weights = TABLE * np.all((state == -1) | (SEQS == state), axis=1)
    marginals = np.stack([np.bincount(SEQS[:, i], weights, minlength=V) for i in range(L)])
    return marginals / weights.sum()


def block_cost(j, b, k, pattern):
    """sum over masked positions of block k of -log p(x_i | x_t^k, x^{<k}), sequence j."""
    state = np.full(L, -1)
    state[:k * b] = SEQS[j, :k * b]
    block = SEQS[j, k * b:(k + 1) * b]
    state[k * b:(k + 1) * b] = np.where(pattern, -1, block)
    marginals = np_marginals(tuple(state))
    return sum(-math.log(marginals[k * b + i, block[i]]) for i in range(b) if pattern[i])


def patterns(b):
    return [np.array(m, bool) for m in itertools.product([False, True], repeat=b)]


def reference_continuous(j, b, eps):
    """Per block: int over a = alpha in [eps, 1 - eps] of sum_m a^unmasked (1-a)^(masked-1)
    cost(m) (the NELBO is schedule invariant), plus the endpoint terms 2 L eps log V."""
    total = 2 * L * eps * math.log(V)
    for k in range(L // b):
        def integrand(a):
            return sum(a ** (b - m.sum()) * (1 - a) ** (m.sum() - 1) * block_cost(j, b, k, m)
                       for m in patterns(b) if m.any())
        total += integrate.quad(integrand, eps, 1 - eps, epsabs=1e-12, epsrel=1e-12)[0]
    return total


def chain_alphas(num_steps, eps):
    alphas = [(1 - 2 * eps) * (1 - i / num_steps) + eps for i in range(num_steps + 1)]
    alphas[0], alphas[-1] = 1.0, 0.0
    return alphas


def reference_discrete(j, b, num_steps, eps=1e-4):
    alphas, total = chain_alphas(num_steps, eps), 0.0
    for k in range(L // b):
        for i in range(1, num_steps + 1):
            a_s, a_t = alphas[i - 1], alphas[i]
            total += (a_s - a_t) / (1 - a_t) * sum(
                a_t ** (b - m.sum()) * (1 - a_t) ** m.sum() * block_cost(j, b, k, m)
                for m in patterns(b))
    return total


def reference_sampler_distribution(b, num_steps, eps=1e-4):
    """Exact (81,) output distribution of the T-step block sampler with the exact denoiser: each
    block's chain over partial states, given its clean prefix."""
    alphas = chain_alphas(num_steps, eps)
    out = np.zeros(V**L)
    for j, seq in enumerate(SEQS):
        prob = 1.0
        for k in range(L // b):
            lo, hi = k * b, (k + 1) * b
            states = {(-1,) * b: 1.0}
            for i in range(num_steps, 0, -1):
                r = (alphas[i - 1] - alphas[i]) / (1 - alphas[i])
                new = {}
                for state, p in states.items():
                    full = np.full(L, -1)
                    full[:lo], full[lo:hi] = seq[:lo], state
                    marginals = np_marginals(tuple(full))
                    masked = [q for q in range(b) if state[q] == -1]
                    for chosen in itertools.product([False, True], repeat=len(masked)):
                        now = [q for q, c in zip(masked, chosen) if c]
                        p_subset = r ** len(now) * (1 - r) ** (len(masked) - len(now))
                        if p_subset == 0.0:
                            continue
                        for values in itertools.product(range(V), repeat=len(now)):
                            s, pv = list(state), 1.0
                            for q, v in zip(now, values):
                                s[q] = v
                                pv *= marginals[lo + q, v]
                            new[tuple(s)] = new.get(tuple(s), 0.0) + p * p_subset * pv
                states = new
            prob *= states.get(tuple(seq[lo:hi]), 0.0)
        out[j] = prob
    return out


def test_references_are_tight_where_theory_says():
    # Exact denoiser, continuous time, eps = 0: every block's bound is -log p(x^k | x^{<k}).
    for j in (0, 40, 80):
        for b in (1, 2, 4):
            assert abs(reference_continuous(j, b, 0.0) - NEG_LOG_P[j]) < 1e-8
    # b = 1 (any T) and T = 1: the sampler is exact AR sampling / products of block marginals.
    np.testing.assert_allclose(reference_sampler_distribution(1, 3), TABLE, rtol=1e-10)
    assert abs(reference_sampler_distribution(2, 2).sum() - 1) < 1e-12


# ---- masks and attention ------------------------------------------------------------------


@pytest.mark.parametrize("length,b", [(6, 1), (6, 2), (6, 3), (6, 6), (5, 2)])
def test_masks_match_their_definition(length, b):
    causal = block_causal_mask(length, b)
    for i, j in itertools.product(range(length), repeat=2):
        assert causal[i, j] == (j // b <= i // b)
    full = block_diffusion_mask(length, b)
    for i, j in itertools.product(range(2 * length), repeat=2):
        bi, bj = (i % length) // b, (j % length) // b
        if i < length:  # noisy query: its own noisy block, clean blocks before it
            expected = (bj == bi) if j < length else (bj < bi)
        else:  # clean query: clean blocks up to its own, never a noisy token
            expected = j >= length and bj <= bi
        assert full[i, j] == expected, (i, j)
    if b == 1:
        np.testing.assert_array_equal(causal, np.tril(np.ones((length, length), bool)))


@pytest.mark.parametrize("batch", [1, 5])
def test_masked_attention_matches_softmax_written_out(batch):
    mask = block_diffusion_mask(3, 2)
    with jax.enable_x64(True):
        q, k, v = (jax.random.normal(jax.random.key(i), (batch, 6, 2, 4), jnp.float64)
                   for i in range(3))
        ct = jax.random.normal(jax.random.key(3), q.shape, jnp.float64)

        def ours(q, k, v):
            return attention(q, k, v, causal=False, mask=mask)

        def ref(q, k, v):
            scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
            scores = jnp.where(mask, scores, -np.inf)
            return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, -1), v)

        np.testing.assert_allclose(ours(q, k, v), ref(q, k, v), rtol=1e-12, atol=1e-12)
        for g, w in zip(jax.vjp(ours, q, k, v)[1](ct), jax.vjp(ref, q, k, v)[1](ct)):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="not both"):
        attention(q, k, v, causal=True, mask=mask)
    with pytest.raises(ValueError, match="boolean"):
        attention(q, k, v, causal=False, mask=mask[:4, :4])


# ---- the model -----------------------------------------------------------------------------

NET_V, NET_L = 5, 8


def block_model(b, length=NET_L, seed=0):
    cfg = TransformerConfig(num_layers=2, num_heads=2, d_model=16, max_len=length, causal=False,
                            positional="rope+learned", attention_block_size=b)
    model = families.get("block").model(cfg, (length,), NET_V, rngs=rngs(seed), block_size=b)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return nnx.merge(graphdef, perturbed(params, jax.random.key(seed)), rest)


def net_batch(seed, batch=3, length=NET_L, masked_frac=0.5):
    x = jax.random.randint(jax.random.key(seed), (batch, length), 0, NET_V)
    drop = jax.random.uniform(jax.random.key(seed + 1), x.shape) < masked_frac
    return jnp.where(drop, NET_V, x), x


def test_model_is_block_causal():
    b = 2
    net = block_model(b)
    model = jax.jit(lambda x_t, x: net(x_t, x))
    x_t, x = net_batch(0)
    base = np.asarray(model(x_t, x))
    for k in range(NET_L // b):
        pos = k * b + 1
        blocks = np.arange(NET_L) // b
        noisy = np.asarray(model(x_t.at[:, pos].set((x_t[:, pos] + 1) % (NET_V + 1)), x))
        np.testing.assert_array_equal(noisy[:, blocks != k], base[:, blocks != k])
        assert not np.allclose(noisy[:, blocks == k], base[:, blocks == k])
        clean = np.asarray(model(x_t, x.at[:, pos].set((x[:, pos] + 1) % NET_V)))
        np.testing.assert_array_equal(clean[:, blocks <= k], base[:, blocks <= k])
        if k < NET_L // b - 1:
            assert not np.allclose(clean[:, blocks > k], base[:, blocks > k])


def test_vectorised_pass_equals_a_loop_over_blocks_and_the_kv_cache():
    b = 2
    model = block_model(b)
    x_t, x = net_batch(1)
    forward = jax.jit(lambda x_t, x: model(x_t, x))
    vectorised = np.asarray(forward(x_t, x))
    plain = jax.jit(lambda seq: model.head(model.backbone(model.token_embed(seq))))
    cache = model.init_cache(x.shape[0], NET_L)
    denoise = jax.jit(model.denoise)
    for k in range(NET_L // b):
        lo, hi = k * b, (k + 1) * b
        # Loop: clean prefix + noisy block k under the backbone's plain block-causal mask.
        seq = jnp.concatenate([x[:, :lo], x_t[:, lo:hi]], axis=1)
        loop = plain(seq)[:, lo:hi]
        np.testing.assert_allclose(np.asarray(loop), vectorised[:, lo:hi], rtol=1e-5, atol=1e-5)
        cached, cache = denoise(cache, x_t[:, lo:hi], jnp.int32(k),
                                      None if k == 0 else x[:, lo - b:lo])
        np.testing.assert_allclose(np.asarray(cached), vectorised[:, lo:hi], rtol=1e-5, atol=1e-5)
        # A second denoising step of the same block (no commit) overwrites the noisy slots.
        again, cache = denoise(cache, x[:, lo:hi], jnp.int32(k), None)
        x_t_clean = x_t.at[:, lo:hi].set(x[:, lo:hi])
        np.testing.assert_allclose(np.asarray(again), np.asarray(forward(x_t_clean, x))[:, lo:hi],
                                   rtol=1e-5, atol=1e-5)


def test_whole_sequence_block_model_is_the_masked_model():
    model = block_model(NET_L)
    cfg = TransformerConfig(num_layers=2, num_heads=2, d_model=16, max_len=NET_L, causal=False,
                            positional="rope+learned")
    masked = MaskedTransformer(cfg, NET_V, rngs=rngs(1))
    nnx.update(masked, nnx.state(model, nnx.Param))
    x_t, x = net_batch(2)
    np.testing.assert_allclose(np.asarray(model(x_t, x)), np.asarray(masked(x_t)), rtol=1e-5,
                               atol=1e-5)
    # ... hence the same NELBO as masked_elbo, with the same keys.
    x = jax.random.randint(jax.random.key(3), (6, NET_L), 0, NET_V)
    for kwargs in (dict(), dict(antithetic=False), dict(num_steps=3)):
        got = jax.jit(lambda k: block_elbo(k, model, x, MaskingSchedule(), NET_V, NET_L,
                                           **kwargs))(jax.random.key(4))
        want = jax.jit(lambda k: masked_elbo(k, lambda x_t, t: masked(x_t), x, MaskingSchedule(),
                                             NET_V, **kwargs))(jax.random.key(4))
        np.testing.assert_allclose(np.asarray(got.nll), np.asarray(nll_of(want)), rtol=1e-5)


def test_param_count_matches_the_masked_and_ar_families():
    cfg = TransformerConfig(num_layers=2, num_heads=2, d_model=16, max_len=1,
                            positional="rope+learned")
    counts = {name: sum(np.size(p) for p in jax.tree.leaves(nnx.state(
        families.build_model(name, data_shape=(12,), num_levels=7, config=cfg, rngs=rngs(0)),
        nnx.Param))) for name in ("masked", "block", "block1", "blockL")}
    assert counts["block"] == counts["block1"] == counts["blockL"] == counts["masked"]


# ---- b = 1 is AR ---------------------------------------------------------------------------


def test_b1_with_every_token_masked_is_the_ar_nll_of_the_same_network():
    model = block_model(1)
    x = jax.random.randint(jax.random.key(5), (4, NET_L), 0, NET_V)
    ar_logits = model(jnp.full_like(x, NET_V), x)  # p(x_i | mask, x_<i): an AR model
    got = block_elbo(jax.random.key(6), model, x, MaskingSchedule(), NET_V, 1, num_steps=1)
    np.testing.assert_allclose(np.asarray(got.nll), np.asarray(ar_nll(ar_logits, x)), rtol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_b1_continuous_nelbo_is_the_ar_nll_in_expectation(kind):
    """E_t[NELBO] = (alpha(0) - alpha(1)) NLL + L (1 - alpha(0)) log V + L alpha(1) log V."""
    eps, reps = 0.1, 4000
    schedule = MaskingSchedule(kind, eps=eps)
    model = block_model(1)
    x = jax.random.randint(jax.random.key(7), (3, NET_L), 0, NET_V)
    nll = np.asarray(ar_nll(model(jnp.full_like(x, NET_V), x), x), np.float64)
    tiled = jnp.tile(x, (reps, 1))
    est = jax.jit(lambda k: block_elbo(k, model, tiled, schedule, NET_V, 1, antithetic=False).nll)
    draws = np.asarray(est(jax.random.key(8)), np.float64).reshape(reps, -1)
    mean, se = draws.mean(0), draws.std(0, ddof=1) / math.sqrt(reps)
    expected = (1 - 2 * eps) * nll + 2 * eps * NET_L * math.log(NET_V)
    assert np.all(np.abs(mean - expected) <= 5 * se), (mean, expected, se)


# ---- brute force with the exact denoiser ---------------------------------------------------

REPLICATES = 1500


@functools.lru_cache(maxsize=None)
def nelbo_per_sequence(b, num_steps, eps=1e-4):
    tiled = jnp.asarray(np.tile(SEQS, (REPLICATES, 1)), jnp.int32)
    fn = jax.jit(lambda k: block_elbo(k, functools.partial(exact_block_logits, b=b), tiled,
                                      MaskingSchedule(eps=eps), MASK, b, num_steps=num_steps).nll)
    nll = np.asarray(fn(jax.random.key(b * 10 + (num_steps or 0)))).reshape(REPLICATES, V**L)
    return nll.mean(0), nll.std(0, ddof=1) / math.sqrt(REPLICATES)


@pytest.mark.parametrize("b", [1, 2, 4])
def test_exact_denoiser_continuous_nelbo_matches_brute_force_and_is_tight(b):
    mean, se = nelbo_per_sequence(b, None)
    ref = np.array([reference_continuous(j, b, 1e-4) for j in range(V**L)])
    assert np.all(np.abs(mean - ref) <= 5 * se + 1e-4), np.max(np.abs(mean - ref) / se)
    np.testing.assert_allclose(ref, NEG_LOG_P, atol=5e-3)  # tight up to the eps terms
    # It bounds the cross-entropy of its own model (the eps endpoints make that model slightly
    # differ from the table), hence the entropy; per sequence it may dip below -log TABLE.
    assert TABLE @ ref >= ENTROPY
    assert TABLE @ mean >= ENTROPY - 5 * math.sqrt(np.sum((TABLE * se) ** 2))


@pytest.mark.parametrize("b,num_steps", [(2, 1), (2, 3), (4, 2)])
def test_exact_denoiser_discrete_nelbo_matches_brute_force_and_bounds_its_sampler(b, num_steps):
    mean, se = nelbo_per_sequence(b, num_steps)
    ref = np.array([reference_discrete(j, b, num_steps) for j in range(V**L)])
    assert np.all(np.abs(mean - ref) <= 5 * se + 1e-4), np.max(np.abs(mean - ref) / se)
    # The T-step NELBO bounds -log of the T-step sampler's probability, hence the entropy.
    assert np.all(ref >= -np.log(reference_sampler_distribution(b, num_steps)) - 1e-9)
    assert TABLE @ ref > ENTROPY


NUM_SAMPLES = 20_000


@pytest.mark.parametrize("b,num_steps", [(1, 1), (1, 3), (2, 2), (4, 3)])
def test_sampler_matches_the_exact_chain_distribution(b, num_steps):
    sample = jax.jit(lambda k: block_ancestral_sample(
        k, exact_denoiser(b), jnp.zeros((NUM_SAMPLES, L), jnp.int32), NUM_SAMPLES, L, b,
        MaskingSchedule(), num_steps, MASK))
    out = sample(jax.random.key(b + 7 * num_steps))
    assert out.nfe == (L // b) * num_steps
    tokens = np.asarray(out.samples)
    counts = np.bincount(tokens @ (V ** np.arange(L - 1, -1, -1)), minlength=V**L)
    expected = reference_sampler_distribution(b, num_steps)
    assert stats.chisquare(counts, NUM_SAMPLES * expected).pvalue > 1e-3
    if b == 1:  # b = 1: exact AR sampling from the table, for any T
        np.testing.assert_allclose(expected, TABLE, rtol=1e-9)


def test_whole_sequence_sampler_is_the_masked_sampler_draw_for_draw():
    fn = lambda x_t, t: exact_block_logits(x_t, x_t, L)  # noqa: E731  (b = L: no prefix)
    denoise = lambda state, tokens, k, commit: (fn(tokens, None), state)  # noqa: E731
    got = block_ancestral_sample(jax.random.key(3), denoise, (), 64, L, L, MaskingSchedule(), 5,
                                 MASK, top_p=0.9)
    want = masked_ancestral_sample(jax.random.key(3), fn, 64, L, MaskingSchedule(), 5, MASK,
                                   top_p=0.9)
    np.testing.assert_array_equal(np.asarray(got.samples), np.asarray(want.samples))


def test_model_sampler_runs_with_its_kv_cache_and_counts_calls():
    model = block_model(2)
    out = jax.jit(lambda k: block_ancestral_sample(
        k, model.denoise, model.init_cache(4, NET_L), 4, NET_L, 2, MaskingSchedule(), 3,
        NET_V))(jax.random.key(0))
    assert out.nfe == 12 and out.samples.shape == (4, NET_L)
    assert np.all((np.asarray(out.samples) >= 0) & (np.asarray(out.samples) < NET_V))


# ---- bad input and the family --------------------------------------------------------------


def test_bad_inputs_raise():
    x = jnp.zeros((2, L), jnp.int32)
    fn = functools.partial(exact_block_logits, b=2)
    with pytest.raises(ValueError, match="block_size"):
        block_elbo(jax.random.key(0), fn, x, MaskingSchedule(), MASK, 3)
    with pytest.raises(ValueError, match="mask_id"):
        block_elbo(jax.random.key(0), fn, x, MaskingSchedule(), 1, 2)
    with pytest.raises(ValueError, match="clip"):
        block_elbo(jax.random.key(0), fn, x, MaskingSchedule(), MASK, 2, clip=(0.5, 0.2))
    with pytest.raises(ValueError, match="continuous"):
        block_elbo(jax.random.key(0), fn, x, MaskingSchedule(), MASK, 2, num_steps=2,
                   clip=(0.1, 0.9))
    with pytest.raises(ValueError, match="num_steps"):
        block_ancestral_sample(jax.random.key(0), exact_denoiser(2), x, 2, L, 2,
                               MaskingSchedule(), 0, MASK)
    with pytest.raises(ValueError, match="causal=False"):
        TransformerConfig(attention_block_size=2)


def test_clipped_times_are_the_integral_over_the_clip_range():
    """clip=(lo, hi): E[nll] is the NELBO integrand integrated over [lo, hi] only; for the uniform
    model and alpha = 1 - t the integrand is (1/t) E[#masked] log V = L log V."""
    lo, hi, eps, reps = 0.3, 0.8, 0.0, 20000
    x = jnp.zeros((reps, L), jnp.int32)
    uniform = lambda x_t, x: jnp.zeros(x_t.shape + (V,))  # noqa: E731
    nll = np.asarray(block_elbo(jax.random.key(1), uniform, x, MaskingSchedule(eps=eps), MASK, 2,
                                clip=(lo, hi)).nll)
    expected = (hi - lo) * L * math.log(V)
    assert abs(nll.mean() - expected) <= 5 * nll.std() / math.sqrt(reps) + 1e-6


def test_family_config_and_data():
    family = families.get("block")
    config = get_base_config("block", "markov")
    family.validate(config)
    for field, value, match in (("block_size", -1, "block.block_size"),
                                ("schedule", "zig", "block.schedule"),
                                ("train_clip", (0.9, 0.1), "block.train_clip")):
        bad = config.copy_and_resolve_references()
        bad.block[field] = value
        with pytest.raises(ValueError, match=match):
            family.validate(bad)
    bad = config.copy_and_resolve_references()
    bad.block.sample.steps = (2, -1)
    with pytest.raises(ValueError, match="block.sample.steps"):
        family.validate(bad)
    with pytest.raises(ValueError, match="block.block_size = 3"):
        family.model(TransformerConfig(), (8,), 5, rngs=rngs(0), block_size=3)
    text = ml_collections.ConfigDict(dict(kind="text", name="markov"))
    image = ml_collections.ConfigDict(dict(kind="image", name="digits"))
    assert family.supports(text) and not family.supports(image)  # not in the default digits run
    family.check_data(image)  # ... but it models images when asked for by name
    assert [families.get(n).default_config().block_size for n in
            ("block", "block1", "block16", "blockL")] == [4, 1, 16, 0]
