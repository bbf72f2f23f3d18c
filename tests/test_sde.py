"""SDEs and the Gaussian-data oracle, checked against simulation, autodiff and scipy.

Monte Carlo tolerances are 5 standard errors plus a stated discretization allowance.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gen_jax.core.gaussian_data import GaussianData
from gen_jax.core.schedules import LinearLogSNR, LogSNRSchedule
from gen_jax.core.sde import VESDE, VPSDE, LogSNRSDE, Process, SubVPSDE, probability_flow_drift

PROCESSES = {
    "vp": VPSDE(),
    "subvp": SubVPSDE(),
    "ve": VESDE(),
    "logsnr": LogSNRSDE(LinearLogSNR()),
}
X0 = np.array([-1.0, 0.5, 2.0], np.float32)
DATA = GaussianData(jnp.array([0.3, -0.5, 1.0]), jnp.array([0.5, 1.0, 0.2]))


@functools.partial(jax.jit, static_argnums=(4,))
def _forward_em(process, key, x, t0, n_steps):
    """Euler-Maruyama for the forward SDE from t0 over n_steps of dt = 1/1000."""
    dt = 1e-3

    def step(x, i):
        t = jnp.full(x.shape[:1], t0 + i * dt)
        drift, g = process.sde(x, t)
        z = jax.random.normal(jax.random.fold_in(key, i), x.shape)
        return x + drift * dt + g[:, None] * jnp.sqrt(dt) * z, None

    return jax.lax.scan(step, x, jnp.arange(n_steps))[0]


@pytest.mark.parametrize("name", list(PROCESSES))
def test_marginal_prob_matches_euler_maruyama(name):
    process = PROCESSES[name]
    m = 10000
    key = jax.random.PRNGKey(0)
    x = jnp.broadcast_to(jnp.asarray(X0), (m, 3))
    if name == "ve":
        # score_sde's VE marginal has std sigma(t), so x(0) = x0 + sigma_min z.
        x = x + process.sigma_min * jax.random.normal(jax.random.fold_in(key, 99), x.shape)
    for k, t in enumerate((0.5, 1.0)):
        x = _forward_em(process, jax.random.fold_in(key, k), x, t - 0.5, 500)
        mean, std = jax.jit(process.marginal_prob)(jnp.asarray(X0)[None], jnp.array([t]))
        mean, std = np.asarray(mean[0], np.float64), float(std[0])
        sample = np.asarray(x, np.float64)
        se_mean = std / np.sqrt(m)
        assert np.all(np.abs(sample.mean(0) - mean) < 5 * se_mean + 1e-2 * std), (t, sample.mean(0), mean)
        # Pool the three dims for the variance (it does not depend on x0); EM's O(dt) bias
        # is below 1% of the variance here.
        var = sample.var(0).mean()
        se_var = std**2 * np.sqrt(2.0 / (3 * m))
        assert abs(var - std**2) < 5 * se_var + 1e-2 * std**2, (t, var, std**2)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_log_snr_and_its_derivative(name):
    process = PROCESSES[name]
    t = jnp.array([1e-3, 0.1, 0.5, 0.9, 1.0])

    @jax.jit
    def compute(process, t):
        autodiff = jax.vmap(jax.grad(process.log_snr))(t)
        return process.alpha_sigma(t), process.log_snr(t), process.dlog_snr_dt(t), autodiff

    (alpha, sigma), log_snr, dlog_snr, autodiff = compute(process, t)
    np.testing.assert_allclose(np.asarray(log_snr),
                               np.log(np.asarray(alpha, np.float64) ** 2 / np.asarray(sigma, np.float64) ** 2),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(dlog_snr), np.asarray(autodiff), rtol=1e-4)


def test_logsnr_sde_differentiates_a_schedule_without_dlog_snr_dt():
    class OnlyLogSNR(LogSNRSchedule):  # the interface's default dlog_snr_dt (jvp)
        log_snr = staticmethod(LinearLogSNR().log_snr)

    x = jnp.ones((3, 2))
    t = jnp.array([0.1, 0.5, 0.9])
    via_jvp = jax.jit(lambda x, t: LogSNRSDE(OnlyLogSNR()).sde(x, t))(x, t)
    via_method = jax.jit(lambda x, t: PROCESSES["logsnr"].sde(x, t))(x, t)
    for a, b in zip(via_jvp, via_method):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    # g^2 = -sigma^2 dlogSNR/dt (VP with alpha^2 = sigmoid(logSNR)).
    sigma2 = 1 / (1 + np.exp(13.3 - 18.3 * np.asarray(t, np.float64)))
    np.testing.assert_allclose(np.asarray(via_method[1]) ** 2, sigma2 * 18.3, rtol=1e-5)


def test_vp_closed_forms_match_reference_equations():
    t = np.array([1e-7, 0.01, 0.3, 1.0])
    log_m = -t**2 * (20.0 - 0.1) / 4 - t * 0.1 / 2
    vp, subvp, ve = jax.jit(lambda t: (VPSDE().alpha_sigma(t), SubVPSDE().alpha_sigma(t), VESDE().alpha_sigma(t)))(
        jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(np.asarray(vp[0]), np.exp(log_m), rtol=1e-5)
    # -expm1 keeps relative precision near t = 0, where sigma^2 ~ beta_min t.
    np.testing.assert_allclose(np.asarray(vp[1]), np.sqrt(-np.expm1(2 * log_m)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(subvp[0]), np.exp(log_m), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(subvp[1]), -np.expm1(2 * log_m), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ve[1]), 0.01 * 5000.0**t, rtol=1e-5)


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_prior_logp_matches_scipy(name):
    process = PROCESSES[name]
    z = process.prior_sample(jax.random.PRNGKey(1), (4, 2, 3))
    scale = 50.0 if name == "ve" else 1.0
    expected = stats.norm.logpdf(np.asarray(z, np.float64), scale=scale).reshape(4, -1).sum(-1)
    np.testing.assert_allclose(np.asarray(jax.jit(process.prior_logp)(z)), expected, rtol=1e-5)
    big = np.asarray(process.prior_sample(jax.random.PRNGKey(2), (20000,)), np.float64)
    assert abs(big.std() - scale) < 5 * scale / np.sqrt(2 * 20000)


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_probability_flow_drift(name):
    process = PROCESSES[name]
    score_fn = functools.partial(DATA.score, process)
    x = DATA.sample(jax.random.PRNGKey(3), 4)
    t = jnp.array([0.1, 0.3, 0.6, 0.9])

    @jax.jit
    def compute(x, t):
        return process.sde(x, t), score_fn(x, t), probability_flow_drift(process, score_fn, x, t)

    (drift, g), score, pf_helper = jax.tree.map(np.asarray, compute(x, t))
    expected_pf = drift - 0.5 * g[:, None] ** 2 * score
    np.testing.assert_allclose(pf_helper, expected_pf, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="score_fn output shape"):
        probability_flow_drift(process, lambda y, s: y[:, :1], x, t)  # broadcastable, still wrong


@functools.partial(jax.jit, static_argnums=(3, 4))
def _reverse_solve(process, key, x, n_steps, probability_flow):
    """Integrate the reverse SDE dx = [f - g^2 score] dt + g dw-bar (Euler-Maruyama) or the
    PF-ODE (Heun, ``probability_flow_drift``) with the oracle score from t=1 to t=1e-3 (Song et
    al. 2021, eq. 6 and 13); dt is negative."""
    score_fn = functools.partial(DATA.score, process)
    ts = jnp.linspace(1.0, 1e-3, n_steps + 1)

    def step(x, i):
        t, t_next = ts[i], ts[i + 1]
        dt = t_next - t
        tb, tb_next = jnp.full(x.shape[:1], t), jnp.full(x.shape[:1], t_next)
        if probability_flow:
            drift = probability_flow_drift(process, score_fn, x, tb)
            x_euler = x + drift * dt
            return x + 0.5 * (drift + probability_flow_drift(process, score_fn, x_euler, tb_next)) * dt, None
        f, g = process.sde(x, tb)
        drift = f - g[:, None] ** 2 * score_fn(x, tb)
        z = jax.random.normal(jax.random.fold_in(key, i), x.shape)
        return x + drift * dt + g[:, None] * jnp.sqrt(-dt) * z, None

    return jax.lax.scan(step, x, jnp.arange(n_steps))[0]


@pytest.mark.parametrize("name, probability_flow", [("vp", True), ("ve", True), ("subvp", True), ("vp", False)])
def test_reverse_process_transports_marginal_to_data(name, probability_flow):
    # Start from the exact t=1 marginal of Gaussian data; the reverse SDE / PF-ODE with the
    # exact score must end at the t=1e-3 marginal (moments within 5 SE + 2% discretization).
    process = PROCESSES[name]
    m = 8000

    @jax.jit
    def run(process, key):
        z = jax.random.normal(key, (m, 3))
        x1 = process.alpha_sigma(jnp.ones(()))[0] * DATA.mean + DATA.marginal_std(process, 1.0) * z
        out = _reverse_solve(process, jax.random.fold_in(key, 1), x1, 300 if probability_flow else 1000,
                             probability_flow)
        mean = process.alpha_sigma(jnp.asarray(1e-3))[0] * DATA.mean
        return out, mean, DATA.marginal_std(process, 1e-3)

    out, mean, std = (np.asarray(a, np.float64) for a in run(process, jax.random.PRNGKey(4)))
    assert np.all(np.abs(out.mean(0) - mean) < 5 * std / np.sqrt(m) + 0.02 * std), (out.mean(0), mean)
    assert np.all(np.abs(out.std(0) - std) < 5 * std / np.sqrt(2 * m) + 0.02 * std), (out.std(0), std)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_oracle_score_is_gradient_of_marginal_log_prob(name):
    process = PROCESSES[name]
    x = DATA.sample(jax.random.PRNGKey(5), 4) * 2.0
    t = jnp.array([0.05, 0.3, 0.7, 1.0])

    @jax.jit
    def compute(process, x, t):
        grad = jax.grad(lambda y: jnp.sum(DATA.marginal_log_prob(process, y, t)))(x)
        return (grad, DATA.score(process, x, t), process.alpha_sigma(t), DATA.marginal_log_prob(process, x, t),
                DATA.marginal_std(process, t), DATA.log_prob(x))

    grad, score, alpha_sigma, log_prob_t, std_t, log_prob = compute(process, x, t)
    np.testing.assert_allclose(np.asarray(score), np.asarray(grad), rtol=1e-5, atol=1e-6)
    alpha, sigma = (np.asarray(a, np.float64)[:, None] for a in alpha_sigma)
    var = alpha**2 * np.asarray(DATA.std, np.float64) ** 2 + sigma**2
    x64 = np.asarray(x, np.float64)
    expected = stats.norm.logpdf(x64, loc=alpha * np.asarray(DATA.mean), scale=np.sqrt(var)).sum(-1)
    np.testing.assert_allclose(np.asarray(log_prob_t), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(std_t), np.sqrt(var), rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(log_prob),
        stats.norm.logpdf(x64, np.asarray(DATA.mean), np.asarray(DATA.std)).sum(-1), rtol=1e-5)


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_oracle_predictions_are_conditional_means(name):
    # E[eps | x_t] and E[x0 | x_t] are characterised by E[residual] = 0 and E[residual x_t] = 0
    # (Gaussian: the linear MMSE estimator is the conditional mean); checked by Monte Carlo.
    process = PROCESSES[name]
    m, t = 40000, 0.4

    @jax.jit
    def compute(key):
        k1, k2 = jax.random.split(key)
        x0 = DATA.sample(k1, m)
        eps = jax.random.normal(k2, x0.shape)
        alpha, sigma = process.alpha_sigma(jnp.asarray(t))
        x_t = alpha * x0 + sigma * eps
        tb = jnp.full((m,), t)
        return (x0, eps, x_t, alpha, sigma, DATA.eps(process, x_t, tb), DATA.x0(process, x_t, tb),
                DATA.min_eps_mse(process, t))

    outputs = compute(jax.random.PRNGKey(6))
    x0, eps, x_t, alpha, sigma, eps_hat, x0_hat, min_mse = (np.asarray(a, np.float64) for a in outputs)
    np.testing.assert_allclose(alpha * x0_hat + sigma * eps_hat, x_t, rtol=1e-4, atol=1e-4)
    xt_c = (x_t - x_t.mean(0)) / x_t.std(0)
    for residual in (eps - eps_hat, x0 - x0_hat):
        scale = residual.std(0) / np.sqrt(m)
        assert np.all(np.abs(residual.mean(0)) < 5 * scale)
        assert np.all(np.abs((residual * xt_c).mean(0)) < 5 * scale)
    squared = np.sum((eps - eps_hat) ** 2, -1)
    assert abs(squared.mean() - min_mse[0]) < 5 * squared.std() / np.sqrt(m)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_processes_implement_the_protocol(name):
    process = PROCESSES[name]
    assert isinstance(process, Process)
    # smallest_time is where the marginal stops being degenerate: finite logSNR and sigma > 0,
    # and sigma -> 0 (VP family) below it.
    t0 = jnp.asarray(process.smallest_time)
    alpha, sigma = process.alpha_sigma(t0)
    assert np.isfinite(float(process.log_snr(t0))) and float(sigma) > 0 and float(alpha) > 0
    assert process.T == 1.0


def test_process_and_schedule_interfaces_are_abstract():
    with pytest.raises(TypeError):
        Process()
    with pytest.raises(TypeError):
        LogSNRSchedule()
    # VP at t = 0 has sigma = 0 (infinite logSNR): why its smallest_time is > 0.
    assert float(VPSDE().alpha_sigma(0.0)[1]) == 0.0 and VPSDE().smallest_time > 0


def test_traced_times_pass_unchecked():
    # Inside jit only the shape is checked; a time of 1.5 is computed with, not rejected.
    out = jax.jit(lambda t: VESDE().alpha_sigma(t)[1])(jnp.asarray([1.5]))
    np.testing.assert_allclose(np.asarray(out), 0.01 * 5000.0**1.5, rtol=1e-4)


@pytest.mark.parametrize("make, match", [
    (lambda: VPSDE(beta_min=-0.1), "beta_min"),
    (lambda: VPSDE(beta_min=5.0, beta_max=1.0), "beta_min"),
    (lambda: SubVPSDE(N=1), "N"),
    (lambda: VPSDE(N=1000.0), "N"),
    (lambda: VESDE(sigma_min=60.0), "sigma_min"),
    (lambda: LogSNRSDE(LinearLogSNR(), N=0), "N"),
    (lambda: VPSDE().alpha_sigma(1.5), r"\[0, 1\]"),
    (lambda: VPSDE().alpha_sigma(np.array([-0.1, 0.5])), r"\[0, 1\]"),
    (lambda: VPSDE().alpha_sigma(jnp.array([0.5, 1.5])), r"\[0, 1\]"),  # a concrete jax array
    (lambda: LogSNRSDE(LinearLogSNR()).sde(jnp.zeros((2, 3)), jnp.array([-0.5, 0.5])), r"\[0, 1\]"),
    (lambda: LinearLogSNR().log_snr(jnp.asarray(2.0)), r"\[0, 1\]"),
    (lambda: VPSDE().beta(jnp.array([True, False])), "bool"),
    (lambda: LogSNRSDE(object()), "LogSNRSchedule"),
    (lambda: VESDE().sde(jnp.zeros((2, 3)), jnp.zeros((2, 1))), "shape"),
    (lambda: VPSDE().marginal_prob(jnp.zeros((2, 3)), jnp.zeros((3,))), "batch size"),
    (lambda: GaussianData(jnp.zeros(3), jnp.ones(2)), "same"),
    (lambda: GaussianData(jnp.zeros(3), jnp.zeros(3)), "std"),
    (lambda: DATA.log_prob(jnp.zeros((2, 4))), "shape"),
])
def test_invalid_inputs_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
