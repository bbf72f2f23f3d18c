"""Prediction conversions (float64 round trips, v as d x_t / d phi) and the Denoiser wrapper
against the Gaussian-data oracle."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.core.gaussian_data import GaussianData
from gen_jax.core.param import (
    PREDICTIONS, Denoiser, cfg_combine, convert, eps_to_score, eps_to_x0, eps_x0_to_v, score_to_eps,
    v_to_eps, v_to_x0, x0_to_eps)
from gen_jax.core.schedules import LinearLogSNR
from gen_jax.core.sde import VESDE, VPSDE, LogSNRSDE, SubVPSDE


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(5, 2, 3))
    eps = rng.normal(size=(5, 2, 3))
    alpha = rng.uniform(0.05, 1.0, size=5)
    sigma = rng.uniform(0.05, 3.0, size=5)  # not VP: alpha^2 + sigma^2 != 1
    return x0, eps, alpha, sigma


def test_conversions_round_trip_in_float64(draws):
    x0, eps, alpha, sigma = draws
    with jax.enable_x64(True):
        x0, eps, alpha, sigma = map(jnp.asarray, (x0, eps, alpha, sigma))
        a, s = alpha[:, None, None], sigma[:, None, None]
        x_t = a * x0 + s * eps
        v = eps_x0_to_v(eps, x0, alpha, sigma)
        np.testing.assert_allclose(v, a * eps - s * x0, rtol=1e-12)
        np.testing.assert_allclose(eps_to_x0(eps, x_t, alpha, sigma), x0, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(x0_to_eps(x0, x_t, alpha, sigma), eps, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(v_to_eps(v, x_t, alpha, sigma), eps, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(v_to_x0(v, x_t, alpha, sigma), x0, rtol=1e-10, atol=1e-12)
        score = eps_to_score(eps, sigma)
        # score of q(x_t | x0) = N(alpha x0, sigma^2): -(x_t - alpha x0) / sigma^2.
        np.testing.assert_allclose(score, -(x_t - a * x0) / s**2, rtol=1e-10)
        np.testing.assert_allclose(score_to_eps(score, sigma), eps, rtol=1e-12)
        assert x_t.dtype == jnp.float64


def test_convert_table_every_pair_in_float64(draws):
    # Each kind written from its definition (not from the table), then every pair converted.
    x0, eps, alpha, sigma = draws
    with jax.enable_x64(True):
        x0, eps, alpha, sigma = map(jnp.asarray, (x0, eps, alpha, sigma))
        a, s = alpha[:, None, None], sigma[:, None, None]
        x_t = a * x0 + s * eps
        # Time derivatives of some path through these (alpha, sigma), with a decreasing log-SNR
        # (alpha sigma' - sigma alpha' > 0): the velocity u = alpha' x0 + sigma' eps.
        d_alpha, d_sigma = -0.7 * sigma, 0.9 * alpha + 0.1
        da, ds = d_alpha[:, None, None], d_sigma[:, None, None]
        truth = dict(eps=eps, x0=x0, v=a * eps - s * x0, score=-(x_t - a * x0) / s**2,
                     velocity=da * x0 + ds * eps)
        for src in PREDICTIONS:
            for dst in PREDICTIONS:
                out = convert(truth[src], src, dst, x_t, alpha, sigma, d_alpha, d_sigma)
                assert out.dtype == jnp.float64
                np.testing.assert_allclose(out, truth[dst], rtol=1e-10, atol=1e-12, err_msg=f"{src} -> {dst}")
                back = convert(out, dst, src, x_t, alpha, sigma, d_alpha, d_sigma)
                np.testing.assert_allclose(back, truth[src], rtol=1e-10, atol=1e-12, err_msg=f"{src} -> {dst} -> {src}")
    with pytest.raises(ValueError, match="from_kind"):
        convert(eps, "noise", "eps", x_t, alpha, sigma)
    with pytest.raises(ValueError, match="to_kind"):
        convert(eps, "eps", "logits", x_t, alpha, sigma)
    with pytest.raises(ValueError, match="d_alpha and d_sigma"):
        convert(eps, "eps", "velocity", x_t, alpha, sigma)


def test_v_is_the_angular_velocity_of_x_t(draws):
    # Salimans & Ho 2022: with alpha = cos(phi), sigma = sin(phi), v = d x_t / d phi.
    x0, eps, _, _ = draws
    with jax.enable_x64(True):
        phi = jnp.linspace(0.1, 1.4, 5)
        x_of_phi = lambda p: jnp.cos(p)[:, None, None] * x0 + jnp.sin(p)[:, None, None] * eps
        _, dx = jax.jvp(x_of_phi, (phi,), (jnp.ones_like(phi),))
        np.testing.assert_allclose(eps_x0_to_v(eps, x0, jnp.cos(phi), jnp.sin(phi)), dx, rtol=1e-12, atol=1e-14)


DATA = GaussianData(jnp.array([[0.3, -0.5], [1.0, 0.0]]), jnp.array([[0.5, 1.0], [0.2, 2.0]]))
PROCESSES = [VPSDE(), SubVPSDE(), VESDE(), LogSNRSDE(LinearLogSNR())]


def _oracle(process, kind):
    """Oracle network of the given kind, written from GaussianData's closed forms."""
    if kind == "eps":
        return functools.partial(DATA.eps, process)
    if kind == "x0":
        return functools.partial(DATA.x0, process)
    if kind == "score":
        return functools.partial(DATA.score, process)

    def v(x, t):
        alpha, sigma = process.alpha_sigma(t)
        return alpha[:, None, None] * DATA.eps(process, x, t) - sigma[:, None, None] * DATA.x0(process, x, t)
    return v


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
def test_denoiser_recovers_oracle_from_any_prediction(process):
    # float64: x0 -> eps divides by sigma, ill-conditioned in float32 at small t.

    @jax.jit
    def compute(x, t):
        truth = {kind: _oracle(process, kind)(x, t) for kind in ("eps", "x0", "v", "score")}
        got = {}
        for kind in truth:
            den = Denoiser(process, fn=_oracle(process, kind), prediction=kind)
            eps, x0 = den.eps_and_x0(x, t)
            got[kind] = dict(eps=den.eps(x, t), x0=den.x0(x, t), v=den.v(x, t), score=den.score(x, t),
                             pair_eps=eps, pair_x0=x0)
        return truth, got

    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 2, 2)) * 1.5)
        t = jnp.array([0.02, 0.3, 0.6, 0.95])
        truth, got = compute(x, t)
        assert x.dtype == jnp.float64
    for kind, outputs in got.items():
        for name, value in outputs.items():
            expected = np.asarray(truth[name.removeprefix("pair_")])
            np.testing.assert_allclose(np.asarray(value), expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max(),
                                       err_msg=f"{type(process).__name__}: {kind} -> {name}")


def test_denoiser_is_a_pytree_usable_under_jit():
    process = VPSDE()
    den = Denoiser(process, fn=_oracle(process, "eps"), prediction="eps")
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 2, 2)), jnp.float32)
    t = jnp.array([0.2, 0.7])
    out = jax.jit(lambda d, x, t: d.x0(x, t))(den, x, t)
    expected = jax.jit(functools.partial(DATA.x0, process))(x, t)
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-4, atol=1e-5)


def test_cfg_combine():
    cond = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    uncond = jnp.array([[0.5, 0.5], [1.0, -1.0]])
    np.testing.assert_allclose(cfg_combine(cond, uncond, 1.0), cond)
    np.testing.assert_allclose(cfg_combine(cond, uncond, 0.0), uncond)
    np.testing.assert_allclose(cfg_combine(cond, uncond, 3.0), 3.0 * cond - 2.0 * uncond)
    per_example = cfg_combine(cond, uncond, jnp.array([0.0, 2.0]))
    np.testing.assert_allclose(per_example, jnp.stack([uncond[0], 2.0 * cond[1] - uncond[1]]))


def test_invalid_inputs_raise():
    process = VPSDE()
    x, t = jnp.zeros((2, 3)), jnp.array([0.1, 0.2])
    with pytest.raises(ValueError, match="output shape"):
        Denoiser(process, fn=lambda x, t: x[:, :2], prediction="eps").eps(x, t)
    with pytest.raises(ValueError, match="output shape"):
        jax.jit(lambda x, t: Denoiser(process, fn=lambda x, t: x[None], prediction="v").x0(x, t))(x, t)
    with pytest.raises(ValueError, match="prediction"):
        Denoiser(process, fn=lambda x, t: x, prediction="noise")
    with pytest.raises(ValueError, match="callable"):
        Denoiser(process=process, fn=None, prediction="eps")
    with pytest.raises(ValueError, match="same shape"):
        cfg_combine(jnp.zeros((2, 3)), jnp.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Denoiser(process, fn=lambda x, t: x, prediction="eps").eps(x, 2.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):  # a concrete jax time is checked too
        Denoiser(process, fn=lambda x, t: x, prediction="eps").eps(x, jnp.array([0.5, -0.5]))
