"""Probability-flow ODE samplers (Song et al. 2021, eq. 13): dx/dt = f(x, t) - 1/2 g(t)^2
score(x, t), integrated from t = T to t_min; fixed-step (Euler, Heun) and adaptive (diffrax,
in-graph).

The map from x_T to the result is deterministic; ``key`` only draws x_T (unless x_init is given).
``model`` (a score_fn or a Denoiser) and ``sde`` as in ``sde_samplers``. Call inside ``jax.jit``.
"""
from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp

from gen_jax.core.results import SampleResult
from gen_jax.core.samplers._checks import (
    check_choice, check_init, check_num_steps, check_positive, check_shape, check_t_min,
    compute_dtype)
from gen_jax.core.samplers._continuous import start, tweedie_denoise, uniform_times
from gen_jax.core.samplers._predict import call_checked, resolve_score
from gen_jax.core.timeshape import expand_like

METHODS = ("euler", "heun")
SOLVERS = {"dopri5": diffrax.Dopri5, "tsit5": diffrax.Tsit5}
# Both are 7-stage first-same-as-last Runge-Kutta pairs: 6 new evaluations per attempted step.
_EVALS_PER_STEP = 6


def _flow(sde, score_fn, x, t):
    """PF-ODE drift f - 1/2 g^2 score at (x, t (B,)), like x."""
    drift, diffusion = sde.sde(x, t)
    return drift - 0.5 * expand_like(diffusion**2, x) * call_checked(score_fn, x, t)


def ode_sample(key, model, sde, shape, num_steps, method="euler", t_min=1e-3, *,
               denoise=False, x_init=None):
    """Fixed-step PF-ODE solve from T to t_min.

    Timesteps: num_steps equal steps in t (``linspace(T, t_min, N + 1)``). 'euler': x += d dt;
    'heun': explicit trapezoid (Heun's 2nd-order method) on every step, t_min included.
    denoise=True adds Tweedie's E[x_0 | x_{t_min}] (one score call); default False returns
    x(t_min), the ODE's own endpoint (what PF-ODE likelihoods start from).
    Returns SampleResult(samples like shape, nfe = num_steps * (1 or 2) + denoise).
    """
    shape = check_shape(shape)
    num_steps = check_num_steps(num_steps)
    check_choice(method, METHODS, "method")
    t_min = check_t_min(t_min, sde.T)
    check_init(x_init, shape)
    score_fn = resolve_score(model)
    times = uniform_times(sde, num_steps, t_min)
    x, _ = start(key, sde, shape, x_init)

    def step(x, k):
        t, t_next = jnp.full((shape[0],), times[k]), jnp.full((shape[0],), times[k + 1])
        dt = times[k + 1] - times[k]
        d = _flow(sde, score_fn, x, t)
        x_euler = (x + d * dt).astype(x.dtype)
        if method == "euler":
            return x_euler, None
        return (x + 0.5 * (d + _flow(sde, score_fn, x_euler, t_next)) * dt).astype(x.dtype), None

    x, _ = jax.lax.scan(step, x, jnp.arange(num_steps))
    nfe = num_steps * (1 if method == "euler" else 2)
    if denoise:
        x = tweedie_denoise(sde, score_fn, x, t_min)
    return SampleResult(x, nfe + int(denoise))


def ode_sample_adaptive(key, model, sde, shape, rtol=1e-5, atol=1e-5, solver="dopri5",
                        t_min=1e-3, *, denoise=False, max_steps=4096, x_init=None):
    """Adaptive PF-ODE solve from T to t_min with diffrax (in-graph, no host round trips).

    Timesteps: chosen by a PID step-size controller with tolerances (rtol, atol); the first
    step size by diffrax's initial-step heuristic. solver 'dopri5' (Dormand-Prince 5(4)) or
    'tsit5' (Tsitouras 5(4)). If the solve fails (e.g. more than max_steps steps) the samples
    come back as NaN rather than raising. denoise as in ``ode_sample``. The solve runs in at
    least float32 (step-size control needs the error estimates), the result in x_T's dtype.

    Returns SampleResult(samples like shape, nfe int32 scalar): nfe = 6 per attempted step (accepted or
    rejected) + 1, the number of vector-field evaluations the solve runs (the test counts
    them), + 1 with denoise.
    """
    shape = check_shape(shape)
    check_positive(rtol, "rtol")
    check_positive(atol, "atol")
    check_choice(solver, tuple(SOLVERS), "solver")
    t_min = check_t_min(t_min, sde.T)
    max_steps = check_num_steps(max_steps, name="max_steps")
    check_init(x_init, shape)
    score_fn = resolve_score(model)
    x, _ = start(key, sde, shape, x_init)
    dtype = x.dtype

    def vector_field(t, y, args):
        return _flow(sde, score_fn, y, jnp.full((shape[0],), t, y.dtype))

    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field), SOLVERS[solver](), t0=sde.T, t1=t_min, dt0=None,
        y0=x.astype(compute_dtype(x)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        saveat=diffrax.SaveAt(t1=True), max_steps=max_steps, throw=False)
    ok = solution.result == diffrax.RESULTS.successful
    x = jnp.where(ok, solution.ys[-1], jnp.nan).astype(dtype)
    nfe = _EVALS_PER_STEP * solution.stats["num_steps"] + 1
    if denoise:
        x = tweedie_denoise(sde, score_fn, x, t_min)
    return SampleResult(x, (nfe + int(denoise)).astype(jnp.int32))
