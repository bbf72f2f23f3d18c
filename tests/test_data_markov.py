"""Order-2 Markov chain data: exact entropy vs brute-force enumeration, samples vs the chain."""
import itertools

import numpy as np
import pytest

from gen_jax.data import MarkovChain2, load


@pytest.fixture(scope="module")
def chain():
    return MarkovChain2.random(seed=3, num_symbols=3, concentration=0.5)


def test_start_is_stationary_for_the_pair_chain(chain):
    P, pi = chain.transition, chain.start
    np.testing.assert_allclose(pi.sum(), 1.0, atol=1e-12)
    assert np.all(pi > 0)
    # (x_{t-1}, x_t) ~ pi  =>  (x_t, x_{t+1}) ~ sum_a pi[a, b] P[a, b, c] must be pi again.
    np.testing.assert_allclose(np.einsum("ab,abc->bc", pi, P), pi, atol=1e-12)


@pytest.mark.parametrize("length", [2, 3, 5])
def test_entropy_equals_brute_force_enumeration(chain, length):
    S = chain.num_symbols
    P, pi = chain.transition, chain.start
    probs = []
    for seq in itertools.product(range(S), repeat=length):
        p = pi[seq[0], seq[1]]
        for t in range(2, length):
            p *= P[seq[t - 2], seq[t - 1], seq[t]]
        probs.append(p)
    probs = np.array(probs)
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-12)
    brute_entropy = -(probs * np.log(probs)).sum()
    np.testing.assert_allclose(chain.sequence_entropy(length), brute_entropy, rtol=1e-12)
    all_seqs = np.array(list(itertools.product(range(S), repeat=length)))
    np.testing.assert_allclose(chain.log_prob(all_seqs), np.log(probs), rtol=1e-12)


def test_samples_match_the_chain(chain):
    N, L, S = 40000, 6, chain.num_symbols
    x = chain.sample(np.random.default_rng(0), N, L)
    assert x.dtype == np.int32 and x.min() >= 0 and x.max() < S
    # Every adjacent pair is pi-distributed (stationarity): binomial SEs, 5-SE bound.
    pi = chain.start
    for t in range(L - 1):
        freq = np.zeros((S, S))
        np.add.at(freq, (x[:, t], x[:, t + 1]), 1.0)
        freq /= N
        se = np.sqrt(pi * (1 - pi) / N)
        assert np.all(np.abs(freq - pi) < 5 * se + 1e-12), t
    # Transition frequencies given the previous two symbols, pooled over t.
    a, b, c = x[:, :-2].ravel(), x[:, 1:-1].ravel(), x[:, 2:].ravel()
    counts = np.zeros((S, S, S))
    np.add.at(counts, (a, b, c), 1.0)
    n_ab = counts.sum(-1, keepdims=True)
    P = chain.transition
    # Given the visit counts n_ab, the Markov-chain CLT gives SE sqrt(P(1-P)/n_ab): 5-SE bound.
    se = np.sqrt(P * (1 - P) / n_ab)
    assert np.all(np.abs(counts / n_ab - P) < 5 * se + 1e-12)
    # Mean NLL of independent sequences estimates the entropy: 5-SE bound.
    nll = -chain.log_prob(x)
    assert abs(nll.mean() - chain.sequence_entropy(L)) < 5 * nll.std() / np.sqrt(N)


def test_markov_dataset_spec_and_determinism():
    opts = dict(num_symbols=5, seq_len=12, num_examples=300, seed=7)
    train = load("markov", "train", **opts)
    test = load("markov", "test", **opts)
    chain = MarkovChain2.random(7, 5, 0.5)
    assert train.spec.kind == "text" and train.spec.shape == (12,) and train.spec.num_levels == 5
    assert train.spec.num_dims == 12 and len(train) == 300 and train.splits == ("train", "test")
    np.testing.assert_allclose(train.spec.entropy_nats_per_example, chain.sequence_entropy(12), rtol=1e-12)
    tokens = train.get_batch(np.arange(300))["tokens"]
    assert tokens.dtype == np.int32 and tokens.min() >= 0 and tokens.max() < 5
    np.testing.assert_array_equal(tokens, load("markov", "train", **opts).get_batch(np.arange(300))["tokens"])
    assert not np.array_equal(tokens, test.get_batch(np.arange(300))["tokens"])


def test_markov_rejects_bad_options():
    with pytest.raises(ValueError, match="seq_len must be >= 2"):
        load("markov", "train", seq_len=1)
    with pytest.raises(ValueError, match="num_symbols"):
        load("markov", "train", num_symbols=1)
    with pytest.raises(ValueError, match="concentration"):
        load("markov", "train", concentration=0.0)
    with pytest.raises(ValueError, match="unsupported option"):
        load("markov", "train", alphabet=4)
