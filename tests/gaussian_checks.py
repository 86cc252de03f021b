"""The issue's statistical bar for a Gaussian source, shared by the model and RTL tests."""

from math import erf, sqrt

import numpy as np


def normal_cdf(values):
    unique, inverse = np.unique(values, return_inverse=True)
    return np.array([0.5 * (1 + erf(u / sqrt(2))) for u in unique])[inverse]


def check_gaussian_statistics(z, source):
    """The issue's bar for ``z`` shaped (stream, draw): distribution, tails, correlations."""
    flat = np.sort(z.ravel())
    n = flat.size
    cdf = normal_cdf(flat)
    # z is discrete: compare the normal CDF with the empirical CDF on both sides of each step
    ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    excess_kurtosis = np.mean(flat**4) / np.mean(flat**2) ** 2 - 3
    tail = np.mean(np.abs(flat) > 3)
    sequence = z.ravel()  # one stream after another, in draw order
    worst_lag = max(abs(np.corrcoef(sequence[:-lag], sequence[lag:])[0, 1]) for lag in range(1, 17))
    neighbours = abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1])  # stream r vs r + 1
    print(f"{source}: {n} samples, KS {ks:.5f}, mean {flat.mean():+.5f}, sd {flat.std():.5f}, "
          f"excess kurtosis {excess_kurtosis:+.4f}, P(|z|>3) {tail:.5f}, "
          f"worst |autocorrelation| lags 1..16 {worst_lag:.5f}, adjacent streams {neighbours:.5f}")
    assert n >= 1_000_000
    assert ks < 0.003
    assert abs(excess_kurtosis) < 0.1
    assert abs(tail / 0.0027 - 1) < 0.25
    assert abs(flat.mean()) < 0.005 and abs(flat.std() - 1) < 0.005
    assert worst_lag < 0.005
    assert neighbours < 0.005
