"""Flow matching (gen_jax.core.flow, core.samplers.flow_ode, families.flow) against closed forms.

Gaussian data x_0 ~ N(m, diag(s^2)) on an affine path x_t = alpha x_0 + sigma eps has the
marginal N(alpha m, var(t)), var = alpha^2 s^2 + sigma^2, and the exact ODE flow is the affine
map x_t = alpha m + sqrt(var(t)) w with w conserved. Its velocity, derived here from that map
and not from the library's conversions, is
    v(x, t) = alpha' m + var'(t) / (2 var(t)) (x - alpha m),  var' = 2 (alpha alpha' s^2 + sigma sigma').
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.core import flow
from gen_jax.core.gaussian_data import GaussianData
from gen_jax.core.ode_likelihood import pf_ode_nll
from gen_jax.core.param import Denoiser, convert, velocity_target
from gen_jax.core.samplers import dpm_solver_pp_sample
from gen_jax.core.samplers.flow_ode import flow_euler_sample, flow_heun_sample
from gen_jax.core.sde import probability_flow_drift

M = jnp.array([0.5, -0.3, 0.0, 0.8])
S = jnp.array([0.5, 0.3, 1.0, 0.2])
DATA = GaussianData(M, S)


def cosine_alpha(t):
    return jnp.cos(0.5 * jnp.pi * t)


def cosine_sigma(t):
    return jnp.sin(0.5 * jnp.pi * t)


PATHS = {"linear": flow.linear_path(), "cosine": flow.AffinePath(cosine_alpha, cosine_sigma, 1e-4)}


def exact_velocity(path):
    """The closed-form marginal velocity of DATA on `path` (module docstring)."""
    def v(x, t):
        a, s, da, ds = (c[:, None] for c in path.coefficients(t))
        var = a**2 * S**2 + s**2
        return da * M + (a * da * S**2 + s * ds) / var * (x - a * M)
    return v


def exact_flow_map(path, z, t):
    """x(t) of the exact ODE from x(T) = z: alpha(t) m + sqrt(var(t) / var(T)) (z - alpha(T) m)."""
    a_T, s_T = path.alpha_sigma(jnp.float32(path.T))
    a, s = path.alpha_sigma(jnp.float32(t))
    var_T, var = a_T**2 * S**2 + s_T**2, a**2 * S**2 + s**2
    return a * M + jnp.sqrt(var / var_T) * (z - a_T * M)


@pytest.mark.parametrize("name", sorted(PATHS))
def test_pf_drift_of_exact_score_is_the_exact_velocity(name):
    """f - g^2/2 score of the path's SDE (score: GaussianData's) equals the closed-form
    velocity, and the velocity -> score conversion gives GaussianData's score back. (Up to
    t = 0.99: f - g^2/2 score cancels two terms of size |x| / alpha, so near T = 1 - t_eps its
    float32 rounding is ~1e-7 / alpha(T).)"""
    path = PATHS[name]
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 4))
    t = jnp.linspace(0.02, 0.99, 16)
    score = lambda x, t: DATA.score(path, x, t)  # noqa: E731
    v = exact_velocity(path)
    np.testing.assert_allclose(probability_flow_drift(path, score, x, t), v(x, t), atol=2e-5)
    model = Denoiser(path, fn=v, prediction="velocity")
    np.testing.assert_allclose(model.score(x, t), score(x, t), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.x0(x, t), DATA.x0(path, x, t), atol=1e-4)
    np.testing.assert_allclose(model.velocity(x, t), v(x, t), rtol=1e-5, atol=1e-5)


def test_linear_path_coefficients_and_log_snr():
    path = flow.linear_path()
    t = jnp.array([0.1, 0.5, 0.9])
    a, s, da, ds = path.coefficients(t)
    np.testing.assert_allclose(a, 1 - t) and np.testing.assert_allclose(s, t)
    np.testing.assert_allclose(da, -1.0) and np.testing.assert_allclose(ds, 1.0)
    np.testing.assert_allclose(path.log_snr(t), 2 * np.log((1 - t) / t), rtol=1e-5)
    np.testing.assert_allclose(path.dlog_snr_dt(t), -2 / (t * (1 - t)), rtol=1e-5)
    assert path.T == 1 - 1e-5 and np.isfinite(float(path.log_snr(path.T)))


def test_conversions_round_trip_in_float64():
    """From x0, eps drawn in float64: x = alpha x0 + sigma eps, u = alpha' x0 + sigma' eps in
    numpy; every conversion recovers x0, eps, score = -eps/sigma and u (linear and cosine)."""
    rng = np.random.default_rng(1)
    x0, eps = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    t = np.linspace(0.05, 0.95, 6)
    coefficient_sets = {
        "linear": (1 - t, t, -np.ones_like(t), np.ones_like(t)),
        "cosine": (np.cos(np.pi * t / 2), np.sin(np.pi * t / 2), -np.pi / 2 * np.sin(np.pi * t / 2),
                   np.pi / 2 * np.cos(np.pi * t / 2)),
    }
    with jax.enable_x64(True):
        for name, (a, s, da, ds) in coefficient_sets.items():
            c = (a, s, da, ds)
            x = a[:, None] * x0 + s[:, None] * eps
            u = da[:, None] * x0 + ds[:, None] * eps
            score = -eps / s[:, None]
            checks = [
                (velocity_target(x0, eps, da, ds), u),
                (convert(u, "velocity", "x0", x, *c), x0),
                (convert(u, "velocity", "eps", x, *c), eps),
                (convert(u, "velocity", "score", x, *c), score),
                (convert(x0, "x0", "velocity", x, *c), u),
                (convert(eps, "eps", "velocity", x, *c), u),
                (convert(score, "score", "velocity", x, *c), u),
            ]
            for got, want in checks:
                assert np.asarray(got).dtype == np.float64
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
        # The linear path's forms in the brief.
        x = (1 - t)[:, None] * x0 + t[:, None] * eps
        v = eps - x0
        lin = coefficient_sets["linear"]
        np.testing.assert_allclose(convert(v, "velocity", "score", x, *lin),
                                   -(x + (1 - t)[:, None] * v) / t[:, None], rtol=1e-12)
        np.testing.assert_allclose(convert(v, "velocity", "x0", x, *lin), x - t[:, None] * v,
                                   rtol=1e-12)


def test_euler_first_order_heun_second_order():
    """Max error against the exact flow map at t=0, fitted slope of log error vs log steps."""
    path = PATHS["linear"]
    key = jax.random.PRNGKey(2)
    z = path.prior_sample(jax.random.split(key)[0], (64, 4))  # the samplers' own starting noise
    exact = exact_flow_map(path, z, 0.0)
    steps = np.array([8, 16, 32, 64])
    errors = {}
    for name, sampler in (("euler", flow_euler_sample), ("heun", flow_heun_sample)):
        errors[name] = []
        for n in steps:
            out = jax.jit(lambda k, n=n: sampler(k, exact_velocity(path), path, (64, 4),
                                                 jnp.linspace(path.T, 0.0, n + 1)))(key)
            assert out.nfe == n * (2 if name == "heun" else 1)
            errors[name].append(float(jnp.max(jnp.abs(out.samples - exact))))
    slope = {k: np.polyfit(np.log(steps), np.log(v), 1)[0] for k, v in errors.items()}
    assert -1.15 < slope["euler"] < -0.85, (slope, errors)
    assert -2.3 < slope["heun"] < -1.7, (slope, errors)


def test_ode_transports_prior_to_data_moments():
    """Heun (32 steps, exact velocity) from N(0, I): per-dim mean and variance of 8192 samples
    match N(m, s^2) within 5 standard errors."""
    path = PATHS["linear"]
    n = 8192
    out = jax.jit(lambda k: flow_heun_sample(k, exact_velocity(path), path, (n, 4),
                                             jnp.linspace(path.T, 0.0, 33)))(jax.random.PRNGKey(3))
    x = np.asarray(out.samples, np.float64)
    s = np.asarray(S, np.float64)
    assert np.all(np.abs(x.mean(0) - np.asarray(M)) < 5 * s / math.sqrt(n))
    assert np.all(np.abs(x.var(0) - s**2) < 5 * s**2 * math.sqrt(2 / n))


@pytest.mark.parametrize("name", sorted(PATHS))
def test_pf_ode_nll_equals_closed_form_log_density(name):
    """pf_ode_nll with the path as the process and the score from the exact velocity (exact
    trace) equals -log q_{t_min}(x) in closed form within 0.01 bits/dim, per example."""
    path = PATHS[name]
    t_min = 1e-3
    key = jax.random.PRNGKey(4)
    x0 = DATA.sample(key, 8)
    a, s = path.alpha_sigma(jnp.float32(t_min))
    x = a * x0 + s * jax.random.normal(jax.random.fold_in(key, 1), x0.shape)
    score = Denoiser(path, fn=exact_velocity(path), prediction="velocity").score
    nll, terms = jax.jit(lambda k, x: pf_ode_nll(k, path, score, x, t_min=t_min,
                                               divergence="exact"))(key, x)
    expected = -DATA.marginal_log_prob(path, x, jnp.full((8,), t_min))
    bits = np.abs(np.asarray(nll - expected)) / (4 * math.log(2.0))
    assert np.all(bits < 0.01), bits
    assert np.all(np.asarray(terms["nfe"]) > 0)


def test_dpm_solver_pp_through_the_log_snr_view():
    """DPM-Solver++(2M) on the path with the x0 of the exact velocity: its endpoint at t_min
    approaches the exact flow map's, error falling with the steps (below 0.05 at 64)."""
    path = PATHS["linear"]
    key, t_min = jax.random.PRNGKey(5), 1e-3
    z = path.prior_sample(jax.random.split(key)[0], (64, 4))
    exact = exact_flow_map(path, z, t_min)
    model = Denoiser(path, fn=exact_velocity(path), prediction="velocity")
    errors = []
    for n in (8, 16, 32, 64):
        x, nfe = jax.jit(lambda k, n=n: dpm_solver_pp_sample(k, model, path, (64, 4), n,
                                                             t_min=t_min))(key)
        assert nfe == n
        errors.append(float(jnp.max(jnp.abs(x - exact))))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.05, errors


@pytest.mark.parametrize("t_sampling", ["uniform", "logit_normal"])
def test_fm_loss_is_minimised_by_the_exact_field(t_sampling):
    """Monte Carlo over 4096 draws, paired (same key): the loss of v* + delta h exceeds that of v*
    for delta = +-0.1, and d loss / d delta at 0 (per-example values) is 0 within 5 SE, while
    the same derivative for a wrong field (v* shifted by 0.3) is not."""
    path = PATHS["linear"]
    v_star = exact_velocity(path)
    x0 = DATA.sample(jax.random.PRNGKey(6), 4096)
    key = jax.random.PRNGKey(7)
    h = lambda x, t: jnp.sin(x) + t[:, None]  # noqa: E731

    def loss(delta, shift=0.0):
        fn = lambda x, t: v_star(x, t) + shift + delta * h(x, t)  # noqa: E731
        return flow.flow_matching_loss(key, fn, x0, path, t_sampling=t_sampling, m=0.3, s=0.8)

    base = loss(0.0)
    for delta in (-0.1, 0.1):
        diff = np.asarray(loss(delta) - base, np.float64)
        assert diff.mean() > 5 * diff.std(ddof=1) / math.sqrt(len(diff))
    for shift, zero in ((0.0, True), (0.3, False)):
        grad = np.asarray(jax.jacfwd(lambda d: loss(d, shift))(0.0), np.float64)  # (B,)
        se = grad.std(ddof=1) / math.sqrt(len(grad))
        assert (abs(grad.mean()) < 5 * se) == zero, (shift, grad.mean(), se)


def test_logit_normal_times_have_the_right_law():
    """logit(t) of i.i.d. logit-normal draws has mean m and std s (5 SE); uniform stays in [0, 1)."""
    t = flow.sample_flow_times(jax.random.PRNGKey(8), 20000, "logit_normal", m=0.5, s=1.5,
                               antithetic=False)
    logit = np.log(np.asarray(t, np.float64)) - np.log1p(-np.asarray(t, np.float64))
    n = len(logit)
    assert abs(logit.mean() - 0.5) < 5 * 1.5 / math.sqrt(n)
    assert abs(logit.std() - 1.5) < 5 * 1.5 / math.sqrt(2 * n)
    u = flow.sample_flow_times(jax.random.PRNGKey(9), 64, "uniform")
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0


def test_log_snr_view_is_the_same_model():
    """The VP view's eps of the exact flow velocity equals GaussianData's exact eps under the
    VP process (same data, same log-SNR): the two are one model."""
    path = PATHS["cosine"]
    process, denoiser = flow.log_snr_view(path, exact_velocity(path), t_min=0.01)
    z = jax.random.normal(jax.random.PRNGKey(10), (16, 4))
    s = jnp.linspace(0.0, 1.0, 16)
    np.testing.assert_allclose(denoiser.eps(z, s), DATA.eps(process, z, s), atol=2e-3)
    np.testing.assert_allclose(process.log_snr(jnp.array([0.0, 1.0])),
                               path.log_snr(jnp.array([0.01, path.T])), rtol=1e-5)


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match="t_eps"):
        flow.AffinePath(t_eps=0.0)
    with pytest.raises(ValueError, match="log-SNR"):
        flow.AffinePath(flow.linear_sigma, flow.linear_alpha)  # noise at t=0: increasing
    with pytest.raises(ValueError, match="sampling"):
        flow.sample_flow_times(jax.random.PRNGKey(0), 4, "beta")
    path = PATHS["linear"]
    v = exact_velocity(path)
    with pytest.raises(ValueError, match="times"):
        flow_euler_sample(jax.random.PRNGKey(0), v, path, (2, 4), jnp.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="times"):
        flow_heun_sample(jax.random.PRNGKey(0), v, path, (2, 4), jnp.array([1.5, 0.0]))
    with pytest.raises(ValueError, match="t_min"):
        flow.log_snr_view(path, v, t_min=0.0)


# ---------------------------------------------------------------------------------------------
# The family through the training system
# ---------------------------------------------------------------------------------------------
def _tiny_config(steps):
    from experiments.configs.base import get_base_config
    c = get_base_config("flow", "digits")
    c.model.width, c.model.depth, c.model.num_heads = 16, 1, 2
    c.train.steps, c.train.batch_size = steps, 16
    c.optimizer.warmup_steps, c.optimizer.learning_rate = 2, 3e-3
    c.checkpoint.every_steps = steps
    c.logging.every_steps, c.logging.progress_bar, c.logging.tensorboard = 5, False, False
    c.eval.every_steps, c.eval.batch_size, c.eval.max_batches = 0, 24, 1
    c.eval.repeats, c.eval.max_examples = 1, 24
    c.sample.every_steps = 0
    c.flow.eval.t_min = 0.018
    c.flow.eval.ode_examples, c.flow.eval.ode_check_examples, c.flow.eval.ode_tolerance = 12, 12, 1e-6
    return c


def test_family_trains_on_digits_and_its_estimators_pass_the_audit(tmp_path):
    from experiments.comparison.evaluation import evaluate_model, held_out
    from experiments.comparison.report import audit
    from gen_jax import families
    from gen_jax.train.build import build_components
    from gen_jax.train.loop import train

    config = _tiny_config(steps=30)
    result = train(config, str(tmp_path))
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert math.isfinite(last) and last < first  # the FM loss goes down
    components = build_components(config)
    data, indices, spec = held_out(config)
    estimates = evaluate_model(config, components.view, result.state.ema_params, data, indices,
                               spec, log=lambda *a: None)
    assert [e.name for e in estimates][0].startswith("continuous-time ELBO")
    for e in estimates:
        assert np.all(np.isfinite(e.values)) and 0 < e.values.mean() < 20, e.name
    checks = audit(estimates)
    assert checks and all(c["holds"] for c in checks), checks
    family = families.get("flow")
    runs = family.samplers(components.view, spec, config)
    out = runs[0].fn(result.state.ema_params, jax.random.PRNGKey(0), 4)
    assert out.samples.shape == (4, 8, 8, 1) and out.samples.dtype == jnp.int32
    assert int(out.samples.min()) >= 0 and int(out.samples.max()) < spec.num_levels


@pytest.mark.parametrize("field, value", [("flow.t_sampling", "normal"),
                                          ("flow.logit_normal_s", 0.0),
                                          ("flow.eval.t_min", 0.0),
                                          ("flow.sample.heun_steps", (0,))])
def test_config_errors_name_the_field(field, value):
    from gen_jax.train.config import validate_config
    c = _tiny_config(steps=2)
    *sections, name = field.split(".")
    section = c
    for part in sections:
        section = section[part]
    section[name] = value
    with pytest.raises(ValueError, match=f"config.{field}"):
        validate_config(c)
