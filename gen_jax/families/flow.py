"""The flow-matching family (Lipman et al. 2023; Liu et al. 2023, rectified flow): the linear
path x_t = (1 - t) x_0 + t eps (`core.flow.linear_path`) over K-level images at bin centres; the
Gaussian family's DiT, its output read as the velocity v(x_t, t), trained by the conditional
flow-matching loss with t uniform or logit-normal (Esser et al. 2024).

The ODE dx/dt = v is the model, so its likelihood is the flow's own; estimators, all of
-log2 P(discrete x) / D:
  continuous-time ELBO (VDM, log-SNR view)  `core.flow.flow_elbo`: the bound of the path's
                         reverse SDE with the model's eps = x + (1 - t) v, the decoder at
                         `eval.t_min` and the prior at T = 1 - 1e-5, sampled uniformly in log-SNR
  PF-ODE NLL             `pf_ode_bits_per_dim` with the path as the process and the model's
                         score -(x + (1 - t) v) / t: the flow's density at t_min, dequantized by
                         the forward process at t_min (a bound for any t_min); adaptive Dopri5;
                         again at a 10x tighter tolerance with the same probes as a convergence check
ELBO >= PF-ODE NLL is not a theorem (the two are different models unless v is exact).
Samplers: Euler and Heun on the uniform grid from T to 0, DPM-Solver++(2M) through the log-SNR
view (x0 = x - t v) and the adaptive PF-ODE (diffrax) to `sample.t_min`; outputs are rounded to
the nearest of the K levels.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax.core.flow import T_SAMPLINGS, flow_elbo, flow_matching_loss, linear_path
from gen_jax.core.ode_likelihood import pf_ode_bits_per_dim
from gen_jax.core.param import Denoiser
from gen_jax.core.results import SampleResult
from gen_jax.core.samplers import dpm_solver_pp_sample, ode_sample_adaptive
from gen_jax.core.samplers.flow_ode import flow_euler_sample, flow_heun_sample
from gen_jax.core.units import centers_to_levels, levels_to_centers
from gen_jax.families.base import (UPPER_BOUND, Estimator, Family, Sampler, choice, positive_float,
                                   positive_int)
from gen_jax.families.registry import register
from gen_jax.models.gaussian import DiffusionTransformer

PROBES = ("rademacher", "gaussian")
DIVERGENCES = ("hutchinson", "exact")
FIXED_SAMPLERS = {"Euler": "euler_steps", "Heun": "heun_steps", "DPM-Solver++(2M)": "dpm_steps"}


class VelocityTransformer(DiffusionTransformer):
    """The DiT (same parameters) whose output is the velocity v(x_t, t) of a flow path."""

    def __init__(self, config, image_shape, *, patch_size=1, rngs):
        super().__init__(config, image_shape, patch_size=patch_size, rngs=rngs)
        self.prediction = "velocity"


def _t_min(section, prefix, field):
    value = section[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 0.5:
        raise ValueError(f"config.{prefix}.{field} must be in (0, 0.5), got {value!r}")


def _int_tuple(section, prefix, field, minimum):
    for n in section[field]:
        if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
            raise ValueError(f"config.{prefix}.{field} must hold integers >= {minimum}, got {n!r}")


class FlowMatchingFamily(Family):
    name = "flow"
    data_kinds = ("image",)

    def default_config(self):
        c = ml_collections.ConfigDict()
        c.t_sampling = "uniform"  # training times: 'uniform' (Lipman et al.) | 'logit_normal' (SD3)
        c.logit_normal_m = 0.0  # logit-normal t = sigmoid(m + s n), n ~ N(0, 1): location m
        c.logit_normal_s = 1.0  # ... and scale s > 0 (SD3: m = 0, s = 1)
        c.eval = ml_collections.ConfigDict()
        c.eval.t_min = 1e-3  # decoder / dequantization time of both estimators (sigma = t_min)
        c.eval.ode_examples = 16  # held-out examples of the PF-ODE NLL (costly)
        c.eval.ode_tolerance = 1e-6  # rtol = atol of the adaptive solve (as gaussian: converged)
        c.eval.ode_check_examples = 8  # re-solved at a 10x tighter tolerance: converged?
        c.eval.ode_divergence = "hutchinson"  # 'hutchinson' (one probe) | 'exact' (D jvps)
        c.eval.ode_probe = "rademacher"  # Hutchinson probe: 'rademacher' | 'gaussian'
        # Sweep sized to keep the 4-family `experiments.compare` near its 5-minute CPU budget.
        c.sample = ml_collections.ConfigDict()
        c.sample.euler_steps = (8, 16, 32)  # Euler steps (NFE = steps), uniform in t from T to 0
        c.sample.heun_steps = (8,)  # Heun steps (NFE = 2 steps), same grid
        c.sample.dpm_steps = (8, 16)  # DPM-Solver++(2M) steps (NFE = steps), to t_min
        c.sample.ode_tolerances = (1e-2,)  # rtol = atol of the adaptive ODE sampler
        c.sample.t_min = 1e-3  # where DPM-Solver++ and the adaptive ODE stop
        return c

    def validate(self, config):
        s = self.section(config)
        choice(s, "flow", "t_sampling", T_SAMPLINGS)
        if isinstance(s.logit_normal_m, bool) or not isinstance(s.logit_normal_m, (int, float)):
            raise ValueError(f"config.flow.logit_normal_m must be a number, got {s.logit_normal_m!r}")
        positive_float(s, "flow", "logit_normal_s")
        _t_min(s.eval, "flow.eval", "t_min")
        for field in ("ode_examples", "ode_check_examples"):
            positive_int(s.eval, "flow.eval", field)
        positive_float(s.eval, "flow.eval", "ode_tolerance")
        choice(s.eval, "flow.eval", "ode_divergence", DIVERGENCES)
        choice(s.eval, "flow.eval", "ode_probe", PROBES)
        _int_tuple(s.sample, "flow.sample", "euler_steps", 1)
        _int_tuple(s.sample, "flow.sample", "heun_steps", 1)
        _int_tuple(s.sample, "flow.sample", "dpm_steps", 2)
        for tol in s.sample.ode_tolerances:
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
                raise ValueError(f"config.flow.sample.ode_tolerances must be > 0, got {tol!r}")
        _t_min(s.sample, "flow.sample", "t_min")

    def smoke(self, config):
        s = self.section(config)
        s.eval.ode_examples, s.eval.ode_check_examples, s.eval.ode_tolerance = 24, 12, 1e-3
        s.sample.euler_steps, s.sample.heun_steps, s.sample.dpm_steps = (4, 8), (2, 4), (4, 8)
        s.sample.ode_tolerances = (1e-1,)

    def model_options(self, config):
        return dict(patch_size=config.model.patch_size)

    def model(self, backbone, data_shape, num_levels=None, *, rngs, patch_size=1):
        data_shape = tuple(data_shape)
        if len(data_shape) != 3:
            raise ValueError(f"family 'flow' needs data_shape (H, W, C), got {data_shape}")
        h, w, _ = data_shape
        length = (h // patch_size) * (w // patch_size)
        backbone = dataclasses.replace(backbone, causal=False, time_conditioning=True,
                                       max_len=max(backbone.max_len, length))
        return VelocityTransformer(backbone, data_shape, patch_size=patch_size, rngs=rngs)

    def loss(self, view, spec, config):
        s = self.section(config)
        path = linear_path()

        def loss(params, batch, key):
            x0 = levels_to_centers(batch["image"], spec.num_levels)
            return flow_matching_loss(key, lambda x, t: view.apply(params, x, t), x0, path,
                                      t_sampling=s.t_sampling, m=s.logit_normal_m,
                                      s=s.logit_normal_s)
        return loss

    def estimators(self, view, spec, config):
        e = self.section(config).eval
        path = linear_path()
        K = spec.num_levels

        def elbo(params, batch, key):
            return flow_elbo(key, path, lambda x, t: view.apply(params, x, t),
                             batch["image"].astype(jnp.int32), K, t_min=e.t_min, antithetic=False)

        def pf_ode(tolerance):
            def fn(params, batch, key):
                score = Denoiser(path, fn=lambda x, t: view.apply(params, x, t),
                                 prediction="velocity").score
                return pf_ode_bits_per_dim(
                    key, path, score, batch["image"].astype(jnp.int32), K,
                    divergence=e.ode_divergence, probe=e.ode_probe, rtol=tolerance,
                    atol=tolerance, t_min=e.t_min, dequantization="forward")
            return fn

        ode_name = f"PF-ODE NLL (rtol=atol={e.ode_tolerance:g})"
        return [
            Estimator("continuous-time ELBO (VDM, log-SNR view)", UPPER_BOUND, elbo),
            Estimator(ode_name, UPPER_BOUND, pf_ode(e.ode_tolerance), repeated=False,
                      max_examples=e.ode_examples),
            Estimator(f"PF-ODE NLL (rtol=atol={e.ode_tolerance / 10:g})", UPPER_BOUND,
                      pf_ode(e.ode_tolerance / 10), repeated=False,
                      max_examples=e.ode_check_examples, convergence_check_of=ode_name),
        ]

    def _sampler(self, view, spec, s, name, setting):
        """`Sampler` for Euler / Heun / DPM-Solver++(2M) at `setting` steps, or the adaptive
        ODE at tolerance `setting`, all started from the same noise."""
        path = linear_path()
        K, shape = spec.num_levels, tuple(spec.shape)
        t_min = s.sample.t_min

        @functools.partial(jax.jit, static_argnums=2)
        def sample(params, key, num):
            velocity = lambda x, t: view.apply(params, x, t)  # noqa: E731
            full = (num,) + shape
            if name in ("Euler", "Heun"):
                run = flow_euler_sample if name == "Euler" else flow_heun_sample
                x, nfe = run(key, velocity, path, full, jnp.linspace(path.T, 0.0, setting + 1))
            elif name == "DPM-Solver++(2M)":
                x, nfe = dpm_solver_pp_sample(key, Denoiser(path, velocity, "velocity"), path,
                                              full, setting, t_min=t_min)
            else:
                x, nfe = ode_sample_adaptive(key, Denoiser(path, velocity, "velocity"), path, full,
                                             rtol=setting, atol=setting, t_min=t_min)
            return SampleResult(centers_to_levels(x, K), nfe)

        label = f"rtol=atol={setting:g}" if name == "adaptive ODE" else f"{setting} steps"
        return Sampler(name, label, sample)

    def samplers(self, view, spec, config):
        s = self.section(config)
        runs = [self._sampler(view, spec, s, name, n) for name, field in FIXED_SAMPLERS.items()
                for n in s.sample[field]]
        return runs + [self._sampler(view, spec, s, "adaptive ODE", tol)
                       for tol in s.sample.ode_tolerances]

    def default_sampler(self, view, spec, config):
        return self._sampler(view, spec, self.section(config), "Heun",
                             max(1, config.sample.num_steps // 2))


register(FlowMatchingFamily())
