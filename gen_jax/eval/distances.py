"""Distances between two sets of features (host-side numpy, float64).

`frechet_distance` is the FID formula (Heusel et al. 2017) applied to any features;
`kernel_inception_distance` is the unbiased MMD^2 with the cubic polynomial kernel of
Binkowski et al. 2018 ("Demystifying MMD GANs"), averaged over subsets.
"""

import numpy as np


def _as_features(name, a):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"{name} must be (N, F) features with N >= 2, got shape {a.shape}")
    return a


def _sqrtm_psd(m):
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between Gaussians fitted to (N, F) and (M, F) feature sets.

    d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), symmetric form of
    tr((S_a S_b)^1/2) that stays real for PSD inputs.
    """
    a, b = _as_features("feats_a", feats_a), _as_features("feats_b", feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    d2 = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(cross)
    return float(max(d2, 0.0))


def kernel_inception_distance(feats_a, feats_b, *, num_subsets=10, subset_size=200, seed=0):
    """Unbiased MMD^2 with k(x, y) = (x.y / F + 1)^3; returns (mean, standard error) over subsets.

    Unbiased: its expectation is exactly 0 when both sets come from the same distribution.
    """
    a, b = _as_features("feats_a", feats_a), _as_features("feats_b", feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    m = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    dim = a.shape[1]
    values = []
    for _ in range(num_subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx = (x @ x.T / dim + 1) ** 3
        kyy = (y @ y.T / dim + 1) ** 3
        kxy = (x @ y.T / dim + 1) ** 3
        off = m * (m - 1)
        values.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    values = np.asarray(values)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0)
