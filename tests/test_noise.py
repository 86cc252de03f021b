"""The random numbers: published known answers, and the Gaussian's statistics on 1e6 samples."""

import numpy as np
import pytest
from gaussian_checks import check_gaussian_statistics

from memxbar.noise import Streams, gauss, noise_key, threefry2x32
from memxbar.protocol.physics import SIGMA_STEPS, Z_SIGMA, Domain


@pytest.mark.parametrize(("key", "counter", "expected"), [
    # Random123 kat_vectors, threefry2x32 with 20 rounds
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry_known_answers(key, counter, expected):
    assert tuple(int(word) for word in threefry2x32(key, counter)) == expected


def test_xoshiro128pp_known_answer():
    # PHP's test suite for its Xoshiro128++ port of the reference C: seed 1, 2, 3, 4,
    # output number 102401 is 0x2c873cfa
    streams = Streams.from_state([1, 2, 3, 4])
    for _ in range(102400):
        streams.next()
    assert int(streams.next()[0]) == 0x2C873CFA


def test_masked_streams_do_not_advance():
    streams = Streams(noise_key(1, 0, Domain.PROGRAM), np.arange(4))
    before = streams.state.copy()
    streams.gaussian(np.array([True, False, True, False]))
    assert np.array_equal(streams.state[:, 1], before[:, 1])
    assert not np.array_equal(streams.state[:, 0], before[:, 0])


def test_gauss_scales_to_sigma_steps():
    z = np.arange(-16639, 16640, 7)
    exact = 160 * z / (SIGMA_STEPS * Z_SIGMA)
    assert np.abs(gauss(160, z) - exact).max() <= 0.5 + 1e-6


@pytest.fixture(scope="module")
def read_noise_samples():
    """1e6 Gaussians as MVMs draw them: 1000 reads (streams) of 1000 columns each."""
    streams = Streams(noise_key(12345, 3, Domain.READ), np.arange(1000))
    return np.stack([streams.gaussian() for _ in range(1000)], axis=1) / Z_SIGMA  # (read, column)


def test_model_gaussians_pass_the_statistics(read_noise_samples):
    check_gaussian_statistics(read_noise_samples, "model")
