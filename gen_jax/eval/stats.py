"""Summary statistics of per-example estimates: mean with standard error, and the paired check
that an upper bound is not below another estimate on the same examples."""
import numpy as np


def mean_and_se(values) -> tuple[float, float]:
    """(mean, standard error of the mean) of a 1-D sample; SE = std(ddof=1) / sqrt(N) (0 if N=1)."""
    x = np.asarray(values, np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"values contain {np.sum(~np.isfinite(x))} non-finite entries")
    se = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0
    return float(x.mean()), se


def paired_bound_check(bound, estimate, num_se: float = 3.0) -> dict:
    """Is E[bound] >= E[estimate] within `num_se` standard errors, on paired examples?

    bound, estimate: (N,) per-example values on the same N examples. The difference
    d_i = bound_i - estimate_i removes the example-to-example spread both share, so the check is
    much sharper than comparing two means with their own errors.
    Returns {'difference', 'se', 'z', 'holds'}: mean(d), its SE, mean(d)/SE, and whether
    mean(d) >= -num_se * SE.
    """
    b, e = np.asarray(bound, np.float64), np.asarray(estimate, np.float64)
    if b.shape != e.shape:
        raise ValueError(f"bound and estimate must be paired (same shape), got {b.shape} and {e.shape}")
    diff, se = mean_and_se(b - e)
    z = diff / se if se > 0 else (np.inf if diff >= 0 else -np.inf)
    return dict(difference=diff, se=se, z=float(z), holds=bool(diff >= -num_se * se))
