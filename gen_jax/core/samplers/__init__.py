"""Diffusion samplers. Every sampler takes an explicit PRNG key and a sample shape (B, ...),
runs its fixed steps as ``lax.scan`` (or an in-graph diffrax solve) and returns
``results.SampleResult(samples, nfe)`` (a NamedTuple: ``x, nfe = sampler(...)`` unpacks it).
Call them inside ``jax.jit``, closing over the model. One key gives the same starting noise z
to every sampler (x_T = z times the prior's scale), so deterministic samplers can be compared
on equal footing; ``x_init=`` sets x_T directly.

One argument order for all: ``(key, model, process_or_schedule, shape, num_steps, ...,
*, keywords)``.
- model: for ddpm / ddim / dpm_solver_pp, a ``param.Denoiser`` or a plain ``fn(x, t)`` with
  ``prediction=``, converted with the sampler's own (alpha, sigma); for the score-based
  euler_maruyama / pc / ode / ode_adaptive, a ``score_fn(x, t)`` or a Denoiser (its ``score``);
  for edm_heun, an EDM denoiser D(x, sigma).
- process_or_schedule: a ``schedules.DiscreteSchedule`` (ddpm, ddim) or a continuous process
  (the rest). edm_heun has none: EDM's process x = x_0 + sigma n is fixed.
- num_steps: ddpm has none (it visits all N steps); ode_adaptive has none (tolerances).
Dtype: the state keeps x_init's dtype (float32 when drawn, e.g. bfloat16 when x_init is); each
update is computed in at least float32 and rounded back, noise drawn in that compute dtype.

- discrete DDPM chain: ``ddpm_sample``, ``ddim_sample`` (``ddim_timesteps`` or ``times=``)
- reverse SDE: ``euler_maruyama_sample``, ``pc_sample``
- probability-flow ODE: ``ode_sample`` (Euler / Heun), ``ode_sample_adaptive`` (diffrax),
  ``dpm_solver_pp_sample`` (``dpm_solver_timesteps`` or ``times=``), ``edm_heun_sample``
  (+ ``edm_denoiser``)
- classifier-free guidance: ``guided``
"""
from gen_jax.core.samplers.discrete import SPACINGS, ddim_sample, ddim_timesteps, ddpm_sample
from gen_jax.core.samplers.dpm_solver import SKIP_TYPES, dpm_solver_pp_sample, dpm_solver_timesteps
from gen_jax.core.samplers.edm import edm_denoiser, edm_heun_sample
from gen_jax.core.samplers.guidance import guided
from gen_jax.core.samplers.log_snr_time import time_at_log_snr
from gen_jax.core.samplers.ode import ode_sample, ode_sample_adaptive
from gen_jax.core.samplers.sde_samplers import euler_maruyama_sample, pc_sample

__all__ = [
    "SPACINGS", "SKIP_TYPES", "ddpm_sample", "ddim_sample", "ddim_timesteps",
    "euler_maruyama_sample", "pc_sample", "ode_sample", "ode_sample_adaptive",
    "dpm_solver_pp_sample", "dpm_solver_timesteps", "edm_heun_sample", "edm_denoiser",
    "guided", "time_at_log_snr",
]
