"""Sample-quality distances against closed forms; the classifier learns the digits."""

import numpy as np
import pytest
import scipy.linalg

from gen_jax.eval import frechet_distance, kernel_inception_distance


def _closed_form_frechet(mu_a, cov_a, mu_b, cov_b):
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * cross)


def test_frechet_distance_matches_closed_form_of_the_fitted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 1.0
    b = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    expected = _closed_form_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_known_gaussians_converges():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200_000, 3)) * np.array([1.0, 2.0, 0.5])
    b = rng.normal(size=(200_000, 3)) + np.array([1.0, 0.0, 0.0])
    # |mu|^2 = 1; trace term: sum (s_i - 1)^2 = 0 + 1 + 0.25.
    assert frechet_distance(a, b) == pytest.approx(2.25, abs=0.03)


def test_kid_is_unbiased_for_equal_distributions_and_positive_otherwise():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    mean, se = kernel_inception_distance(a, b, num_subsets=50, subset_size=200)
    assert abs(mean) < 4 * se + 1e-3
    mean_shift, se_shift = kernel_inception_distance(a, b + 0.5, num_subsets=20, subset_size=200)
    assert mean_shift > 10 * se_shift


def test_bad_feature_shapes_are_rejected():
    with pytest.raises(ValueError, match="feature sizes"):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        kernel_inception_distance(np.zeros(5), np.zeros((5, 3)))
