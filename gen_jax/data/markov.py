"""Synthetic sequences from a random order-2 Markov chain, with exact entropy.

The chain over S symbols has a transition table P[a, b, c] = p(x_t = c | x_{t-2} = a,
x_{t-1} = b), each row drawn from a symmetric Dirichlet(concentration) with a numpy
Generator seeded by `seed`. Sequences start from the stationary distribution pi(a, b) of the
pair chain (a, b) -> (b, c); the pair (x_{t-1}, x_t) then stays distributed as pi at every t,
so for a length-L sequence (L >= 2)

  H(x_0..x_{L-1}) = H(pi) + (L - 2) h,   h = sum_{a,b} pi(a, b) H(P[a, b, :])

(chain rule of entropy; h is the entropy rate, the per-token NLL a perfect AR model reaches
after the first two tokens). All quantities are in nats and computed in float64.
"""
from __future__ import annotations

import dataclasses

import numpy as np


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis (0 log 0 = 0)."""
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(-1)


def stationary_pair_distribution(transition: np.ndarray) -> np.ndarray:
    """(S, S, S) order-2 transition table -> (S, S) stationary distribution of pairs.

    Solves pi M = pi, sum(pi) = 1 for the pair chain M[(a, b), (b, c)] = P[a, b, c]
    (unique when every entry of P is positive).
    """
    S = transition.shape[0]
    M = np.zeros((S * S, S * S))
    for a in range(S):
        for b in range(S):
            M[a * S + b, b * S : (b + 1) * S] = transition[a, b]
    A = M.T - np.eye(S * S)
    A[-1] = 1.0
    rhs = np.zeros(S * S)
    rhs[-1] = 1.0
    return np.linalg.solve(A, rhs).reshape(S, S)


@dataclasses.dataclass(frozen=True, eq=False)
class MarkovChain2:
    """Order-2 Markov chain started from its stationary pair distribution.

    transition: (S, S, S) float64, P[a, b, c] = p(c | a, b). start: (S, S) float64 = pi.
    """

    transition: np.ndarray
    start: np.ndarray

    @classmethod
    def random(cls, seed: int, num_symbols: int, concentration: float = 0.5) -> "MarkovChain2":
        """Dirichlet(concentration)-random rows from np.random.default_rng(seed)."""
        if isinstance(num_symbols, bool) or not isinstance(num_symbols, int) or num_symbols < 2:
            raise ValueError(f"num_symbols must be an integer >= 2, got {num_symbols!r}")
        if not concentration > 0:
            raise ValueError(f"concentration must be > 0, got {concentration!r}")
        rng = np.random.default_rng(seed)
        transition = rng.dirichlet(np.full(num_symbols, float(concentration)), size=(num_symbols, num_symbols))
        # Keep every transition possible so the stationary distribution is unique.
        transition = np.maximum(transition, 1e-6)
        transition /= transition.sum(-1, keepdims=True)
        return cls(transition, stationary_pair_distribution(transition))

    @property
    def num_symbols(self) -> int:
        return self.transition.shape[0]

    def entropy_rate(self) -> float:
        """h = sum_{a,b} pi(a, b) H(P[a, b, :]) in nats per token."""
        return float((self.start * _entropy(self.transition)).sum())

    def sequence_entropy(self, length: int) -> float:
        """Exact entropy of x_0..x_{length-1} in nats: H(pi) + (length - 2) h."""
        if length < 2:
            raise ValueError(f"an order-2 chain needs length >= 2, got {length}")
        return float(_entropy(self.start.reshape(-1))) + (length - 2) * self.entropy_rate()

    def log_prob(self, sequences: np.ndarray) -> np.ndarray:
        """(N, L) int sequences -> (N,) float64 log-probabilities in nats."""
        x = np.asarray(sequences)
        logp = np.log(self.start[x[:, 0], x[:, 1]])
        logp += np.log(self.transition[x[:, :-2], x[:, 1:-1], x[:, 2:]]).sum(-1)
        return logp

    def sample(self, rng: np.random.Generator, num: int, length: int) -> np.ndarray:
        """(num, length) int32 sequences drawn with the numpy Generator `rng`."""
        if length < 2:
            raise ValueError(f"an order-2 chain needs length >= 2, got {length}")
        S = self.num_symbols
        x = np.empty((num, length), dtype=np.int32)
        pair = rng.choice(S * S, size=num, p=self.start.reshape(-1))
        x[:, 0], x[:, 1] = pair // S, pair % S
        cumulative = np.cumsum(self.transition, axis=-1)
        cumulative[..., -1] = 1.0
        for t in range(2, length):
            u = rng.random(num)
            x[:, t] = (cumulative[x[:, t - 2], x[:, t - 1]] <= u[:, None]).sum(-1)
        return x
