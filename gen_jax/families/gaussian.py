"""The Gaussian-diffusion family: a VP process with VDM's linear log-SNR schedule (Kingma et al.
2021), alpha^2 = sigmoid(logSNR(t)), logSNR linear from `logsnr_max` at t=0 to `logsnr_min` at
t=1, over K-level images at bin centres; a DiT (or U-Net) predicting eps, v or x0.

Estimators, all of -log2 P(discrete x) / D:
  continuous-time ELBO (VDM)   `core.likelihood.continuous_elbo`: the reverse SDE's bound, with a
                               K-level categorical decoder and the prior KL at t=1
  T-step ELBO (VDM)            `discrete_time_elbo`: the bound of the T-step chain
  discrete-time VLB (Ho)       the N-step DDPM chain of the same process, with a discretized-
                               Gaussian decoder: `vlb_importance_sampled` (one step per draw from
                               `vlb_step_proposal`, unbiased) or, with `eval.vlb_full`, the exact
                               sum over steps `vlb_terms_full` (N model calls per example) on the
                               first `eval.vlb_full_examples`
  PF-ODE NLL (Song et al.)     `pf_ode_bits_per_dim`: the ODE flow's own likelihood, dequantized
                               by the forward process at t_min (a bound for any t_min), adaptive
                               Dopri5, Hutchinson trace; again at `eval.ode_check_tolerance`
                               (10x tighter) on a subset with the same probes and dequantization
                               draws as a convergence check
PF-ODE defaults (measured on digits, 500 steps, first 24 test examples, same probes and draws):
rtol = atol = 1e-6 at t_min = 1e-5 (logSNR 8, the decoder's point) agrees with 1e-7 to
+0.002 +- 0.001 bits/dim (NFE ~1400, ~0.7 s/example on a 2-core CPU); 1e-5 is low by 0.003-0.024
depending on the trained model (a few examples by up to 0.18), 1e-4 by 0.02-0.05 and 1e-3 by ~0.1
(loose solves of the learned net underestimate; the exact score converges even at 1e-2). t_min
only moves the bound: t_min = 1e-5 is within 0.01 of the truth for the exact score of K-level
data (t_min = 0.1 is 0.16 above it).
Training: loss 'elbo' (the continuous ELBO in bits/dim), 'eps_mse' (L_simple; on this schedule the
ELBO's weighting up to a constant) or 'v_mse' (Salimans & Ho 2022). Samplers: DDPM, DDIM,
DPM-Solver++(2M) at each NFE of `sample.nfe` and the adaptive PF-ODE at each tolerance; outputs are
rounded to the nearest of the K levels.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax.core.likelihood import (continuous_elbo, discrete_time_elbo, vlb_importance_sampled,
                                     vlb_terms_full)
from gen_jax.core.losses import eps_mse_loss, v_mse_loss
from gen_jax.core.ode_likelihood import pf_ode_bits_per_dim
from gen_jax.core.param import Denoiser
from gen_jax.core.results import SampleResult
from gen_jax.core.samplers import (ddim_sample, ddpm_sample, dpm_solver_pp_sample,
                                   ode_sample_adaptive)
from gen_jax.core.schedules import LinearLogSNR, discretize_process
from gen_jax.core.sde import LogSNRSDE
from gen_jax.core.units import centers_to_levels, levels_to_centers, nats_to_bits_per_dim
from gen_jax.families.base import (UPPER_BOUND, Estimator, Family, Sampler, choice, positive_float,
                                   positive_int)
from gen_jax.families.registry import register
from gen_jax.models.gaussian import DiffusionTransformer
from gen_jax.models.unet import UNet

LOSSES = ("elbo", "eps_mse", "v_mse")
PREDICTIONS = ("eps", "v", "x0")
BACKBONES = ("transformer", "unet")
PROBES = ("rademacher", "gaussian")


def process_of(section) -> LogSNRSDE:
    """The family's VP process from its config section (VDM's fixed linear log-SNR)."""
    return LogSNRSDE(LinearLogSNR(logsnr_max=section.logsnr_max, logsnr_min=section.logsnr_min))


class GaussianDiffusionFamily(Family):
    name = "gaussian"
    data_kinds = ("image",)

    def default_config(self):
        c = ml_collections.ConfigDict()
        c.loss = "elbo"  # 'elbo' | 'eps_mse' | 'v_mse' (the eval NLL is the ELBO either way)
        c.prediction = "eps"  # what the network predicts: 'eps' | 'v' | 'x0' (same bound)
        c.logsnr_min = -5.0  # log-SNR at t=1 (VDM's gamma_max = 5)
        c.logsnr_max = 13.3  # log-SNR at t=0 (VDM's value for 256 levels)
        c.backbone = "transformer"  # 'transformer' (DiT, sized by config.model) | 'unet'
        c.unet_channels = 32  # base channels of the U-Net backbone
        c.eval = ml_collections.ConfigDict()
        c.eval.vlb_steps = 1000  # N of Ho et al.'s discrete VLB and T of VDM's T-step ELBO
        c.eval.vlb_full = False  # True: the exact sum over the N steps (N model calls / example)
        c.eval.vlb_full_examples = 120  # held-out examples of the exact sum (when vlb_full)
        c.eval.ode_examples = 24  # held-out examples of the PF-ODE NLL (costly)
        c.eval.ode_tolerance = 1e-6  # rtol = atol of the adaptive solve (converged on digits)
        c.eval.ode_check_tolerance = 1e-7  # the convergence check's (tighter) rtol = atol
        c.eval.ode_check_examples = 12  # the first ones, re-solved at ode_check_tolerance
        c.eval.ode_t_min = 1e-5  # where the ODE starts (and the dequantization time)
        c.eval.ode_probe = "rademacher"  # Hutchinson probe: 'rademacher' | 'gaussian'
        c.sample = ml_collections.ConfigDict()
        c.sample.nfe = (8, 16, 32)  # steps of DDPM, DDIM and DPM-Solver++ in the sweep
        c.sample.ode_tolerances = (1e-1, 1e-2)  # rtol = atol of the adaptive ODE sampler
        return c

    def validate(self, config):
        s = self.section(config)
        choice(s, "gaussian", "loss", LOSSES)
        choice(s, "gaussian", "prediction", PREDICTIONS)
        choice(s, "gaussian", "backbone", BACKBONES)
        positive_int(s, "gaussian", "unet_channels")
        if not s.logsnr_max > s.logsnr_min:
            raise ValueError(f"config.gaussian.logsnr_max ({s.logsnr_max}) must exceed "
                             f"config.gaussian.logsnr_min ({s.logsnr_min})")
        for field in ("vlb_steps", "vlb_full_examples", "ode_examples", "ode_check_examples"):
            positive_int(s.eval, "gaussian.eval", field)
        if not isinstance(s.eval.vlb_full, bool):
            raise ValueError(f"config.gaussian.eval.vlb_full must be True or False, got {s.eval.vlb_full!r}")
        positive_float(s.eval, "gaussian.eval", "ode_tolerance")
        positive_float(s.eval, "gaussian.eval", "ode_check_tolerance")
        if not s.eval.ode_check_tolerance < s.eval.ode_tolerance:
            raise ValueError(f"config.gaussian.eval.ode_check_tolerance ({s.eval.ode_check_tolerance}) "
                             f"must be below config.gaussian.eval.ode_tolerance ({s.eval.ode_tolerance}): "
                             f"the check re-solves more accurately")
        if s.eval.ode_check_examples > s.eval.ode_examples:
            raise ValueError(f"config.gaussian.eval.ode_check_examples ({s.eval.ode_check_examples}) "
                             f"must not exceed config.gaussian.eval.ode_examples ({s.eval.ode_examples})")
        if not 0.0 < s.eval.ode_t_min < 1.0:
            raise ValueError(f"config.gaussian.eval.ode_t_min must be in (0, 1), got {s.eval.ode_t_min!r}")
        choice(s.eval, "gaussian.eval", "ode_probe", PROBES)
        for n in s.sample.nfe:
            if isinstance(n, bool) or not isinstance(n, int) or n < 2:
                raise ValueError(f"config.gaussian.sample.nfe must hold integers >= 2, got {n!r}")
        for tol in s.sample.ode_tolerances:
            if not isinstance(tol, (int, float)) or not tol > 0:
                raise ValueError(f"config.gaussian.sample.ode_tolerances must be > 0, got {tol!r}")

    def smoke(self, config):
        s = self.section(config)
        s.eval.vlb_steps, s.eval.ode_examples, s.eval.ode_check_examples = 100, 24, 12
        s.eval.vlb_full, s.eval.vlb_full_examples = False, 24
        s.eval.ode_tolerance, s.eval.ode_check_tolerance = 1e-3, 1e-4
        s.sample.nfe, s.sample.ode_tolerances = (4, 8), (1e-1,)

    def model_options(self, config):
        s = self.section(config)
        return dict(patch_size=config.model.patch_size, prediction=s.prediction,
                    backbone_kind=s.backbone, unet_channels=s.unet_channels)

    def model(self, backbone, data_shape, num_levels=None, *, rngs, patch_size=1,
              prediction="eps", backbone_kind="transformer", unet_channels=32):
        data_shape = tuple(data_shape)
        if len(data_shape) != 3:
            raise ValueError(f"family 'gaussian' needs data_shape (H, W, C), got {data_shape}")
        if backbone_kind == "unet":
            return UNet(data_shape, base_channels=unet_channels, prediction=prediction, rngs=rngs)
        h, w, _ = data_shape
        length = (h // patch_size) * (w // patch_size)
        backbone = dataclasses.replace(backbone, causal=False, time_conditioning=True,
                                       max_len=max(backbone.max_len, length))
        return DiffusionTransformer(backbone, data_shape, patch_size=patch_size,
                                    prediction=prediction, rngs=rngs)

    def _denoiser(self, view, section, params):
        return Denoiser(process_of(section), fn=lambda x, t: view.apply(params, x, t),
                        prediction=section.prediction)

    def loss(self, view, spec, config):
        s = self.section(config)
        process = process_of(s)
        elbo = self._elbo(view, spec, s, antithetic=True)  # stratified t: lower-variance loss
        if s.loss == "elbo":
            return lambda p, b, k: nats_to_bits_per_dim(elbo(p, b, k).nll, spec.num_dims)
        mse = v_mse_loss if s.loss == "v_mse" else eps_mse_loss

        def loss(params, batch, key):
            x0 = levels_to_centers(batch["image"], spec.num_levels)
            return mse(key, lambda x, t: view.apply(params, x, t), x0, process,
                       prediction=s.prediction)
        return loss

    def _elbo(self, view, spec, s, antithetic=False):
        def elbo(params, batch, key):
            return continuous_elbo(key, self._denoiser(view, s, params), process_of(s),
                                   batch["image"].astype(jnp.int32), spec.num_levels,
                                   antithetic=antithetic)
        return elbo

    def estimators(self, view, spec, config):
        s = self.section(config)
        e = s.eval
        process = process_of(s)
        K = spec.num_levels

        def discrete_elbo(params, batch, key):
            return discrete_time_elbo(key, self._denoiser(view, s, params), process,
                                      batch["image"].astype(jnp.int32), K, e.vlb_steps,
                                      antithetic=False)

        chain = discretize_process(process, e.vlb_steps)

        def vlb(params, batch, key):
            estimator = vlb_terms_full if e.vlb_full else vlb_importance_sampled
            return estimator(key, self._denoiser(view, s, params), chain,
                             batch["image"].astype(jnp.int32), K)

        def pf_ode(tolerance):
            def fn(params, batch, key):
                return pf_ode_bits_per_dim(
                    key, process, self._denoiser(view, s, params).score,
                    batch["image"].astype(jnp.int32), K, divergence="hutchinson",
                    probe=e.ode_probe, rtol=tolerance, atol=tolerance, t_min=e.ode_t_min,
                    dequantization="forward")
            return fn

        ode_name = f"PF-ODE NLL (rtol=atol={e.ode_tolerance:g})"
        vlb_name = f"discrete-time VLB (Ho et al., N={e.vlb_steps}, " + (
            "full sum)" if e.vlb_full else "IS step)")
        return [
            Estimator("continuous-time ELBO (VDM)", UPPER_BOUND, self._elbo(view, spec, s)),
            Estimator(f"{e.vlb_steps}-step ELBO (VDM)", UPPER_BOUND, discrete_elbo),
            Estimator(vlb_name, UPPER_BOUND, vlb, repeated=not e.vlb_full,
                      max_examples=e.vlb_full_examples if e.vlb_full else 0),
            Estimator(ode_name, UPPER_BOUND, pf_ode(e.ode_tolerance), repeated=False,
                      max_examples=e.ode_examples),
            Estimator(f"PF-ODE NLL (rtol=atol={e.ode_check_tolerance:g})", UPPER_BOUND,
                      pf_ode(e.ode_check_tolerance), repeated=False,
                      max_examples=e.ode_check_examples, convergence_check_of=ode_name),
        ]

    def _sampler(self, view, spec, s, name, setting):
        """`Sampler` for one of DDPM / DDIM / DPM-Solver++(2M) at NFE `setting`, or the
        adaptive ODE at tolerance `setting`, started from the same noise for every sampler."""
        process = process_of(s)
        K, shape = spec.num_levels, tuple(spec.shape)

        @functools.partial(jax.jit, static_argnums=2)
        def sample(params, key, num):
            denoiser = self._denoiser(view, s, params)
            full = (num,) + shape
            if name == "DDPM":
                x, nfe = ddpm_sample(key, denoiser, discretize_process(process, setting), full,
                                     clip_x0=1.0)
            elif name == "DDIM":
                x, nfe = ddim_sample(key, denoiser, discretize_process(process, 1000), full,
                                     setting, eta=0.0, clip_x0=1.0)
            elif name == "DPM-Solver++(2M)":
                x, nfe = dpm_solver_pp_sample(key, denoiser, process, full, setting)
            else:
                x, nfe = ode_sample_adaptive(key, denoiser, process, full, rtol=setting,
                                             atol=setting)
            return SampleResult(centers_to_levels(x, K), nfe)

        label = f"rtol=atol={setting:g}" if name == "adaptive ODE" else f"{setting} steps"
        return Sampler(name, label, sample)

    def samplers(self, view, spec, config):
        s = self.section(config)
        runs = [self._sampler(view, spec, s, name, n) for name in ("DDPM", "DDIM", "DPM-Solver++(2M)")
                for n in s.sample.nfe]
        return runs + [self._sampler(view, spec, s, "adaptive ODE", tol)
                       for tol in s.sample.ode_tolerances]

    def default_sampler(self, view, spec, config):
        return self._sampler(view, spec, self.section(config), "DPM-Solver++(2M)",
                             config.sample.num_steps)


register(GaussianDiffusionFamily())
