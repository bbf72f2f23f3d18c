"""Fixed-grid samplers of a flow model's ODE dx/dt = v(x, t) (Lipman et al. 2023; Liu et al.
2023): Euler and Heun's explicit trapezoid on any decreasing time grid, integrated from
times[0] (usually the path's T) to times[-1] (0 is allowed: the velocity is finite there, and an
Euler step to t=0 lands on x - t v = E[x_0 | x_t] for the linear path).

velocity_fn(x (B, ...), t (B,)) -> like x. process: an ``core.flow.AffinePath`` (or anything with
``prior_sample``); x starts at ``process.prior_sample`` drawn from the first half of
``jax.random.split(key)``, as every other sampler does, so one key gives every sampler the same
noise. Call inside ``jax.jit``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core.results import SampleResult
from gen_jax.core.samplers._checks import check_init, check_shape
from gen_jax.core.samplers._continuous import start
from gen_jax.core.samplers._predict import call_checked


def check_times(times):
    """times as a float array (N + 1,), N >= 1; a concrete grid must decrease strictly and lie in
    [0, 1] (ValueError naming `times`). Traced grids are not inspected."""
    if isinstance(times, jax.core.Tracer):
        grid = times
    else:
        values = np.asarray(times, np.float64)
        if values.ndim != 1 or values.shape[0] < 2:
            raise ValueError(f"times must be a 1-D grid of N + 1 >= 2 times, got shape {values.shape}")
        if not np.all(np.diff(values) < 0):
            raise ValueError(f"times must decrease strictly (noise to data), got {values}")
        if values.min() < 0.0 or values.max() > 1.0:
            raise ValueError(f"times must lie in [0, 1], got [{values.min()}, {values.max()}]")
        grid = values
    grid = jnp.asarray(grid, jnp.result_type(float))
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(f"times must be a 1-D grid of N + 1 >= 2 times, got shape {grid.shape}")
    return grid


def _integrate(key, velocity_fn, process, shape, times, x_init, heun: bool):
    shape = check_shape(shape)
    times = check_times(times)
    check_init(x_init, shape)
    x, _ = start(key, process, shape, x_init)
    batch = shape[0]

    def step(x, k):
        t, t_next = jnp.full((batch,), times[k]), jnp.full((batch,), times[k + 1])
        h = times[k + 1] - times[k]
        d = call_checked(velocity_fn, x, t)
        x_euler = x + h * d
        if not heun:
            return x_euler, None
        return x + 0.5 * h * (d + call_checked(velocity_fn, x_euler, t_next)), None

    num_steps = times.shape[0] - 1
    x, _ = jax.lax.scan(step, x, jnp.arange(num_steps))
    return SampleResult(x, num_steps * (2 if heun else 1))


def flow_euler_sample(key, velocity_fn, process, shape, times, *, x_init=None) -> SampleResult:
    """Euler: x <- x + (t_{k+1} - t_k) v(x, t_k) over the grid. Returns SampleResult(x at
    times[-1] (like shape), nfe = N), N = len(times) - 1. First order in the step size."""
    return _integrate(key, velocity_fn, process, shape, times, x_init, heun=False)


def flow_heun_sample(key, velocity_fn, process, shape, times, *, x_init=None) -> SampleResult:
    """Heun (explicit trapezoid) on every step, the last included: x_e = x + h v(x, t_k),
    x <- x + h/2 (v(x, t_k) + v(x_e, t_{k+1})). Returns SampleResult(x, nfe = 2 N). Second
    order in the step size."""
    return _integrate(key, velocity_fn, process, shape, times, x_init, heun=True)


__all__ = ["check_times", "flow_euler_sample", "flow_heun_sample"]
