"""Samplers on closed-form Gaussian data x_0 ~ N(mu, diag(s^2)), D = 8.

With the exact score every sampler should reproduce (mu, s) up to Monte Carlo error (4000
samples; bounds of 5 standard errors) plus its own discretization bias at the step count used
(the ``bias`` allowances below, relative to s: the largest bias measured with 6e4 samples,
given 1.5-3x room; e.g. PC's Langevin corrector at snr 0.16 inflates the smallest std by ~5%).
Deterministic samplers are also checked against the exact probability-flow map: for Gaussian
marginals N(alpha mu, alpha^2 s^2 + sigma^2) the standardized value (x_t - alpha_t mu) / sd_t
is constant along PF-ODE trajectories, computed here in float64 numpy from the VP formulas.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.core import param
from gen_jax.core import samplers as S
from gen_jax.core.gaussian_data import GaussianData
from gen_jax.core.schedules import discretize_process
from gen_jax.core.sde import VESDE, VPSDE

D = 8
N_SAMPLES = 4000
MU = np.linspace(-1.0, 1.5, D)
STD = np.array([0.3, 0.45, 0.6, 0.75, 0.9, 1.1, 1.3, 1.6])
DATA = GaussianData(jnp.asarray(MU, jnp.float32), jnp.asarray(STD, jnp.float32))
VP, VE = VPSDE(), VESDE()
T_MIN = 1e-3
KEY = jax.random.PRNGKey(0)
SHAPE = (N_SAMPLES, D)


def eps_vp(x, t):
    return DATA.eps(VP, x, t)


def score_of(process):
    return lambda x, t: DATA.score(process, x, t)


def edm_closed_form(x, sigma):
    """E[x_0 | x_0 + sigma n = x] for the Gaussian data."""
    s2 = jnp.asarray(STD**2, jnp.float32)
    return MU + s2 / (s2 + sigma[:, None] ** 2) * (x - MU)


def vp_alpha_sigma64(t):
    """VP-SDE (b0=0.1, b1=20) marginal coefficients in float64 (REFERENCES.md)."""
    log_m = -0.25 * t**2 * (20.0 - 0.1) - 0.5 * t * 0.1
    return math.exp(log_m), math.sqrt(-math.expm1(2.0 * log_m))


def exact_flow(x_T, t):
    """The VP PF-ODE map from t=1 to t for the Gaussian data, float64, like x_T."""
    a1, s1 = vp_alpha_sigma64(1.0)
    a, s = vp_alpha_sigma64(t)
    sd1, sd = np.sqrt(a1**2 * STD**2 + s1**2), np.sqrt(a**2 * STD**2 + s**2)
    return a * MU + sd / sd1 * (np.asarray(x_T, np.float64) - a1 * MU)


def exact_x0(x_t, t):
    """Tweedie E[x_0 | x_t] under VP for the Gaussian data, float64."""
    a, s = vp_alpha_sigma64(t)
    return MU + a * STD**2 / (a**2 * STD**2 + s**2) * (x_t - a * MU)


def assert_moments(x, mean=MU, std=STD, bias=0.0):
    """Per-dim mean and std within 5 SE + bias (relative to std), and the dim-averaged std
    ratio within 5 of its SE + bias."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    assert np.all(np.isfinite(x))
    mean_err = np.abs(x.mean(0) - mean) / std
    assert np.all(mean_err <= 5.0 / math.sqrt(n) + bias), mean_err
    std_err = x.std(0) / std - 1.0
    assert np.all(np.abs(std_err) <= 5.0 / math.sqrt(2 * n) + bias), std_err
    assert abs(std_err.mean()) <= 5.0 / math.sqrt(2 * n * D) + bias, std_err.mean()


@pytest.fixture(scope="module")
def schedule():
    return discretize_process(VP, 1000)


def test_ddim_timesteps_match_lin_et_al_table_2():
    # Lin et al. 2024, Table 2, T=1000, 10 steps (1-indexed there, 0-indexed here).
    np.testing.assert_array_equal(S.ddim_timesteps(1000, 10, "linspace"),
                                  [0, 111, 222, 333, 444, 555, 666, 777, 888, 999])
    np.testing.assert_array_equal(S.ddim_timesteps(1000, 10, "leading"), np.arange(0, 1000, 100))
    np.testing.assert_array_equal(S.ddim_timesteps(1000, 10, "trailing"), np.arange(99, 1000, 100))


@pytest.mark.parametrize("variance, bias", [("small", 0.03), ("large", 0.01)])
def test_ddpm_matches_data_moments(schedule, variance, bias):
    x, nfe = jax.jit(lambda k: S.ddpm_sample(k, eps_vp, schedule, SHAPE, prediction="eps",
                                             variance=variance))(KEY)
    assert nfe == 1000
    assert_moments(x, bias=bias)


def test_ddim_matches_data_moments(schedule):
    run = jax.jit(lambda k, eta: S.ddim_sample(k, eps_vp, schedule, SHAPE, 250, eta=eta,
                                               prediction="eps"))
    for eta, bias in ((0.0, 0.04), (1.0, 0.08)):
        x, nfe = run(KEY, eta)
        assert nfe == 250
        assert_moments(x, bias=bias)


@pytest.mark.parametrize("process", [VP, VE], ids=["vp", "ve"])
def test_euler_maruyama_matches_data_moments(process):
    x, nfe = jax.jit(lambda k: S.euler_maruyama_sample(k, score_of(process), process, SHAPE, 500))(KEY)
    assert nfe == 501
    assert_moments(x, bias=0.01)


def test_pc_matches_data_moments():
    x, nfe = jax.jit(lambda k: S.pc_sample(k, score_of(VE), VE, SHAPE, 200, snr=0.16))(KEY)
    assert nfe == 200 * 2 + 1
    assert_moments(x, bias=0.1)


@pytest.mark.parametrize("method, steps, nfe, bias", [("euler", 500, 501, 0.015), ("heun", 100, 201, 0.01)])
def test_ode_fixed_matches_data_moments(method, steps, nfe, bias):
    x, n = jax.jit(lambda k: S.ode_sample(k, score_of(VP), VP, SHAPE, steps, method=method,
                                          denoise=True))(KEY)
    assert n == nfe
    assert_moments(x, bias=bias)


def test_dpm_solver_pp_matches_marginal_at_t_min():
    x, nfe = jax.jit(lambda k: S.dpm_solver_pp_sample(k, eps_vp, VP, SHAPE, 50, prediction="eps"))(KEY)
    assert nfe == 50
    a, s = vp_alpha_sigma64(T_MIN)  # no final denoising: x ~ q(x_{t_min})
    marginal_std = np.sqrt(a**2 * STD**2 + s**2)
    assert_moments(x, mean=a * MU, std=marginal_std, bias=0.01)


def test_edm_heun_matches_data_moments():
    x, nfe = jax.jit(lambda k: S.edm_heun_sample(k, edm_closed_form, SHAPE, 40))(KEY)
    assert nfe == 79
    assert_moments(x, bias=0.04)


@pytest.mark.parametrize("process", [VP, VE], ids=["vp", "ve"])
def test_edm_denoiser_adapts_a_process_x0_predictor(process):
    sigmas = jnp.array([0.02, 0.1, 0.5, 1.0, 3.0, 10.0, 40.0])
    x = jax.random.normal(jax.random.PRNGKey(3), (7, D)) * 5.0
    wrapped = param.Denoiser(process, fn=lambda x, t: DATA.eps(process, x, t), prediction="eps")
    got = jax.jit(S.edm_denoiser(wrapped.x0, process))(x, sigmas)
    np.testing.assert_allclose(got, edm_closed_form(x, sigmas), rtol=2e-4, atol=2e-4)


@pytest.fixture(scope="module")
def flow_setup():
    """Shared noise, the exact PF-ODE endpoints and a tight adaptive diffrax solve."""
    x_T = jax.random.normal(jax.random.PRNGKey(7), (256, D))
    exact_t_min = exact_flow(x_T, T_MIN)
    adaptive, nfe = jax.jit(lambda x: S.ode_sample_adaptive(
        KEY, score_of(VP), VP, x.shape, rtol=1e-6, atol=1e-6, x_init=x))(x_T)
    return x_T, exact_t_min, np.asarray(adaptive, np.float64), int(nfe)


def rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


def test_adaptive_ode_matches_exact_flow(flow_setup):
    _, exact_t_min, adaptive, nfe = flow_setup
    assert rms(adaptive, exact_t_min) < 1e-5
    assert 20 < nfe < 2000


def test_adaptive_ode_reports_its_function_evaluations():
    count = []

    def counted_score(x, t):
        jax.debug.callback(lambda: count.append(1))
        return DATA.score(VP, x, t)

    for solver in ("dopri5", "tsit5"):
        count.clear()
        _, nfe = jax.jit(lambda k: S.ode_sample_adaptive(k, counted_score, VP, (16, D), rtol=1e-3,
                                                         atol=1e-3, solver=solver, denoise=True))(KEY)
        assert int(nfe) == len(count), solver


def test_adaptive_ode_failure_gives_nan():
    x, _ = jax.jit(lambda k: S.ode_sample_adaptive(k, score_of(VP), VP, (4, D), max_steps=2))(KEY)
    assert np.all(np.isnan(np.asarray(x)))


def test_ddim_and_dpm_solver_converge_to_the_adaptive_ode(schedule, flow_setup):
    x_T, _, adaptive, _ = flow_setup
    adaptive_x0 = exact_x0(adaptive, T_MIN)
    ddim = {n: rms(jax.jit(lambda x: S.ddim_sample(KEY, eps_vp, schedule, x.shape, n,
                                                   spacing="linspace", prediction="eps",
                                                   x_init=x)[0])(x_T), adaptive_x0)
            for n in (10, 20, 100)}
    dpm = {n: rms(jax.jit(lambda x: S.dpm_solver_pp_sample(KEY, eps_vp, VP, x.shape, n,
                                                           prediction="eps", x_init=x)[0])(x_T), adaptive)
           for n in (10, 20, 50)}
    assert ddim[10] > ddim[20] > ddim[100]
    assert dpm[10] > dpm[20] > dpm[50]
    assert dpm[10] < ddim[10] and dpm[20] < ddim[20], (dpm, ddim)
    assert dpm[50] < 5e-3, dpm


def test_prediction_types_give_the_same_sampler(schedule):
    """eps-, x0-, v- and score-networks that are exact give the same samples."""
    x_T = jax.random.normal(jax.random.PRNGKey(11), (64, D))
    a_s = VP.alpha_sigma
    nets = {
        "eps": eps_vp,
        "x0": lambda x, t: DATA.x0(VP, x, t),
        "v": lambda x, t: param.eps_x0_to_v(DATA.eps(VP, x, t), DATA.x0(VP, x, t), *a_s(t)),
        "score": score_of(VP),
    }
    dpm = [jax.jit(lambda x: S.dpm_solver_pp_sample(KEY, param.Denoiser(VP, fn=fn, prediction=kind), VP,
                                                    x.shape, 8, x_init=x)[0])(x_T)
           for kind, fn in nets.items()]
    for out in dpm[1:]:
        np.testing.assert_allclose(out, dpm[0], rtol=1e-4, atol=1e-4)
    ddpm = [jax.jit(lambda k: S.ddpm_sample(k, fn, schedule, (64, D), prediction=kind)[0])(KEY)
            for kind, fn in (("eps", nets["eps"]), ("v", nets["v"]))]
    np.testing.assert_allclose(ddpm[1], ddpm[0], rtol=1e-3, atol=1e-3)


def test_clip_x0_bounds_the_final_samples():
    """The last DDPM / DDIM step returns x0_hat itself, so clipping bounds every sample; the
    data (mean up to 1.5, std up to 1.6) reaches past the bound."""
    schedule = discretize_process(VP, 50)
    for sample in (lambda k: S.ddpm_sample(k, eps_vp, schedule, (256, D), prediction="eps", clip_x0=0.5),
                   lambda k: S.ddim_sample(k, eps_vp, schedule, (256, D), 10, eta=0.5,
                                           prediction="eps", clip_x0=0.5)):
        x = np.asarray(jax.jit(sample)(KEY)[0])
        assert np.all(np.abs(x) <= 0.5 + 1e-6) and np.mean(np.abs(x) > 0.499) > 0.2


def test_score_samplers_accept_a_denoiser():
    """A Denoiser in the model slot is used through its score: an eps-network wrapped for VP gives
    the same samples as the closed-form score (score = -eps / sigma)."""
    x_T = jax.random.normal(jax.random.PRNGKey(13), (64, D))
    denoiser = param.Denoiser(VP, fn=eps_vp, prediction="eps")
    for sample in (lambda m, x: S.ode_sample(KEY, m, VP, x.shape, 20, method="heun", x_init=x),
                   lambda m, x: S.euler_maruyama_sample(KEY, m, VP, x.shape, 20, x_init=x)):
        via_denoiser = jax.jit(lambda x: sample(denoiser, x))(x_T)
        via_score = jax.jit(lambda x: sample(score_of(VP), x))(x_T)
        assert via_denoiser.nfe == via_score.nfe
        np.testing.assert_allclose(via_denoiser.samples, via_score.samples, rtol=1e-4, atol=1e-4)


def test_guided_gaussians_combine_their_means():
    """Equal-variance Gaussians: uncond + w (cond - uncond) of their eps is the eps of the
    Gaussian whose mean is uncond_mean + w (cond_mean - uncond_mean), at every t."""
    cond = GaussianData(DATA.mean + 1.0, DATA.std)
    w = 3.0
    mixed = GaussianData(DATA.mean + w * 1.0, DATA.std)
    fn = S.guided(lambda x, t: cond.eps(VP, x, t), eps_vp, w)
    x = jax.random.normal(jax.random.PRNGKey(5), (6, D))
    t = jnp.linspace(0.05, 1.0, 6)
    np.testing.assert_allclose(fn(x, t), mixed.eps(VP, x, t), rtol=1e-5, atol=1e-5)


def test_time_at_log_snr_inverts_closed_forms():
    t = jnp.linspace(0.01, 0.99, 9)
    ve_t = S.time_at_log_snr(VE, -2.0 * jnp.log(VE.sigma_min * (VE.sigma_max / VE.sigma_min) ** t))
    np.testing.assert_allclose(ve_t, t, atol=1e-5)
    np.testing.assert_allclose(S.time_at_log_snr(VP, VP.log_snr(t)), t, atol=1e-5)


def test_invalid_inputs_raise_value_errors(schedule):
    wrong_shape = lambda x, t: x[:, :-1]
    bad_calls = [
        lambda: S.ddim_sample(KEY, eps_vp, schedule, (4, D), 0, prediction="eps"),
        lambda: S.ddim_sample(KEY, eps_vp, schedule, (4, D), 2000, prediction="eps"),
        lambda: S.ddim_sample(KEY, eps_vp, schedule, (4, D), 10, spacing="uniform", prediction="eps"),
        lambda: S.ddim_sample(KEY, wrong_shape, schedule, (4, D), 10, prediction="eps"),
        lambda: S.ddim_sample(KEY, eps_vp, schedule, (4, D), 10),  # no prediction type
        lambda: S.ddim_sample(KEY, eps_vp, schedule, (4, D), 10, eta=-1.0, prediction="eps"),
        lambda: S.ddpm_sample(KEY, eps_vp, schedule, (4, D), prediction="noise"),
        lambda: S.ddpm_sample(KEY, eps_vp, schedule, (4, D), prediction="eps", variance="tiny"),
        lambda: S.ddpm_sample(KEY, param.Denoiser(VP, fn=wrong_shape, prediction="eps"), schedule, (4, D)),
        lambda: S.ddpm_sample(KEY, param.Denoiser(VP, fn=eps_vp, prediction="eps"), schedule, (4, D), prediction="x0"),
        lambda: S.euler_maruyama_sample(KEY, score_of(VP), VP, (4, D), 0),
        lambda: S.euler_maruyama_sample(KEY, wrong_shape, VP, (4, D), 5),
        lambda: S.euler_maruyama_sample(KEY, score_of(VP), VP, (4, D), 5, t_min=0.0),
        lambda: S.euler_maruyama_sample(KEY, score_of(VP), VP, (4, D), 5, x_init=jnp.zeros((3, D))),
        lambda: S.pc_sample(KEY, score_of(VP), VP, (4, D), 5, snr=0.0),
        lambda: S.pc_sample(KEY, score_of(VP), VP, (4, D), 5, n_corrector=-1),
        lambda: S.ode_sample(KEY, score_of(VP), VP, (4, D), 5, method="rk4"),
        lambda: S.ode_sample(KEY, score_of(VP), VP, (4, D), 0),
        lambda: S.ode_sample_adaptive(KEY, score_of(VP), VP, (4, D), solver="euler"),
        lambda: S.ode_sample_adaptive(KEY, score_of(VP), VP, (4, D), rtol=0.0),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, (4, D), 0, prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, (4, D), 5, order=3, prediction="eps"),
        lambda: S.edm_heun_sample(KEY, edm_closed_form, (4, D), 1),
        lambda: S.edm_heun_sample(KEY, edm_closed_form, (4, D), 10, sigma_min=100.0),
        lambda: S.edm_heun_sample(KEY, wrong_shape, (4, D), 10),
        lambda: S.ddim_timesteps(1000, 10, "uniform"),
        lambda: S.ddpm_sample(KEY, eps_vp, schedule, (0, D), prediction="eps"),
    ]
    for i, call in enumerate(bad_calls):
        with pytest.raises(ValueError):
            call()
            pytest.fail(f"bad call {i} did not raise")
