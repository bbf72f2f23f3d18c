"""Masked diffusion vs brute-force enumeration on a tiny joint distribution over short sequences.

The data distribution is a random table P over all V**L sequences (V=3, L=3). Its exact denoiser
p(x0_i | x_t) (the marginal of token i given the unmasked tokens) is computed by enumeration, in
jnp for the model under test and independently in numpy float64 for the references:
  - the exact discrete-time ELBO, summing over all 2**L mask patterns at every step;
  - the exact continuous-time ELBO, a 1-d quadrature in a = alpha(t) (the ELBO is schedule
    invariant), which with eps=0 equals -log P(x) exactly (the exact denoiser makes it tight);
  - the exact output distribution of the T-step ancestral sampler, enumerating partial states.
"""
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from gen_jax.core.masked import (MaskingSchedule, mask_tokens, masked_ancestral_sample,
                                 masked_elbo)

V, L = 3, 3
MASK = V
SEQS = np.array(list(itertools.product(range(V), repeat=L)))  # (27, L), row j <-> table entry j
TABLE = np.random.default_rng(0).dirichlet(2.0 * np.ones(V**L))
NEG_LOG_P = -np.log(TABLE)
ENTROPY = float(TABLE @ NEG_LOG_P)


def exact_logits_fn(x_t, t):
    """The exact denoiser: log of the (unnormalised) marginal of x0_i given the unmasked tokens."""
    del t
    seqs = jnp.asarray(SEQS)
    consistent = jnp.all((x_t[:, None, :] == MASK) | (x_t[:, None, :] == seqs[None]), axis=-1)
    weights = jnp.where(consistent, jnp.asarray(TABLE, jnp.float32), 0.0)  # (B, 27)
    marginals = jnp.einsum("bj,jiv->biv", weights, jax.nn.one_hot(seqs, V))
    return jnp.log(marginals)


def uniform_logits_fn(x_t, t):
    # Zero logits written through t so XLA does not constant-fold a batch-sized array.
    return jnp.broadcast_to((0.0 * t)[:, None, None], x_t.shape + (V,))


# ---- numpy float64 references --------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def np_marginals(state):
    """(L, V) marginals of each token given a partial state (tuple, -1 = masked)."""
    state = np.array(state)
    consistent = np.all((state == -1) | (SEQS == state), axis=1)
    weights = TABLE * consistent
    return np.stack([np.bincount(SEQS[:, i], weights, minlength=V) for i in range(L)]) / weights.sum()


def np_alpha(kind, t, eps):
    base = {"linear": 1.0 - t, "cosine": 1.0 - math.cos(0.5 * math.pi * (1.0 - t))}[kind]
    return (1.0 - 2.0 * eps) * base + eps


PATTERNS = [np.array(m, bool) for m in itertools.product([False, True], repeat=L)]


def masked_cost(j, pattern):
    """sum over masked positions of -log p(x_i | x_t) for sequence j and mask pattern."""
    state = tuple(np.where(pattern, -1, SEQS[j]))
    marginals = np_marginals(state)
    return sum(-math.log(marginals[i, SEQS[j, i]]) for i in range(L) if pattern[i])


def chain_alphas(kind, num_steps, eps):
    """alpha_0..alpha_T of the discrete chain: 1 at the data end, 0 at the fully masked end."""
    alphas = [np_alpha(kind, i / num_steps, eps) for i in range(num_steps + 1)]
    alphas[0], alphas[-1] = 1.0, 0.0
    return alphas


def reference_discrete_elbo(j, num_steps, kind="linear", eps=1e-4):
    alphas = chain_alphas(kind, num_steps, eps)
    total = 0.0
    for i in range(1, num_steps + 1):
        a_s, a_t = alphas[i - 1], alphas[i]
        expected_cost = sum(a_t ** (L - m.sum()) * (1 - a_t) ** m.sum() * masked_cost(j, m)
                            for m in PATTERNS)
        total += (a_s - a_t) / (1 - a_t) * expected_cost
    return total


def reference_continuous_elbo(j, eps=1e-4):
    """int over a = alpha in [eps, 1-eps] of sum_m a^unmasked (1-a)^(masked-1) cost(m), plus the
    uniform reconstruction and prior terms L eps log V each."""
    def integrand(a):
        return sum(a ** (L - m.sum()) * (1 - a) ** (m.sum() - 1) * masked_cost(j, m)
                   for m in PATTERNS if m.any())
    value, _ = integrate.quad(integrand, eps, 1 - eps, epsabs=1e-12, epsrel=1e-12)
    return value + 2 * L * eps * math.log(V)


def reference_sampler_distribution(num_steps, kind="linear", eps=1e-4):
    """Exact (27,) output distribution of the T-step ancestral sampler with the exact denoiser."""
    alphas = chain_alphas(kind, num_steps, eps)
    states = {(-1,) * L: 1.0}
    for i in range(num_steps, 0, -1):
        p = (alphas[i - 1] - alphas[i]) / (1 - alphas[i])
        new_states = {}
        for state, prob in states.items():
            masked = [k for k in range(L) if state[k] == -1]
            marginals = np_marginals(state)
            for chosen in itertools.product([False, True], repeat=len(masked)):
                unmasked_now = [k for k, c in zip(masked, chosen) if c]
                p_subset = p ** len(unmasked_now) * (1 - p) ** (len(masked) - len(unmasked_now))
                if p_subset == 0.0:
                    continue
                for values in itertools.product(range(V), repeat=len(unmasked_now)):
                    new = list(state)
                    p_values = 1.0
                    for k, v in zip(unmasked_now, values):
                        new[k] = v
                        p_values *= marginals[k, v]
                    key = tuple(new)
                    new_states[key] = new_states.get(key, 0.0) + prob * p_subset * p_values
        states = new_states
    return np.array([states.get(tuple(s), 0.0) for s in SEQS])


# ---- the references themselves -----------------------------------------------------------


def test_references_are_tight_where_theory_says():
    for j in (0, 7, 26):
        # Exact denoiser + continuous time + eps=0: the ELBO is -log P(x) exactly.
        assert abs(reference_continuous_elbo(j, eps=0.0) - NEG_LOG_P[j]) < 1e-8
        # One step unmasks everything from the product of marginals.
        single = sum(-math.log(np_marginals((-1,) * L)[i, SEQS[j, i]]) for i in range(L))
        assert abs(reference_discrete_elbo(j, 1) - single) < 1e-12
    np.testing.assert_allclose(reference_sampler_distribution(1),
                               np.prod([np_marginals((-1,) * L)[i, SEQS[:, i]] for i in range(L)], 0))


def test_discrete_elbo_upper_bounds_entropy_and_tightens():
    elbos = [TABLE @ np.array([reference_discrete_elbo(j, T) for j in range(V**L)])
             for T in (1, 2, 8, 64)]
    assert all(e >= ENTROPY for e in elbos)
    assert all(a > b for a, b in zip(elbos, elbos[1:]))
    assert elbos[-1] - ENTROPY < 0.02


# ---- schedules and the forward process ----------------------------------------------------

SCHEDULES = [MaskingSchedule("linear"), MaskingSchedule("cosine"),
             MaskingSchedule("poly", exponent=3.0), MaskingSchedule("poly", exponent=0.5, eps=1e-3)]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{s.kind}{s.exponent}")
def test_schedule_endpoints_and_derivative(schedule):
    e = schedule.eps
    np.testing.assert_allclose(float(schedule.alpha(0.0)), 1 - e, rtol=1e-6)
    np.testing.assert_allclose(float(schedule.alpha(1.0)), e, rtol=1e-5)
    t = jnp.linspace(0.02, 0.98, 25)
    alpha = np.asarray(schedule.alpha(t))
    assert np.all(np.diff(alpha) < 0)
    autodiff = jax.vmap(jax.grad(schedule.alpha))(t)
    np.testing.assert_allclose(np.asarray(schedule.dalpha_dt(t)), np.asarray(autodiff), rtol=1e-5)
    if schedule.kind in ("linear", "cosine"):
        ref = [np_alpha(schedule.kind, float(s), e) for s in t]
        np.testing.assert_allclose(alpha, ref, rtol=1e-5)


def test_schedule_is_a_pytree_usable_under_jit():
    schedule = MaskingSchedule("cosine")
    assert jax.tree_util.tree_leaves(schedule) == []
    got = jax.jit(lambda s, t: s.alpha(t))(schedule, jnp.float32(0.3))
    np.testing.assert_allclose(float(got), float(schedule.alpha(0.3)), rtol=1e-6)


def test_mask_tokens_keeps_fraction_alpha():
    schedule = MaskingSchedule("cosine")
    length = 20_000
    x = jax.random.randint(jax.random.key(1), (4, length), 0, V)
    t = jnp.array([0.0, 0.3, 0.7, 1.0])
    mask = jax.jit(functools.partial(mask_tokens, schedule=schedule, mask_id=MASK))
    x_t = np.asarray(mask(jax.random.key(2), x, t))
    kept = x_t != MASK
    np.testing.assert_array_equal(x_t[kept], np.asarray(x)[kept])
    alpha = np.asarray(schedule.alpha(t))
    se = np.sqrt(alpha * (1 - alpha) / length)
    assert np.all(np.abs(kept.mean(1) - alpha) <= 5 * se + 1e-4), (kept.mean(1), alpha)
    scalar = np.asarray(mask(jax.random.key(3), x[:, :1000], 0.5))
    assert abs((scalar != MASK).mean() - float(schedule.alpha(0.5))) < 5 * np.sqrt(0.25 / 4000)


# ---- the ELBO estimator vs the exact references --------------------------------------------

REPLICATES = 3000


def tiled_batch():
    """Each of the 27 sequences REPLICATES times, interleaved so antithetic times stratify each."""
    return jnp.asarray(np.tile(SEQS, (REPLICATES, 1)), jnp.int32)


@functools.lru_cache(maxsize=None)
def elbo_per_sequence(kind, num_steps, model="exact"):
    """(mean, standard error) over replicates of the estimated nll, per sequence: two (27,)."""
    logits_fn = exact_logits_fn if model == "exact" else uniform_logits_fn
    elbo = jax.jit(functools.partial(masked_elbo, logits_fn=logits_fn,
                                     schedule=MaskingSchedule(kind), mask_id=MASK,
                                     num_steps=num_steps))
    nll = np.asarray(elbo(jax.random.key(11), x=tiled_batch()).nll, np.float64)
    nll = nll.reshape(REPLICATES, V**L)
    return nll.mean(0), nll.std(0, ddof=1) / math.sqrt(REPLICATES)


def assert_matches(mean, se, ref):
    assert np.all(np.abs(mean - ref) <= 5 * se + 1e-4), np.abs(mean - ref) / se
    pooled_se = math.sqrt(np.sum((TABLE * se) ** 2))
    assert abs(TABLE @ mean - TABLE @ ref) <= 5 * pooled_se + 1e-4


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_continuous_elbo_matches_exact_and_is_near_entropy(kind):
    mean, se = elbo_per_sequence(kind, None)
    ref = np.array([reference_continuous_elbo(j) for j in range(V**L)])
    assert_matches(mean, se, ref)
    # Tight up to the eps endpoint terms: the exact denoiser gives -log P(x) per sequence.
    np.testing.assert_allclose(ref, NEG_LOG_P, atol=5e-3)
    assert TABLE @ ref >= ENTROPY


@pytest.mark.parametrize("num_steps", [1, 4])
def test_discrete_elbo_matches_exact_and_bounds_entropy(num_steps):
    mean, se = elbo_per_sequence("cosine", num_steps)
    ref = np.array([reference_discrete_elbo(j, num_steps, kind="cosine") for j in range(V**L)])
    assert_matches(mean, se, ref)
    assert TABLE @ ref >= ENTROPY
    if num_steps == 1:  # every token masked at the single step: no randomness at all
        np.testing.assert_allclose(mean, ref, rtol=1e-5)


@pytest.mark.parametrize("kind, num_steps", [("linear", None), ("cosine", None), ("linear", 5)])
def test_uniform_model_costs_log_v_per_token(kind, num_steps):
    mean, se = elbo_per_sequence(kind, num_steps, model="uniform")
    target = L * math.log(V)
    pooled_se = math.sqrt(np.sum(se**2)) / V**L
    assert abs(mean.mean() - target) <= 5 * pooled_se + 1e-5, (mean.mean(), target, pooled_se)


def test_elbo_terms_and_t_min():
    schedule = MaskingSchedule("linear", eps=1e-3)
    x = jnp.asarray(SEQS, jnp.int32)
    out = jax.jit(functools.partial(masked_elbo, logits_fn=uniform_logits_fn, schedule=schedule,
                                    mask_id=MASK, t_min=0.2))(jax.random.key(0), x=x)
    np.testing.assert_allclose(np.asarray(out.terms["reconstruction"]),
                               L * (1 - np_alpha("linear", 0.2, 1e-3)) * math.log(V), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out.terms["prior"]), L * 1e-3 * math.log(V), rtol=1e-4)
    assert np.all(np.asarray(out.terms["t"]) >= 0.2)
    np.testing.assert_allclose(np.asarray(out.nll), np.asarray(
        out.terms["diffusion"] + out.terms["reconstruction"] + out.terms["prior"]), rtol=1e-6)


def test_elbo_gradient_matches_finite_difference():
    """jit + grad through the estimator with a fixed key equals a central finite difference."""
    x = jnp.asarray(SEQS, jnp.int32)

    def mean_nll(scale):
        fn = lambda x_t, t: scale * jnp.log(jnp.exp(exact_logits_fn(x_t, t)) + 1e-2)
        return masked_elbo(jax.random.key(5), fn, x, MaskingSchedule("cosine"), MASK).nll.mean()

    grad = float(jax.jit(jax.grad(mean_nll))(jnp.float32(1.0)))
    h = 1e-2
    value = jax.jit(mean_nll)
    finite_difference = (float(value(1.0 + h)) - float(value(1.0 - h))) / (2 * h)
    np.testing.assert_allclose(grad, finite_difference, rtol=2e-3, atol=1e-4)


# ---- ancestral sampler ----------------------------------------------------------------------

NUM_SAMPLES = 20_000


@pytest.mark.parametrize("num_steps", [2, 24])
def test_sampler_matches_exact_chain_distribution(num_steps):
    sample = jax.jit(functools.partial(
        masked_ancestral_sample, logits_fn=exact_logits_fn, batch=NUM_SAMPLES, length=L,
        schedule=MaskingSchedule("linear"), num_steps=num_steps, mask_id=MASK))
    tokens, nfe = sample(jax.random.key(num_steps))
    tokens = np.asarray(tokens)
    assert nfe == num_steps
    assert tokens.dtype == np.int32 and np.all((tokens >= 0) & (tokens < V))
    counts = np.bincount(tokens @ (V ** np.arange(L - 1, -1, -1)), minlength=V**L)
    expected = reference_sampler_distribution(num_steps)
    assert stats.chisquare(counts, NUM_SAMPLES * expected).pvalue > 1e-3
    if num_steps == 2:  # few steps unmask tokens together from factorised marginals: not the table
        assert stats.chisquare(counts, NUM_SAMPLES * TABLE).pvalue < 1e-6
    else:  # many steps unmask ~one token at a time: close to the data table
        assert 0.5 * np.abs(expected - TABLE).sum() < 0.03


def test_sampler_greedy_truncation_is_passed_through():
    sample = jax.jit(functools.partial(
        masked_ancestral_sample, logits_fn=exact_logits_fn, batch=5, length=L,
        schedule=MaskingSchedule("linear"), num_steps=1, mask_id=MASK, top_k=1))
    tokens = sample(jax.random.key(0)).samples
    argmax = np.argmax(np_marginals((-1,) * L), axis=1)
    np.testing.assert_array_equal(np.asarray(tokens), np.tile(argmax, (5, 1)))


# ---- validation -----------------------------------------------------------------------------


def test_invalid_schedules_raise():
    with pytest.raises(ValueError, match="kind"):
        MaskingSchedule("sigmoid")
    with pytest.raises(ValueError, match="exponent"):
        MaskingSchedule("poly", exponent=0.0)
    with pytest.raises(ValueError, match="eps"):
        MaskingSchedule(eps=0.5)


def test_invalid_inputs_raise():
    s = MaskingSchedule()
    x = jnp.zeros((2, L), jnp.int32)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        mask_tokens(key, jnp.zeros((L,), jnp.int32), 0.5, s, MASK)
    with pytest.raises(ValueError, match="integer"):
        mask_tokens(key, jnp.zeros((2, L)), 0.5, s, MASK)
    with pytest.raises(ValueError, match="t must be"):
        mask_tokens(key, x, jnp.zeros((3,)), s, MASK)
    with pytest.raises(ValueError, match="MaskingSchedule"):
        mask_tokens(key, x, 0.5, "linear", MASK)
    with pytest.raises(ValueError, match="num_steps"):
        masked_elbo(key, uniform_logits_fn, x, s, MASK, num_steps=0)
    with pytest.raises(ValueError, match="t_min"):
        masked_elbo(key, uniform_logits_fn, x, s, MASK, num_steps=4, t_min=0.1)
    with pytest.raises(ValueError, match="t_min"):
        masked_elbo(key, uniform_logits_fn, x, s, MASK, t_min=1.0)
    with pytest.raises(ValueError, match="eps"):
        masked_elbo(key, uniform_logits_fn, x, MaskingSchedule(eps=0.0), MASK)
    with pytest.raises(ValueError, match="mask_id"):
        masked_elbo(key, uniform_logits_fn, x, s, 1)
    with pytest.raises(ValueError, match=r"\(B, L, V\)"):
        masked_elbo(key, lambda x_t, t: jnp.zeros((2, V)), x, s, MASK)
    with pytest.raises(ValueError, match="batch"):
        masked_ancestral_sample(key, uniform_logits_fn, 0, L, s, 4, MASK)
    with pytest.raises(ValueError, match="num_steps"):
        masked_ancestral_sample(key, uniform_logits_fn, 2, L, s, 2.5, MASK)
