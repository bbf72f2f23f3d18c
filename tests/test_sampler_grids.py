"""Explicit time grids for DDIM and DPM-Solver++ (``times=``, Lu et al. 2022's named grids),
checked against an independent float64 numpy re-derivation of DPM-Solver++(2M) and against the
exact probability-flow map of closed-form Gaussian data; plus low-precision x_init and the
shared result type.

Data: x_0 ~ N(mu, diag(s^2)), D = 8, under the VP-SDE (b0 = 0.1, b1 = 20). Its exact x0- and
eps-predictions stand in for the network; the PF-ODE map keeps (x_t - alpha mu) / sd_t fixed.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.core import samplers as S
from gen_jax.core.gaussian_data import GaussianData
from gen_jax.core.results import SampleResult
from gen_jax.core.schedules import discretize_process
from gen_jax.core.sde import VESDE, VPSDE

D = 8
MU = np.linspace(-1.0, 1.5, D)
STD = np.array([0.3, 0.45, 0.6, 0.75, 0.9, 1.1, 1.3, 1.6])
DATA = GaussianData(jnp.asarray(MU, jnp.float32), jnp.asarray(STD, jnp.float32))
VP = VPSDE()
KEY = jax.random.PRNGKey(0)
X_T = jax.random.normal(jax.random.PRNGKey(7), (256, D))


def eps_vp(x, t):
    return DATA.eps(VP, x, t)


def x0_vp(x, t):
    return DATA.x0(VP, x, t)


# ---- float64 numpy reference (written from the equations, shares no code with gen_jax) ------

def alpha_sigma64(t):
    """VP-SDE marginal coefficients; t = 0 is data (alpha 1, sigma 0)."""
    log_m = -0.25 * t**2 * (20.0 - 0.1) - 0.5 * t * 0.1
    return math.exp(log_m), math.sqrt(-math.expm1(2.0 * log_m))


def x0_64(x, t):
    a, s = alpha_sigma64(t)
    return MU + a * STD**2 / (a**2 * STD**2 + s**2) * (x - a * MU)


def exact_flow64(x_T, t):
    """PF-ODE map from t = 1 to t for the Gaussian data."""
    a1, s1 = alpha_sigma64(1.0)
    a, s = alpha_sigma64(t)
    sd1, sd = np.sqrt(a1**2 * STD**2 + s1**2), np.sqrt(a**2 * STD**2 + s**2)
    return a * MU + sd / sd1 * (np.asarray(x_T, np.float64) - a1 * MU)


def dpm_solver_pp_2m_64(x, times, order=2, lower_order_final=True):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) in float64 along times (decreasing).

    lambda = log(alpha/sigma); step i from t_{i-1} to t_i with h = lambda_i - lambda_{i-1}:
    x_i = sigma_i/sigma_{i-1} x - alpha_i (e^{-h} - 1) D, D = m_{i-1} for first-order steps
    (the first, the last if lower_order_final, every step if order 1), else
    D = (1 + 1/(2r)) m_{i-1} - 1/(2r) m_{i-2} with r = h_{i-1}/h_i. A step to t = 0 returns
    m_{i-1} (the e^{-h} -> 0 limit).
    """
    x = np.asarray(x, np.float64)
    n = len(times) - 1
    m_prev = h_prev = None
    for i in range(1, n + 1):
        t_prev, t = times[i - 1], times[i]
        m = x0_64(x, t_prev)
        if t == 0.0:
            return m
        a_prev, s_prev = alpha_sigma64(t_prev)
        a, s = alpha_sigma64(t)
        h = math.log(a / s) - math.log(a_prev / s_prev)
        if order == 1 or i == 1 or (i == n and lower_order_final):
            d = m
        else:
            r = h_prev / h
            d = (1.0 + 1.0 / (2.0 * r)) * m - 1.0 / (2.0 * r) * m_prev
        x = s / s_prev * x - a * math.expm1(-h) * d
        m_prev, h_prev = m, h
    return x


def dpm(times=None, **kwargs):
    fn = jax.jit(lambda x: S.dpm_solver_pp_sample(KEY, x0_vp, VP, x.shape, times=times,
                                                  prediction="x0", x_init=x, **kwargs).samples)
    return np.asarray(fn(X_T), np.float64)


def rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


HAND_GRID = [1.0, 0.7, 0.45, 0.3, 0.15, 0.08, 0.03, 0.01, 0.002, 0.0]


@pytest.mark.parametrize("times, kwargs", [
    (HAND_GRID, {}),                                            # ends with a step to t = 0
    (HAND_GRID[:-1], {}),                                       # ends at t = 0.002
    (HAND_GRID[:-1], dict(lower_order_final=False)),
    (HAND_GRID, dict(order=1)),
    ([0.9, 0.5, 0.0], {}),                                      # starts below T
    ([1.0, 0.0], {}),                                           # a single step to zero
], ids=["to_zero", "to_t", "second_order_final", "order1", "start_below_T", "one_step"])
def test_dpm_solver_matches_float64_reference(times, kwargs):
    got = dpm(np.asarray(times), **kwargs)
    want = dpm_solver_pp_2m_64(X_T, times, **kwargs)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_named_grids_follow_lu_et_al():
    n, t_min = 12, 1e-3
    lam = lambda t: math.log(alpha_sigma64(t)[0] / alpha_sigma64(t)[1])  # noqa: E731
    log_snr_grid = np.asarray(S.dpm_solver_timesteps(VP, n, t_min, "logSNR"), np.float64)
    np.testing.assert_allclose([lam(t) for t in log_snr_grid],
                               np.linspace(lam(1.0), lam(t_min), n + 1), atol=2e-4)
    np.testing.assert_allclose(S.dpm_solver_timesteps(VP, n, t_min, "time_uniform"),
                               np.linspace(1.0, t_min, n + 1), rtol=1e-6)
    np.testing.assert_allclose(S.dpm_solver_timesteps(VP, n, t_min, "time_quadratic"),
                               np.linspace(1.0, math.sqrt(t_min), n + 1) ** 2, rtol=1e-5)
    for skip_type in S.SKIP_TYPES:  # the named grid is the same sampler as times= that grid
        grid = np.asarray(S.dpm_solver_timesteps(VP, n, t_min, skip_type))
        named = jax.jit(lambda x: S.dpm_solver_pp_sample(
            KEY, x0_vp, VP, x.shape, n, t_min, skip_type=skip_type, prediction="x0",
            x_init=x).samples)(X_T)
        np.testing.assert_allclose(named, dpm(grid), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(named, dpm_solver_pp_2m_64(X_T, grid), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("skip_type", S.SKIP_TYPES)
def test_dpm_solver_converges_at_second_order_to_the_exact_flow(skip_type):
    """Second order: the error falls ~4x per halving of the step (first order: 2x), to t_min and,
    with a final step to t = 0, to E[x_0 | x_{t_min}] of the exact x_{t_min}."""
    t_min = 1e-2
    grids = {n: np.asarray(S.dpm_solver_timesteps(VP, n, t_min, skip_type)) for n in (16, 32, 64)}
    target = x0_64(exact_flow64(X_T, t_min), t_min)
    err = {n: rms(dpm(g), exact_flow64(X_T, t_min)) for n, g in grids.items()}
    err0 = {n: rms(dpm(np.append(g, 0.0)), target) for n, g in grids.items()}
    for e in (err, err0):
        assert e[16] > e[32] > e[64] and e[32] / e[64] > 3.0, (err, err0)


@pytest.fixture(scope="module")
def chain():
    return discretize_process(VP, 1000)  # abar_i = alpha((i + 1)/1000)^2, times (i + 1)/1000


def ddim(chain, times, **kwargs):
    fn = jax.jit(lambda x: S.ddim_sample(KEY, eps_vp, chain, x.shape, times=times,
                                         prediction="eps", x_init=x, **kwargs).samples)
    return np.asarray(fn(X_T), np.float64)


def test_ddim_times_equals_first_order_dpm_solver(chain):
    """DDIM eta=0 is the first-order DPM-Solver step; on chain times the DDPM chain's abar equal
    the VP process's alpha^2, so both samplers agree on the same grid."""
    for times in ([1.0, 0.75, 0.5, 0.3, 0.12, 0.05, 0.01, 0.0], [0.999, 0.6, 0.2, 0.04, 0.002]):
        got = ddim(chain, np.asarray(times))
        np.testing.assert_allclose(got, dpm(np.asarray(times), order=1), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got, dpm_solver_pp_2m_64(X_T, times, order=1),
                                   rtol=1e-4, atol=1e-4)


def test_ddim_times_reproduce_its_spacings(chain):
    """times= the chain times of a spacing, then 0, is the same sampler as that spacing."""
    for spacing in S.SPACINGS:
        steps = S.ddim_timesteps(1000, 10, spacing)
        times = np.append(np.asarray(chain.times)[steps][::-1], 0.0)
        spaced = jax.jit(lambda x: S.ddim_sample(KEY, eps_vp, chain, x.shape, 10, spacing=spacing,
                                                 prediction="eps", x_init=x).samples)(X_T)
        np.testing.assert_array_equal(np.asarray(spaced), ddim(chain, times, num_steps=10))


def test_ddim_times_converge_at_first_order(chain):
    # Grids uniform from 1 to 0.008 in steps of multiples of 1/1000: every entry a chain time.
    err = {n: rms(ddim(chain, np.linspace(1.0, 0.008, n + 1)), exact_flow64(X_T, 0.008))
           for n in (8, 16, 32)}
    assert err[8] > err[16] > err[32], err
    assert 1.6 < err[16] / err[32] < 2.6, err  # first order: ~2x per halving


def test_stochastic_ddim_on_every_chain_time_matches_data_moments(chain):
    """eta = 1 on every chain time and then 0 is DDPM's chain with the posterior variance: its
    samples have the data's moments (5 SE of 4000 samples plus DDPM's 0.03 bias allowance of
    test_samplers)."""
    times = np.append(np.asarray(chain.times)[::-1], 0.0)
    x = jax.jit(lambda k: S.ddim_sample(k, eps_vp, chain, (4000, D), times=times, eta=1.0,
                                        prediction="eps").samples)(KEY)
    x = np.asarray(x, np.float64)
    assert np.all(np.abs(x.mean(0) - MU) / STD < 5 / math.sqrt(4000) + 0.03)
    assert np.all(np.abs(x.std(0) / STD - 1) < 5 / math.sqrt(8000) + 0.03)


def test_grid_arguments_raise(chain):
    shape = (4, D)
    bad = [
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, times=[1.0, 0.5, 0.5, 0.0], prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, times=[0.5, 1.0], prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, times=[1.5, 0.5], prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, times=[1.0, -0.1], prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, times=[1.0], prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, 3, times=[1.0, 0.5, 0.0], prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, times=[1.0, 0.0], t_min=1e-3, prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, times=[1.0, 0.0], skip_type="logSNR",
                                       prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, 5, skip_type="karras", prediction="eps"),
        lambda: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, prediction="eps"),
        lambda: jax.jit(lambda t: S.dpm_solver_pp_sample(KEY, eps_vp, VP, shape, times=t,
                                                         prediction="eps"))(jnp.array([1.0, 0.0])),
        lambda: S.ddim_sample(KEY, eps_vp, chain, shape, times=[1.0, 0.5005, 0.0], prediction="eps"),
        lambda: S.ddim_sample(KEY, eps_vp, chain, shape, times=[1.0, 0.5, 0.0005], prediction="eps"),
        lambda: S.ddim_sample(KEY, eps_vp, chain, shape, times=[1.0, 0.5, 0.0], spacing="leading",
                              prediction="eps"),
        lambda: S.ddim_sample(KEY, eps_vp, chain, shape, 3, times=[1.0, 0.5, 0.0], prediction="eps"),
        lambda: S.ddim_sample(KEY, eps_vp, chain, shape, times=[0.5, 1.0], prediction="eps"),
        lambda: S.ddim_sample(KEY, eps_vp, chain, shape, prediction="eps"),
        lambda: S.ddim_sample(KEY, eps_vp, chain, shape, 10, prediction="eps",
                              x_init=jnp.zeros(shape, jnp.int32)),
    ]
    for i, call in enumerate(bad):
        with pytest.raises(ValueError):
            call()
            pytest.fail(f"bad call {i} did not raise")


# ---- low-precision x_init and the result type ---------------------------------------------

def _samplers(chain50):
    score = lambda x, t: DATA.score(VP, x, t)  # noqa: E731
    edm = S.edm_denoiser(lambda x, t: DATA.x0(VP, x, t), VP)
    ve = VESDE()
    return {
        "ddpm": lambda k, x: S.ddpm_sample(k, eps_vp, chain50, x.shape, prediction="eps", x_init=x),
        "ddim": lambda k, x: S.ddim_sample(k, eps_vp, chain50, x.shape, 10, eta=0.5, prediction="eps",
                                           x_init=x),
        "euler_maruyama": lambda k, x: S.euler_maruyama_sample(k, score, VP, x.shape, 20, x_init=x),
        "pc": lambda k, x: S.pc_sample(k, lambda x, t: DATA.score(ve, x, t), ve, x.shape, 10,
                                       x_init=x * ve.sigma_max),
        "ode": lambda k, x: S.ode_sample(k, score, VP, x.shape, 10, method="heun", denoise=True,
                                         x_init=x),
        "ode_adaptive": lambda k, x: S.ode_sample_adaptive(k, score, VP, x.shape, rtol=1e-3,
                                                           atol=1e-3, x_init=x),
        "dpm_solver_pp": lambda k, x: S.dpm_solver_pp_sample(k, eps_vp, VP, x.shape,
                                                             times=HAND_GRID, prediction="eps",
                                                             x_init=x),
        "edm_heun": lambda k, x: S.edm_heun_sample(k, edm, x.shape, 8, sigma_max=80.0,
                                                   x_init=x * 80.0),
    }


@pytest.mark.parametrize("name", list(_samplers(None)))
def test_bfloat16_x_init_runs_in_bfloat16(name):
    """A bf16 x_init gives bf16 samples (no scan-carry dtype error) that match the float32 run
    from the same start and noise to bf16 accuracy."""
    sample = _samplers(discretize_process(VP, 50))[name]
    x_bf16 = X_T[:64].astype(jnp.bfloat16)
    low = jax.jit(sample)(KEY, x_bf16)
    high = jax.jit(sample)(KEY, x_bf16.astype(jnp.float32))
    assert isinstance(low, SampleResult) and isinstance(high, SampleResult)
    assert low.samples.dtype == jnp.bfloat16 and high.samples.dtype == jnp.float32
    assert int(low.nfe) == int(high.nfe)
    low, high = np.asarray(low.samples, np.float64), np.asarray(high.samples, np.float64)
    assert np.all(np.isfinite(low))
    np.testing.assert_allclose(low, high, rtol=0.0, atol=0.02 * (1.0 + np.abs(high).max()))
