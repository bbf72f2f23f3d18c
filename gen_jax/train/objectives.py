"""Per-example training losses and evaluation NLLs of the three families, from the core.

Each family gives an `Objective` over a model's pure view `apply_fn(params, *inputs)`:
  loss(params, batch, key) -> (B,) what training minimizes (as a batch mean);
  nll(params, batch, key)  -> (B,) nats, -log P(x) (AR, exact) or an upper bound on it (ELBOs),
                              of the discrete data itself, so bits/dim = nll / (D ln 2) for all
                              three families.
Batches are dicts from `gen_jax.data`: {'image': uint8 (B, H, W, C) levels} or
{'tokens': int (B, L)} (optional 'token_mask' (B, L) for padded text).

  'ar'       exact NLL, `core.likelihood.ar_nll` over tokens (images in raster order) with a
             BOS-shifted input (`models.ar.ar_inputs`); loss = NLL in bits/dim.
  'gaussian' VDM continuous-time ELBO (Kingma et al. 2021) with the linear log-SNR schedule
             and a K-level categorical decoder (`core.likelihood.continuous_elbo`);
             loss 'elbo' = ELBO in bits/dim, 'eps_mse' = L_simple (Ho et al. 2020; on this
             linear log-SNR schedule the ELBO's weighting up to a constant) or 'v_mse'
             (Salimans & Ho 2022; weight 1 + SNR on the x0 error, which keeps the low-SNR
             end, where global structure is decided, from being ignored), mean over dims;
             the eval NLL is the ELBO either way.
  'masked'   MD4 / MDLM continuous-time masked-diffusion ELBO (`core.masked.masked_elbo`),
             mask id = vocab size; loss = ELBO in bits/dim.
"""
import dataclasses
from typing import Callable

import jax.numpy as jnp

from gen_jax.core.likelihood import ar_nll, continuous_elbo
from gen_jax.core.units import levels_to_centers, nats_to_bits_per_dim
from gen_jax.core.losses import eps_mse_loss, v_mse_loss
from gen_jax.core.masked import MaskingSchedule, masked_elbo
from gen_jax.core.param import Denoiser
from gen_jax.core.schedules import LinearLogSNR
from gen_jax.core.sde import LogSNRSDE
from gen_jax.models.ar import ar_inputs

FAMILIES = ("ar", "gaussian", "masked")
GAUSSIAN_LOSSES = ("elbo", "eps_mse", "v_mse")


@dataclasses.dataclass(frozen=True)
class Objective:
    """loss / nll: (params, batch, key) -> (B,); num_dims: D of bits/dim."""
    loss: Callable
    nll: Callable
    num_dims: int


def batch_tokens(batch) -> jnp.ndarray:
    """(B, D) int32 tokens: text tokens as they are, image levels flattened in raster order."""
    if "tokens" in batch:
        return batch["tokens"].astype(jnp.int32)
    image = batch["image"]
    return image.reshape(image.shape[0], -1).astype(jnp.int32)


def gaussian_process(logsnr_min: float, logsnr_max: float) -> LogSNRSDE:
    """The VP process of the Gaussian family: alpha^2 = sigmoid(logSNR(t)), logSNR linear from
    logsnr_max at t=0 to logsnr_min at t=1 (VDM's fixed schedule)."""
    return LogSNRSDE(LinearLogSNR(logsnr_max=logsnr_max, logsnr_min=logsnr_min))


def ar_objective(apply_fn, num_levels: int, num_dims: int) -> Objective:
    """AR model `apply_fn(params, tokens (B, D)) -> logits (B, D, V)`; BOS id = V."""

    def nll(params, batch, key):
        del key
        tokens = batch_tokens(batch)
        logits = apply_fn(params, ar_inputs(tokens, num_levels))
        return ar_nll(logits, tokens, batch.get("token_mask"))

    def loss(params, batch, key):
        return nats_to_bits_per_dim(nll(params, batch, key), num_dims)

    return Objective(loss=loss, nll=nll, num_dims=num_dims)


def gaussian_objective(apply_fn, num_levels: int, num_dims: int, *, prediction: str = "eps",
                       loss_type: str = "elbo", logsnr_min: float = -5.0,
                       logsnr_max: float = 13.3) -> Objective:
    """Diffusion model `apply_fn(params, x (B, H, W, C), t (B,)) -> prediction like x`."""
    if loss_type not in GAUSSIAN_LOSSES:
        raise ValueError(f"gaussian loss must be one of {GAUSSIAN_LOSSES}, got {loss_type!r}")
    process = gaussian_process(logsnr_min, logsnr_max)

    def model_fn(params):
        return lambda x, t: apply_fn(params, x, t)

    def nll(params, batch, key):
        denoiser = Denoiser(process, fn=model_fn(params), prediction=prediction)
        total, _ = continuous_elbo(key, denoiser, process, batch["image"].astype(jnp.int32),
                                   num_levels)
        return total

    def loss(params, batch, key):
        if loss_type == "elbo":
            return nats_to_bits_per_dim(nll(params, batch, key), num_dims)
        x0 = levels_to_centers(batch["image"], num_levels)
        if loss_type == "v_mse":
            return v_mse_loss(key, model_fn(params), x0, process, prediction=prediction)
        return eps_mse_loss(key, model_fn(params), x0, process, prediction=prediction)

    return Objective(loss=loss, nll=nll, num_dims=num_dims)


def masked_objective(apply_fn, num_levels: int, num_dims: int, *,
                     schedule: str = "linear") -> Objective:
    """Masked model `apply_fn(params, tokens (B, D) with mask id V, t (B,)) -> logits (B, D, V)`."""
    masking = MaskingSchedule(kind=schedule)

    def nll(params, batch, key):
        logits_fn = lambda x_t, t: apply_fn(params, x_t, t)  # noqa: E731
        return masked_elbo(key, logits_fn, batch_tokens(batch), masking, num_levels).nll

    def loss(params, batch, key):
        return nats_to_bits_per_dim(nll(params, batch, key), num_dims)

    return Objective(loss=loss, nll=nll, num_dims=num_dims)


def make_objective(family: str, apply_fn, spec, objective_config):
    """The `Objective` of `family` for data described by `spec` (a `gen_jax.data.DataSpec`)
    and `objective_config` (the `config.objective` section)."""
    if family == "ar":
        return ar_objective(apply_fn, spec.num_levels, spec.num_dims)
    if family == "gaussian":
        if spec.kind != "image":
            raise ValueError(f"the gaussian family needs image data, got {spec.kind!r} ({spec.name})")
        return gaussian_objective(apply_fn, spec.num_levels, spec.num_dims, prediction=objective_config.prediction,
                                  loss_type=objective_config.gaussian_loss,
                                  logsnr_min=objective_config.logsnr_min,
                                  logsnr_max=objective_config.logsnr_max)
    if family == "masked":
        return masked_objective(apply_fn, spec.num_levels, spec.num_dims,
                                schedule=objective_config.masked_schedule)
    raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
