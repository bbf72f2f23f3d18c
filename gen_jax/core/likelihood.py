"""Likelihoods of discrete data: AR NLL, discrete-time VLB, continuous and T-step VDM ELBOs.

Every likelihood returns per-example **nats** (``ar_nll``: a (B,) array, since it is a pure
function of logits; the others: a ``results.LikelihoodResult(nll (B,), terms)``, which unpacks
as ``nll, terms``). ``gen_jax.core.units`` turns nats into bits per dimension, so numbers from
different model families are the same quantity: -log2 P(discrete data) / D, exactly (AR NLL)
or as an upper bound (VLB, ELBO; the PF-ODE bound is in ``ode_likelihood``).

Data conventions (``units``): K-level data k in {0..K-1} sits at bin centres x = (2k+1)/K - 1
in [-1, 1]; each bin has width 2/K. Continuous time t in [0, 1], t=0 data, t=1 noise.

Bad data follows the policy of ``gen_jax.core``: concrete out-of-range ids or levels raise
ValueError; traced ones (inside jit) give nll = NaN for the affected examples.

Which number bounds which:
- ``ar_nll``: exact -log P(x) of the AR model.
- ``vlb_terms_full`` / ``vlb_one_t`` / ``vlb_importance_sampled`` (Ho et al. 2020; Nichol & Dhariwal 2021) and
  ``continuous_elbo`` / ``discrete_time_elbo`` (Kingma et al. 2021, VDM): upper bounds on
  -log P(discrete x) of the reverse-process model (their decoders are distributions over the K
  levels, so no dequantization term is needed).
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from gen_jax.core.checks import check_int, ids_in_range, is_concrete, nan_where_invalid
from gen_jax.core.losses import sample_times
from gen_jax.core.results import LikelihoodResult
from gen_jax.core.schedules import LogSNRSchedule
from gen_jax.core.sde import LogSNRSDE, VPSDE
from gen_jax.core.timeshape import expand_like
from gen_jax.core.units import check_levels, check_num_levels, levels_to_centers

__all__ = [
    "ar_nll",
    "check_token_ids",
    "token_weighted_mean",
    "perplexity",
    "gaussian_kl",
    "discretized_gaussian_log_likelihood",
    "vlb_terms_full",
    "vlb_one_t",
    "vlb_step_proposal",
    "vlb_importance_sampled",
    "continuous_elbo",
    "discrete_time_elbo",
    "vdm_reconstruction_nll",
]


# --------------------------------------------------------------------------------------------
# Autoregressive NLL
# --------------------------------------------------------------------------------------------
def ar_nll(logits, targets, mask=None):
    """Per-example autoregressive negative log-likelihood in nats.

    Args:
      logits: (B, L, V) unnormalized log-probabilities; position i scores targets[:, i].
      targets: (B, L) integer token ids in [0, V) (positions with mask 0 are not checked).
        Concrete out-of-range ids raise ValueError; traced ones give NaN for their example.
      mask: optional (B, L) weights (1 = count the position, 0 = padding).

    Returns:
      (B,) nats: -sum_i mask_i log softmax(logits)[i, targets_i].
    """
    if logits.ndim != 3:
        raise ValueError(f"logits must be (B, L, V); got shape {logits.shape}")
    if targets.shape != logits.shape[:2]:
        raise ValueError(f"targets shape {targets.shape} must equal logits.shape[:2] = {logits.shape[:2]}")
    if mask is not None and mask.shape != targets.shape:
        raise ValueError(f"mask shape {mask.shape} must equal targets shape {targets.shape}")
    valid = ids_in_range(targets, logits.shape[-1], "targets", mask)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1)
    token_ll = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    if mask is not None:
        token_ll = token_ll * mask.astype(token_ll.dtype)
    return nan_where_invalid(-jnp.sum(token_ll, axis=-1), valid)


def check_token_ids(targets, vocab_size: int):
    """Eager (not jit-able) check that every id lies in [0, vocab_size); raises ValueError."""
    vocab_size = check_int(vocab_size, "vocab_size")
    lo, hi = int(jnp.min(targets)), int(jnp.max(targets))
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}); found range [{lo}, {hi}]")


def token_weighted_mean(nll, num_tokens):
    """Corpus-level mean NLL per token: sum(nll) / sum(num_tokens) (flax lm1b / MaxText).

    Args: nll (B,) nats per example; num_tokens (B,) counted tokens per example.
    Returns: scalar nats per token.
    """
    if nll.shape != num_tokens.shape:
        raise ValueError(f"nll shape {nll.shape} must equal num_tokens shape {num_tokens.shape}")
    return jnp.sum(nll) / jnp.sum(num_tokens)


def perplexity(nats_per_token):
    """exp(mean NLL per token in nats)."""
    return jnp.exp(nats_per_token)


# --------------------------------------------------------------------------------------------
# Gaussian helpers and the discretized Gaussian decoder
# --------------------------------------------------------------------------------------------
def gaussian_kl(mean1, logvar1, mean2, logvar2):
    """Elementwise KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) in nats (broadcasting)."""
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + jnp.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * jnp.exp(-logvar2)
    )


def discretized_gaussian_log_likelihood(k_int, mean, log_scale, num_levels: int):
    """Elementwise log P(k) of K-level data under a discretized Gaussian (Ho et al. 2020).

    Level k owns the interval [c_k - 1/K, c_k + 1/K] around its centre c_k = (2k+1)/K - 1;
    level 0 extends to -inf and level K-1 to +inf, so the K probabilities sum to 1. Each
    probability is clamped at 1e-12 before the log.

    Args: k_int ints; mean, log_scale (log std) broadcastable to k_int. Returns log-probs (nats).
    """
    num_levels = check_num_levels(num_levels)
    centre = levels_to_centers(k_int, num_levels)
    inv_scale = jnp.exp(-log_scale)
    lower = jnp.where(k_int == 0, -jnp.inf, (centre - 1.0 / num_levels - mean) * inv_scale)
    upper = jnp.where(k_int == num_levels - 1, jnp.inf, (centre + 1.0 / num_levels - mean) * inv_scale)
    # Difference of CDFs on the side of the mode that keeps both terms small (no cancellation).
    right_side = lower + upper > 0
    prob = jnp.where(right_side, ndtr(-lower) - ndtr(-upper), ndtr(upper) - ndtr(lower))
    return jnp.log(jnp.maximum(prob, 1e-12))


def _sum_per_example(a):
    return jnp.sum(a.reshape(a.shape[0], -1), axis=-1)


# --------------------------------------------------------------------------------------------
# Discrete-time VLB (Ho et al. 2020, eq. 5; Nichol & Dhariwal 2021, Sec. 2)
# --------------------------------------------------------------------------------------------
def _model_log_variance(schedule, model_variance):
    """(N,) log-variance of p(x_{i-1} | x_i): 'small' = posterior variance (clipped at step 0),
    'large' = beta_i with step 0 taking the posterior variance of step 1 (improved-diffusion)."""
    if model_variance == "small":
        return schedule.posterior_log_variance_clipped
    if model_variance == "large":
        return jnp.log(jnp.concatenate([schedule.posterior_variance[1:2], schedule.betas[1:]]))
    raise ValueError(f"model_variance must be 'small' or 'large'; got {model_variance!r}")


def _vlb_prior(schedule, x0):
    """(B,) KL(q(x_{N-1} | x_0) || N(0, I)) in nats."""
    abar = schedule.alphas_cumprod[-1]
    return _sum_per_example(gaussian_kl(jnp.sqrt(abar) * x0, jnp.log1p(-abar), 0.0, 0.0))


def _vlb_step_term(key, denoiser, schedule, log_var, x0, k_int, step, num_levels, clip_denoised):
    """(B,) nats of one VLB term per example at integer steps ``step`` (B,):
    KL(q(x_{i-1}|x_i,x_0) || p(x_{i-1}|x_i)) for i >= 1 and -log p(x_0|x_1) for i = 0."""
    abar = expand_like(schedule.alphas_cumprod[step], x0)
    eps = jax.random.normal(key, x0.shape, x0.dtype)
    x_t = jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * eps
    eps_hat = denoiser.eps(x_t, schedule.times[step])
    x0_hat = (x_t - jnp.sqrt(1.0 - abar) * eps_hat) / jnp.sqrt(abar)
    if clip_denoised:
        x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
    coef1 = expand_like(schedule.posterior_mean_coef1[step], x0)
    coef2 = expand_like(schedule.posterior_mean_coef2[step], x0)
    true_mean = coef1 * x0 + coef2 * x_t
    model_mean = coef1 * x0_hat + coef2 * x_t
    true_log_var = expand_like(schedule.posterior_log_variance_clipped[step], x0)
    model_log_var = expand_like(log_var[step], x0)
    kl = _sum_per_example(gaussian_kl(true_mean, true_log_var, model_mean, model_log_var))
    decoder_nll = -_sum_per_example(
        discretized_gaussian_log_likelihood(k_int, model_mean, 0.5 * model_log_var, num_levels))
    return jnp.where(step == 0, decoder_nll, kl)


def _check_vlb_inputs(schedule, x0_int, num_levels, chunk=1):
    """(B,) validity of x0_int (see ``units.check_levels``); ValueError on bad static inputs."""
    valid = check_levels(x0_int, num_levels, "x0_int")
    if schedule.betas.ndim != 1 or schedule.betas.shape[0] < 2:
        raise ValueError(f"schedule must have N >= 2 steps; got betas shape {schedule.betas.shape}")
    check_int(chunk, "chunk")
    return valid


def vlb_terms_full(key, denoiser, schedule, x0_int, num_levels: int, *, chunk: int = 16,
                   model_variance: str = "small", clip_denoised: bool = True):
    """Exact-in-t discrete-time VLB of K-level data, summed over all N steps (nats).

    L = KL(q(x_{N-1}|x_0) || N(0, I)) + sum_{i>=1} KL(q(x_{i-1}|x_i,x_0) || p(x_{i-1}|x_i))
        - log p(x_0 | x_0-step sample),
    with p's mean the posterior mean at x0_hat (from the network's eps, converted with the
    schedule's alphas_cumprod; optionally clipped to [-1, 1]) and a fixed variance
    (``model_variance``: 'small' = posterior, 'large' = beta). The decoder is the discretized
    Gaussian over the K levels, so the total bounds -log P(x_0) of the model (no dequantization).
    Each step draws its own x_i (key folded with i): the sum is exact over steps and random only
    through x_i.

    Args:
      key: PRNG key.
      denoiser: object with ``eps(x, t)`` (e.g. ``param.Denoiser``); called at
        ``schedule.times[i]`` with t of shape (B,). For an x0/v/score network its process should
        be the one the schedule discretizes (``discretize_process``).
      schedule: ``schedules.DiscreteSchedule`` with N steps.
      x0_int: (B, ...) integer levels in [0, K).
      chunk: steps evaluated together (memory ~ chunk * B model inputs).
    Returns:
      ``LikelihoodResult``: nll (B,) nats; terms 'prior' (B,), 'decoder' (B,) (step 0), 'kl'
      (B,) (sum over steps >= 1), 'per_step' (B, N) (step 0 holds the decoder NLL).
    """
    valid = _check_vlb_inputs(schedule, x0_int, num_levels, chunk)
    log_var = _model_log_variance(schedule, model_variance)
    x0 = levels_to_centers(x0_int, num_levels)
    batch = x0.shape[0]

    def step_term(i):
        steps = jnp.full((batch,), i, jnp.int32)
        return _vlb_step_term(jax.random.fold_in(key, i), denoiser, schedule, log_var, x0, x0_int,
                              steps, num_levels, clip_denoised)

    num_steps = schedule.betas.shape[0]
    per_step = jax.lax.map(step_term, jnp.arange(num_steps), batch_size=chunk).T  # (B, N)
    prior = _vlb_prior(schedule, x0)
    terms = dict(prior=prior, decoder=per_step[:, 0], kl=jnp.sum(per_step[:, 1:], axis=1),
                 per_step=per_step)
    return LikelihoodResult(nan_where_invalid(prior + jnp.sum(per_step, axis=1), valid), terms)


def vlb_one_t(key, denoiser, schedule, x0_int, num_levels: int, *, model_variance: str = "small",
              clip_denoised: bool = True):
    """Unbiased one-step estimate of the discrete VLB (nats): prior + N * L_i with one step
    i ~ U{0..N-1} per example (see ``vlb_terms_full`` for the terms and arguments).

    Returns ``LikelihoodResult``: nll (B,) nats; terms 'prior' (B,), 'step' (B,) int,
    'step_term' (B,) = N * L_i.
    """
    valid = _check_vlb_inputs(schedule, x0_int, num_levels)
    log_var = _model_log_variance(schedule, model_variance)
    x0 = levels_to_centers(x0_int, num_levels)
    num_steps = schedule.betas.shape[0]
    key_step, key_noise = jax.random.split(key)
    steps = jax.random.randint(key_step, (x0.shape[0],), 0, num_steps)
    step_term = num_steps * _vlb_step_term(key_noise, denoiser, schedule, log_var, x0, x0_int, steps,
                                           num_levels, clip_denoised)
    prior = _vlb_prior(schedule, x0)
    return LikelihoodResult(nan_where_invalid(prior + step_term, valid),
                            dict(prior=prior, step=steps, step_term=step_term))


def vlb_step_proposal(schedule, *, uniform_weight: float = 0.1):
    """(N,) fixed step proposal q for ``vlb_importance_sampled``, from the schedule alone.

    With x0_hat from an eps prediction, step i >= 1 of the VLB is exactly
    L_i = 1/2 (SNR_{i-1} - SNR_i) ||x0 - x0_hat||^2 = 1/2 (SNR_{i-1}/SNR_i - 1) ||eps - eps_hat||^2
    (Ho et al. 2020 eq. 12; Kingma et al. 2021 eq. 13), so if the eps error were the same at every
    step, q_i prop. to w_i = SNR_{i-1}/SNR_i - 1 would make L_i / q_i constant. On a chain from
    ``discretize_process`` SNR_i ~ 1/i at small i, so w (and L, as measured on digits: ~1/i over
    the first steps) is heavy at small i, where a uniform draw has SD ~25 bits/dim. Step 0 (the
    decoder) gets the mean weight. q mixes w with the uniform distribution, with weight
    ``uniform_weight`` (defensive: q_i >= uniform_weight / N, so L_i / q_i <= N L_i /
    uniform_weight for any profile L).
    """
    if isinstance(uniform_weight, bool) or not 0.0 < float(uniform_weight) <= 1.0:
        raise ValueError(f"uniform_weight must be in (0, 1], got {uniform_weight!r}")
    abar = schedule.alphas_cumprod.astype(jnp.float32)
    log_snr = jnp.log(abar) - jnp.log1p(-abar)
    w = jnp.expm1(log_snr[:-1] - log_snr[1:])  # steps 1..N-1
    w = jnp.concatenate([jnp.mean(w)[None], w])
    num_steps = abar.shape[0]
    return (1.0 - uniform_weight) * w / jnp.sum(w) + uniform_weight / num_steps


def vlb_importance_sampled(key, denoiser, schedule, x0_int, num_levels: int, *, proposal=None,
                           model_variance: str = "small", clip_denoised: bool = True):
    """Unbiased importance-sampled estimate of the discrete VLB (nats): prior + L_i / q_i with one
    step i ~ q per example, q a fixed (N,) proposal (default ``vlb_step_proposal(schedule)``).
    E_q[L_i / q_i] = sum_i L_i for any q > 0; q = uniform is ``vlb_one_t``. See
    ``vlb_terms_full`` for the terms and the other arguments.

    Returns ``LikelihoodResult``: nll (B,) nats; terms 'prior' (B,), 'step' (B,) int,
    'step_term' (B,) = L_i / q_i.
    """
    valid = _check_vlb_inputs(schedule, x0_int, num_levels)
    num_steps = schedule.betas.shape[0]
    q = vlb_step_proposal(schedule) if proposal is None else jnp.asarray(proposal, jnp.float32)
    if q.shape != (num_steps,):
        raise ValueError(f"proposal must have shape ({num_steps},) (one probability per step), "
                         f"got {q.shape}")
    if proposal is not None and is_concrete(proposal):
        q_host = np.asarray(proposal, np.float64)
        if not (np.all(q_host > 0) and abs(q_host.sum() - 1.0) < 1e-4):
            raise ValueError(f"proposal must be positive and sum to 1, got sum {q_host.sum():.6g} "
                             f"and min {q_host.min():.3g}")
    log_var = _model_log_variance(schedule, model_variance)
    x0 = levels_to_centers(x0_int, num_levels)
    key_step, key_noise = jax.random.split(key)
    steps = jax.random.categorical(key_step, jnp.log(q), shape=(x0.shape[0],))
    step_term = _vlb_step_term(key_noise, denoiser, schedule, log_var, x0, x0_int, steps,
                               num_levels, clip_denoised) / q[steps]
    prior = _vlb_prior(schedule, x0)
    return LikelihoodResult(nan_where_invalid(prior + step_term, valid),
                            dict(prior=prior, step=steps, step_term=step_term))


# --------------------------------------------------------------------------------------------
# Continuous-time and T-step ELBO (Kingma et al. 2021, VDM, eq. 17, 13 and App. C)
# --------------------------------------------------------------------------------------------
def vdm_reconstruction_nll(z, x_int, log_snr, num_levels: int):
    """(B,) nats of -log p(x | z) with VDM's factorized categorical decoder over K levels.

    logit_k = -1/2 (z / alpha - c_k)^2 / (sigma / alpha)^2 per dimension, i.e. the Gaussian
    likelihood of z at each level centre c_k under a uniform prior on levels
    ((sigma/alpha)^2 = exp(-logSNR)). z, x_int (B, ...); log_snr (B,). NaN for examples with
    traced out-of-range levels (concrete ones raise ValueError).
    """
    valid = check_levels(x_int, num_levels, "x_int")
    alpha = jnp.sqrt(jax.nn.sigmoid(log_snr))
    z_rescaled = (z / expand_like(alpha, z))[..., None]
    centres = levels_to_centers(jnp.arange(num_levels), num_levels)
    logits = -0.5 * (z_rescaled - centres) ** 2 * expand_like(jnp.exp(log_snr), z)[..., None]
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -_sum_per_example(jnp.take_along_axis(log_probs, x_int[..., None], axis=-1)[..., 0])
    return nan_where_invalid(nll, valid)


def _noised(key, process, x, t):
    eps = jax.random.normal(key, x.shape, x.dtype)
    alpha, sigma = process.alpha_sigma(t)
    return expand_like(alpha, x) * x + expand_like(sigma, x) * eps, eps


def _elbo_ends(key, process, x, x_int, num_levels, t_min):
    """(reconstruction (B,), prior KL (B,)) of the VDM ELBO, at t_min and t = 1."""
    batch = x.shape[0]
    t_start = jnp.full((batch,), t_min, x.dtype)
    z_start, _ = _noised(key, process, x, t_start)
    recon = vdm_reconstruction_nll(z_start, x_int, process.log_snr(t_start), num_levels)
    alpha1, sigma1 = process.alpha_sigma(jnp.ones((batch,), x.dtype))
    prior = _sum_per_example(
        gaussian_kl(expand_like(alpha1, x) * x, expand_like(2.0 * jnp.log(sigma1), x), 0.0, 0.0))
    return recon, prior


_VP_PROCESSES = (VPSDE, LogSNRSDE, LogSNRSchedule)


def _check_elbo_inputs(process, x_int, num_levels, t_min):
    """(validity (B,) of x_int, t_min as a float: ``process.smallest_time`` when None)."""
    if not isinstance(process, _VP_PROCESSES):
        raise ValueError(
            "process must be variance-preserving with a standard-normal prior (VPSDE, LogSNRSDE or "
            f"a schedules.LogSNRSchedule); got {type(process).__name__}")
    valid = check_levels(x_int, num_levels, "x_int")
    if t_min is None:
        t_min = process.smallest_time
    if isinstance(t_min, bool) or not isinstance(t_min, (int, float)) or not 0.0 <= t_min < 1.0:
        raise ValueError(f"t_min must be None or a float in [0, 1); got {t_min!r}")
    log_snr_start = process.log_snr(jnp.asarray(t_min, jnp.float32))
    if is_concrete(log_snr_start) and not bool(jnp.isfinite(log_snr_start)):
        raise ValueError(f"t_min={t_min} gives a non-finite logSNR for {type(process).__name__}; "
                         f"use t_min >= {process.smallest_time} (or None)")
    return valid, float(t_min)


def continuous_elbo(key, denoiser, process, x_int, num_levels: int, *, t_min=None,
                    antithetic: bool = True):
    """Continuous-time VDM ELBO of K-level data in nats (Kingma et al. 2021, eq. 17).

    -log P(x) <= recon + prior + diffusion with
      recon     = -log p(x | z_{t_min}) (``vdm_reconstruction_nll``),
      prior     = KL(q(z_1 | x) || N(0, I)),
      diffusion = 1/2 int_{t_min}^1 -dlogSNR/dt ||eps - eps_hat(z_t, t)||^2 dt, estimated with one
                  t ~ U[t_min, 1] per example (antithetic across the batch if asked), times
                  (1 - t_min).
    x = centres of x_int; z_t = alpha x + sigma eps. The process must be variance-preserving
    with a standard-normal prior at t = 1: VPSDE, LogSNRSDE or a ``schedules.LogSNRSchedule``
    (LinearLogSNR, learned_schedule.LearnedLogSNR); other processes raise ValueError. Bounds the
    continuous-time reverse model's -log P(x): no dequantization term.

    Args:
      denoiser: object with ``eps(x, t)`` (e.g. ``param.Denoiser``), t (B,).
      x_int: (B, ...) integer levels in [0, K) (traced out-of-range levels give NaN).
      t_min: python float in [0, 1) with a finite logSNR, or None (default) for the process's
        ``smallest_time`` (1e-5 for VPSDE, 0 for log-SNR schedules).
    Returns: ``LikelihoodResult``: nll (B,) nats; terms recon, prior, diffusion, t, each (B,).
    """
    valid, t_min = _check_elbo_inputs(process, x_int, num_levels, t_min)
    x = levels_to_centers(x_int, num_levels)
    key_t, key_eps, key_ends = jax.random.split(key, 3)
    t = sample_times(key_t, x.shape[0], t_min, antithetic)
    z_t, eps = _noised(key_eps, process, x, t)
    eps_hat = denoiser.eps(z_t, t)
    weight = -0.5 * (1.0 - t_min) * process.dlog_snr_dt(t)
    diffusion = weight * _sum_per_example((eps - eps_hat) ** 2)
    recon, prior = _elbo_ends(key_ends, process, x, x_int, num_levels, t_min)
    return LikelihoodResult(nan_where_invalid(recon + prior + diffusion, valid),
                            dict(recon=recon, prior=prior, diffusion=diffusion, t=t))


def discrete_time_elbo(key, denoiser, process, x_int, num_levels: int, num_steps: int, *,
                       t_min=None, antithetic: bool = True):
    """T-step VDM ELBO of K-level data in nats (Kingma et al. 2021, eq. 13 and App. C).

    On the grid t_j = t_min + (1 - t_min) j / T, j = 0..T, the diffusion loss is
    sum_{i=1}^T 1/2 expm1(logSNR(t_{i-1}) - logSNR(t_i)) E||eps - eps_hat(z_{t_i}, t_i)||^2
    (VDM's expm1(gamma_t - gamma_s) with gamma = -logSNR: positive for a decreasing logSNR),
    estimated by T times the term at one i ~ U{1..T} per example (antithetic: i = ceil(u T)
    with u = (u0 + b/B) mod 1). Recon at t_min and prior at t = 1, the processes, t_min and
    x_int as in ``continuous_elbo``; num_steps T: a python int >= 1.
    Returns: ``LikelihoodResult``: nll (B,) nats; terms recon, prior, diffusion, t, each (B,).
    """
    valid, t_min = _check_elbo_inputs(process, x_int, num_levels, t_min)
    num_steps = check_int(num_steps, "num_steps")
    x = levels_to_centers(x_int, num_levels)
    key_t, key_eps, key_ends = jax.random.split(key, 3)
    u = sample_times(key_t, x.shape[0], 0.0, antithetic)
    i = jnp.floor(u * num_steps) + 1.0  # in 1..T
    t = t_min + (1.0 - t_min) * i / num_steps
    s = t_min + (1.0 - t_min) * (i - 1.0) / num_steps
    z_t, eps = _noised(key_eps, process, x, t)
    eps_hat = denoiser.eps(z_t, t)
    weight = 0.5 * num_steps * jnp.expm1(process.log_snr(s) - process.log_snr(t))
    diffusion = weight * _sum_per_example((eps - eps_hat) ** 2)
    recon, prior = _elbo_ends(key_ends, process, x, x_int, num_levels, t_min)
    return LikelihoodResult(nan_where_invalid(recon + prior + diffusion, valid),
                            dict(recon=recon, prior=prior, diffusion=diffusion, t=t))
