"""Closed-form oracle: data x_0 ~ N(mean, diag(std^2)) diffused by any process with
``alpha_sigma(t)`` (x_t = alpha x_0 + sigma eps).

The marginal is Gaussian, x_t ~ N(alpha mean, alpha^2 std^2 + sigma^2) per dimension, so the
score, the optimal (MMSE) eps- and x0-predictions, the marginal log-density and the minimum
eps-MSE are exact. Use it as the "perfect model" in tests and demos: ``lambda x, t:
data.eps(process, x, t)`` is the best possible eps-network for this data.

Shapes: ``mean`` and ``std`` have the data shape S; x is (B, *S); t is (B,) or a scalar.
Densities are nats summed over the data dims, (B,).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core.pytree import pytree_dataclass
from gen_jax.core.timeshape import batch_time, expand_like


@pytree_dataclass
@dataclasses.dataclass(frozen=True)
class GaussianData:
    """x_0 ~ N(mean, diag(std^2)); mean and std are arrays of the data shape, std > 0."""
    mean: jax.Array
    std: jax.Array

    def __post_init__(self):
        # Validate real arrays only: pytree transforms rebuild this class with other leaves.
        if not (hasattr(self.mean, "shape") and hasattr(self.std, "shape")):
            return
        if self.mean.shape != self.std.shape:
            raise ValueError(
                f"mean and std must have the same (data) shape, got {self.mean.shape} and {self.std.shape}")
        if not isinstance(self.std, jax.core.Tracer) and not np.all(np.asarray(self.std) > 0):
            raise ValueError("std must be > 0 everywhere")

    @property
    def shape(self):
        return jnp.shape(self.mean)

    @property
    def num_dims(self) -> int:
        return math.prod(self.shape)

    def _check_x(self, x):
        if x.shape[1:] != self.shape:
            raise ValueError(f"x must have shape (B, *{self.shape}), got {x.shape}")

    def sample(self, key, n: int):
        """n samples of x_0, (n, *S)."""
        return self.mean + self.std * jax.random.normal(key, (n,) + tuple(self.shape))

    def log_prob(self, x):
        """log N(x; mean, diag(std^2)), (B,) nats."""
        self._check_x(x)
        return _diag_normal_logp(x, self.mean, jnp.broadcast_to(self.std, x.shape))

    def _coefficients(self, process, t, batch):
        """alpha, sigma broadcastable against (B, *S) and var = alpha^2 std^2 + sigma^2."""
        t = batch_time(t, jnp.zeros((batch,)))
        alpha, sigma = process.alpha_sigma(t)
        like = jnp.zeros((batch,) + tuple(self.shape))
        alpha, sigma = expand_like(alpha, like), expand_like(sigma, like)
        return alpha, sigma, alpha**2 * self.std**2 + sigma**2

    def _moments(self, process, x, t):
        self._check_x(x)
        return self._coefficients(process, t, x.shape[0])

    def marginal_std(self, process, t):
        """Per-dimension std of x_t, sqrt(alpha^2 std^2 + sigma^2): (B, *S) for t (B,),
        S for a scalar t."""
        t = jnp.asarray(t)
        _, _, var = self._coefficients(process, t, t.shape[0] if t.ndim else 1)
        std = jnp.broadcast_to(jnp.sqrt(var), (t.shape[0] if t.ndim else 1,) + tuple(self.shape))
        return std if t.ndim else std[0]

    def marginal_log_prob(self, process, x, t):
        """log q_t(x) = log N(x; alpha mean, alpha^2 std^2 + sigma^2), (B,) nats."""
        alpha, _, var = self._moments(process, x, t)
        return _diag_normal_logp(x, alpha * self.mean, jnp.broadcast_to(jnp.sqrt(var), x.shape))

    def score(self, process, x, t):
        """grad_x log q_t(x) = -(x - alpha mean) / var, like x."""
        alpha, _, var = self._moments(process, x, t)
        return -(x - alpha * self.mean) / var

    def eps(self, process, x, t):
        """E[eps | x_t = x] = sigma (x - alpha mean) / var (= -sigma score), like x."""
        alpha, sigma, var = self._moments(process, x, t)
        return sigma * (x - alpha * self.mean) / var

    def x0(self, process, x, t):
        """E[x_0 | x_t = x] = mean + alpha std^2 (x - alpha mean) / var, like x."""
        alpha, _, var = self._moments(process, x, t)
        return self.mean + alpha * self.std**2 * (x - alpha * self.mean) / var

    def min_eps_mse(self, process, t, batch_size=None):
        """E||eps - E[eps | x_t]||^2 summed over dims, the smallest eps-MSE any predictor can
        reach at time t: sum_d alpha^2 std_d^2 / (alpha^2 std_d^2 + sigma^2). (B,).

        t: (B,) or a scalar (then ``batch_size`` sets B, default 1)."""
        t = jnp.asarray(t)
        batch = t.shape[0] if t.ndim else (batch_size or 1)
        alpha, _, var = self._coefficients(process, t, batch)
        ratio = jnp.broadcast_to(alpha**2 * self.std**2 / var, (batch,) + tuple(self.shape))
        return jnp.sum(ratio.reshape(batch, -1), axis=-1)

def _diag_normal_logp(x, mean, std):
    z = (x - mean) / std
    per_dim = -0.5 * z**2 - jnp.log(std) - 0.5 * math.log(2 * math.pi)
    return jnp.sum(per_dim.reshape(x.shape[0], -1), axis=-1)


__all__ = ["GaussianData"]
