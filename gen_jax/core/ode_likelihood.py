"""Exact likelihood of the probability-flow ODE (Song et al. 2021, "Score-Based Generative
Modeling through SDEs", Sec. 4.3 and App. D.2), solved in-graph with diffrax.

The PF-ODE dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t) is a continuous normalizing flow, so

    log p_{t_min}(x) = log p_T(z(T)) + int_{t_min}^{T} div_x drift(x(t), t) dt,

integrated **forward** from x(t_min) = x to z(T) (T = 1). The augmented state is
[x, int div]. By default each example is solved on its own (``jax.vmap`` over the batch), so an
example's result never depends on the rest of the batch; ``joint_solve=True`` shares step sizes
across the batch (faster per step on CPU, score_sde's behaviour).
"""
import math

import diffrax
import jax
import jax.numpy as jnp

from gen_jax.core.sde import probability_flow_drift

__all__ = ["pf_ode_nll", "pf_ode_bits_per_dim"]

_SOLVERS = {"dopri5": diffrax.Dopri5, "tsit5": diffrax.Tsit5}
# Both solvers are 7-stage FSAL Runge-Kutta methods: 6 new drift evaluations per attempted step,
# plus one at the start (counted with a callback in tests/test_likelihood_ode.py).
_EVALS_PER_STEP = 6
_EVALS_AT_START = 1


def _augmented_drift(sde, score_fn, divergence, t, state, probes):
    """d/dt of the augmented state (x (b, ...), int div (b,)) for a (sub-)batch x.

    The examples of x are independent, so the drift's Jacobian is block-diagonal: one jvp with a
    per-example probe gives each example's own v^T J v, and D jvps with a one-hot tangent
    (the same for every example) give each example's own trace.
    """
    x, _ = state
    t_batch = jnp.full((x.shape[0],), t, dtype=x.dtype)
    drift = lambda y: probability_flow_drift(sde, score_fn, y, t_batch)
    if divergence == "hutchinson":
        dx, jv = jax.jvp(drift, (x,), (probes,))
        return dx, jnp.sum((probes * jv).reshape(x.shape[0], -1), axis=-1)
    num_dims = math.prod(x.shape[1:])
    basis = jnp.eye(num_dims, dtype=x.dtype).reshape((num_dims, 1) + x.shape[1:])
    columns = jax.vmap(lambda e: jax.jvp(drift, (x,), (jnp.broadcast_to(e, x.shape),))[1])(basis)
    trace = jnp.einsum("jbj->b", columns.reshape(num_dims, x.shape[0], num_dims))
    return drift(x), trace


def pf_ode_nll(
    key,
    sde,
    score_fn,
    x,
    *,
    t_min: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    divergence: str = "exact",
    probe: str = "rademacher",
    solver: str = "dopri5",
    joint_solve: bool = False,
    max_steps: int = 4096,
):
    """Negative log-density of x under the probability-flow ODE model, in nats.

    Args:
      key: PRNG key for the Hutchinson probes (one probe per example, held fixed over the
        whole solve); unused for ``divergence='exact'``.
      sde: process with ``sde(x, t) -> (f, g)``, ``prior_logp(z) -> (B,)`` and ``T``
        (VPSDE, SubVPSDE, VESDE, LogSNRSDE).
      score_fn: pure JAX ``score_fn(x, t) -> score like x`` for x (B, ...) and t (B,).
      x: (B, ...) continuous data at time t_min (for K-level data dequantize first, see
        ``pf_ode_bits_per_dim``).
      t_min: start time in (0, 1); the result is the density of the ODE model at t = t_min.
      rtol, atol: tolerances of diffrax's PID step-size controller (RMS norm over the
        augmented state).
      divergence: 'exact' (trace of the full Jacobian: D forward-mode passes; small D only) or
        'hutchinson' (v^T (d drift / dx) v by one jvp; unbiased in the probe).
      probe: 'rademacher' or 'gaussian' Hutchinson probe.
      solver: 'dopri5' or 'tsit5'.
      joint_solve: False (default) solves each example on its own (``jax.vmap``; score_fn is
        then called with B = 1 under vmap): results do not depend on the rest of the batch.
        True solves the batch as one ODE with shared step sizes (as score_sde does): cheaper
        per step, but an example's result depends on its batch at the tolerance level.
        Divergences never mix examples either way.
      max_steps: solver step limit (an error is raised past it).

    Returns:
      nll: (B,) nats, -log p_{t_min}(x) of the ODE model (float32).
      nfe: (B,) int32 drift evaluations (each one score call) spent on each example's solve.
    """
    if x.ndim < 2:
        raise ValueError(f"x must be batched (B, ...); got shape {x.shape}")
    if not 0.0 < t_min < 1.0:
        raise ValueError(f"t_min must lie in (0, 1); got {t_min}")
    if rtol <= 0 or atol <= 0:
        raise ValueError(f"rtol and atol must be positive; got rtol={rtol}, atol={atol}")
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact' or 'hutchinson'; got {divergence!r}")
    if probe not in ("rademacher", "gaussian"):
        raise ValueError(f"probe must be 'rademacher' or 'gaussian'; got {probe!r}")
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {sorted(_SOLVERS)}; got {solver!r}")

    x = x.astype(jnp.float32)
    if probe == "rademacher":
        probes = jax.random.rademacher(key, x.shape, dtype=x.dtype)
    else:
        probes = jax.random.normal(key, x.shape, dtype=x.dtype)

    def solve(y0, v):
        """Solve a (sub-)batch y0 (b, ...) jointly: (nll (b,), nfe (b,))."""
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, state, args: _augmented_drift(sde, score_fn, divergence, t, state, args)),
            _SOLVERS[solver](),
            t0=t_min,
            t1=sde.T,
            dt0=None,
            y0=(y0, jnp.zeros(y0.shape[:1], y0.dtype)),
            args=v,
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=max_steps,
        )
        z1, integral = solution.ys[0][0], solution.ys[1][0]
        nll = -(sde.prior_logp(z1) + integral)
        nfe = _EVALS_AT_START + _EVALS_PER_STEP * solution.stats["num_steps"]
        return nll, jnp.full(y0.shape[:1], nfe, jnp.int32)

    if joint_solve:
        return solve(x, probes)
    nll, nfe = jax.vmap(lambda y, v: solve(y[None], v[None]))(x, probes)
    return nll[:, 0], nfe[:, 0]


def pf_ode_bits_per_dim(key, sde, score_fn, k_int, num_levels: int, **ode_kwargs):
    """Upper bound on -log2 P(k) / D of the PF-ODE model for K-level data k (B, ...).

    Uniformly dequantizes k to y = 2(k + u)/K - 1 (the bin of each level), solves
    ``pf_ode_nll`` at y and adds log2(K / 2) per dimension (bins of width 2/K in [-1, 1]): by Jensen over u this
    bounds -log2 of the ODE model's probability of the discrete data (Song et al. 2021, App.
    D.2; Theis et al. 2016). One u and one probe per example: the estimate is random.

    Returns (bits_per_dim (B,), nfe (B,)). ``ode_kwargs`` are passed to ``pf_ode_nll``.
    """
    # Imported here because likelihood.py re-exports this module.
    from gen_jax.core.likelihood import dequantized_bits_per_dim, uniform_dequantize

    if k_int.ndim < 2:
        raise ValueError(f"k_int must be batched (B, ...); got shape {k_int.shape}")
    dequant_key, probe_key = jax.random.split(key)
    y = uniform_dequantize(dequant_key, k_int, num_levels)
    nll, nfe = pf_ode_nll(probe_key, sde, score_fn, y, **ode_kwargs)
    num_dims = math.prod(k_int.shape[1:])
    return dequantized_bits_per_dim(nll, num_dims, num_levels), nfe
