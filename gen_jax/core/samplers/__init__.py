"""Diffusion samplers. Every sampler takes an explicit PRNG key and a sample shape (B, ...),
runs its fixed steps as ``lax.scan`` (or an in-graph diffrax solve) and returns
(samples, NFE). Call them inside ``jax.jit``, closing over the model. One key gives the same
starting noise z to every sampler (x_T = z times the prior's scale), so deterministic samplers
can be compared on equal footing; ``x_init=`` sets x_T directly.

- discrete DDPM chain: ``ddpm_sample``, ``ddim_sample`` (``ddim_timesteps``)
- reverse SDE: ``euler_maruyama_sample``, ``pc_sample``
- probability-flow ODE: ``ode_sample`` (Euler / Heun), ``ode_sample_adaptive`` (diffrax),
  ``dpm_solver_pp_sample``, ``edm_heun_sample`` (+ ``edm_denoiser``)
- classifier-free guidance: ``guided``
"""
from gen_jax.core.samplers.discrete import SPACINGS, ddim_sample, ddim_timesteps, ddpm_sample
from gen_jax.core.samplers.dpm_solver import dpm_solver_pp_sample
from gen_jax.core.samplers.edm import edm_denoiser, edm_heun_sample
from gen_jax.core.samplers.guidance import guided
from gen_jax.core.samplers.log_snr_time import time_at_log_snr
from gen_jax.core.samplers.ode import ode_sample, ode_sample_adaptive
from gen_jax.core.samplers.sde_samplers import euler_maruyama_sample, pc_sample

__all__ = [
    "SPACINGS", "ddpm_sample", "ddim_sample", "ddim_timesteps", "euler_maruyama_sample",
    "pc_sample", "ode_sample", "ode_sample_adaptive", "dpm_solver_pp_sample",
    "edm_heun_sample", "edm_denoiser", "guided", "time_at_log_snr",
]
