"""Exact likelihood of the probability-flow ODE (Song et al. 2021, "Score-Based Generative
Modeling through SDEs", Sec. 4.3 and App. D.2), solved in-graph with diffrax.

The PF-ODE dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t) is a continuous normalizing flow, so

    log p_{t_min}(x) = log p_T(z(T)) + int_{t_min}^{T} div_x drift(x(t), t) dt,

integrated **forward** from x(t_min) = x to z(T) (T = 1). The augmented state is
[x, int div]. By default each example is solved on its own (``jax.vmap`` over the batch), so an
example's result never depends on the rest of the batch; ``joint_solve=True`` shares step sizes
across the batch (faster per step on CPU, score_sde's behaviour).

Both functions return a ``results.LikelihoodResult``: nll (B,) nats, terms with 'nfe' (B,)
int32 and 'solver_ok' (B,) bool. Following the core's failure policy, a solve that fails
(e.g. hits ``max_steps``) never raises inside jit: its examples get nll = NaN and
solver_ok = False.
"""
import math

import diffrax
import jax
import jax.numpy as jnp

from gen_jax.core.checks import check_int, nan_where_invalid
from gen_jax.core.results import LikelihoodResult
from gen_jax.core.sde import Process, probability_flow_drift
from gen_jax.core.units import DATA_RANGE, LN2, check_levels, levels_to_centers, uniform_dequantize

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
      sde: an ``sde.Process`` (VPSDE, SubVPSDE, VESDE, LogSNRSDE).
      score_fn: pure JAX ``score_fn(x, t) -> score like x`` for x (B, ...) and t (B,)
        (ValueError if its output shape differs from x's).
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
      max_steps: solver step limit; a solve that reaches it fails (NaN, solver_ok False).

    Returns:
      ``LikelihoodResult``: nll (B,) nats, -log p_{t_min}(x) of the ODE model (float32; NaN
      where the solve failed); terms 'nfe' (B,) int32 drift evaluations (each one score call)
      spent on each example's solve, 'solver_ok' (B,) bool.
    """
    if not isinstance(sde, Process):
        raise ValueError(f"sde must be an sde.Process, got {type(sde).__name__}")
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
    max_steps = check_int(max_steps, "max_steps")

    x = x.astype(jnp.float32)
    if probe == "rademacher":
        probes = jax.random.rademacher(key, x.shape, dtype=x.dtype)
    else:
        probes = jax.random.normal(key, x.shape, dtype=x.dtype)

    def solve(y0, v):
        """Solve a (sub-)batch y0 (b, ...) jointly: (nll (b,), nfe (b,), ok (b,))."""
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
            throw=False,
        )
        z1, integral = solution.ys[0][0], solution.ys[1][0]
        ok = jnp.full(y0.shape[:1], solution.result == diffrax.RESULTS.successful)
        nll = nan_where_invalid(-(sde.prior_logp(z1) + integral), ok)
        nfe = _EVALS_AT_START + _EVALS_PER_STEP * solution.stats["num_steps"]
        return nll, jnp.full(y0.shape[:1], nfe, jnp.int32), ok

    if joint_solve:
        nll, nfe, ok = solve(x, probes)
    else:
        nll, nfe, ok = (a[:, 0] for a in jax.vmap(lambda y, v: solve(y[None], v[None]))(x, probes))
    return LikelihoodResult(nll, dict(nfe=nfe, solver_ok=ok))


def pf_ode_bits_per_dim(key, sde, score_fn, k_int, num_levels: int, *,
                        dequantization: str = "uniform", t_min: float = 1e-5, **ode_kwargs):
    """Upper bound on -log2 P(k) / D of the PF-ODE model for K-level data k (B, ...).

    dequantization='uniform' (Song et al. 2021, App. D.2; Theis et al. 2016): y = 2(k + u)/K - 1
      with u ~ U[0, 1)^D, the bound -log2 p_ode(y)/D + log2(K/2) (bins of width 2/K in [-1, 1]).
      Tight only when the ODE density is flat across a bin: at low K, where the model's
      density at t_min concentrates near the level centres, it is very loose and the ODE is
      stiff near t_min.
    dequantization='forward' (variational dequantization by the forward process, as in VDM's
      decoder): z ~ q(z | x) = N(mean(x), std^2 I) = ``sde.marginal_prob(x, t_min)`` at the level
      centres x, and the bound
          -log P(k) <= E_q[-log p_ode(z) + log q(z | x) - log p(k | z)],
      with the decoder p(k | z) prop. to q(z | centre of k) per dimension (softmax over the K
      levels). It bounds -log P of the discrete model P(k) = int p_ode(z) p(k | z) dz and is
      tight when std(t_min) is small against the bin width 2/K.
    One dequantization draw and one probe per example: the estimate is random.

    Returns ``LikelihoodResult``: nll (B,) nats, the bound on -log P(k) (NaN where the solve
    failed or, traced, k is out of range); terms 'bits_per_dim' (B,) = nll / (D ln 2),
    'ode_nll' (B,) nats of -log p_ode at the dequantized point, 'nfe' (B,), 'solver_ok' (B,).
    t_min: where the ODE starts (and the dequantization time of 'forward'); ``ode_kwargs`` go
    to ``pf_ode_nll``. k_int must be integer levels in [0, K) (ValueError otherwise).
    """
    valid = check_levels(k_int, num_levels, "k_int")
    if dequantization not in ("uniform", "forward"):
        raise ValueError(f"dequantization must be 'uniform' or 'forward'; got {dequantization!r}")
    dequant_key, probe_key = jax.random.split(key)
    num_dims = math.prod(k_int.shape[1:])
    if dequantization == "uniform":
        y = uniform_dequantize(dequant_key, k_int, num_levels)
        ode = pf_ode_nll(probe_key, sde, score_fn, y, t_min=t_min, **ode_kwargs)
        # -log P(k) <= -log p(y) + D log(K / 2) for bins of width 2/K (as dequantized_bits_per_dim).
        total = ode.nll + num_dims * math.log(num_levels / DATA_RANGE)
        return _bound_result(total, ode, valid, num_dims)

    batch = k_int.shape[0]
    t = jnp.full((batch,), t_min, jnp.float32)
    x = levels_to_centers(k_int, num_levels)
    mean, std = sde.marginal_prob(x, t)
    std = std.reshape((batch,) + (1,) * (x.ndim - 1))
    noise = jax.random.normal(dequant_key, x.shape, x.dtype)
    z = mean + std * noise
    ode = pf_ode_nll(probe_key, sde, score_fn, z, t_min=t_min, **ode_kwargs)
    log_q = jnp.sum((-0.5 * noise**2 - jnp.log(std) - 0.5 * math.log(2 * math.pi)).reshape(batch, -1), -1)
    centres = levels_to_centers(jnp.arange(num_levels), num_levels)
    level_means, _ = sde.marginal_prob(jnp.broadcast_to(centres, (batch, num_levels)), t)  # (B, K)
    level_means = level_means.reshape((batch,) + (1,) * (x.ndim - 1) + (num_levels,))
    logits = -0.5 * ((z[..., None] - level_means) / std[..., None]) ** 2
    log_decoder = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), k_int[..., None], -1)[..., 0]
    total = ode.nll + log_q - jnp.sum(log_decoder.reshape(batch, -1), -1)
    return _bound_result(total, ode, valid, num_dims)


def _bound_result(total, ode, valid, num_dims):
    """The discrete bound total (B,) nats as a LikelihoodResult with the ODE's diagnostics."""
    total = nan_where_invalid(total, valid)
    return LikelihoodResult(total, dict(bits_per_dim=total / (num_dims * LN2), ode_nll=ode.nll,
                                        **ode.terms))
