"""The gateware's Gaussian source under Verilator: 1e6 samples, bit-exact and statistically sound."""

import subprocess
from importlib import resources

import numpy as np
import pytest
from gaussian_checks import check_gaussian_statistics

from memxbar.noise import Streams, noise_key
from memxbar.protocol.physics import Z_SIGMA, Domain

READS, COLUMNS = 1000, 1000  # 1e6 samples, drawn as 1000 MVMs of a 1000-column tile


@pytest.mark.verilator
def test_rtl_gaussians_equal_the_model_and_pass_the_statistics():
    from memxbar.hdl.noise import GaussianSource
    from memxbar.sim import verilator

    harness = resources.files("memxbar.sim") / "gauss_dump.cpp"
    executable = verilator.build_standalone(GaussianSource(), "memxbar_gauss", harness)
    key = noise_key(0xC0FFEE, 5, Domain.READ)
    dump = subprocess.run([str(executable), str(key[0]), str(key[1]), str(READS), str(COLUMNS)],
                          capture_output=True, check=True).stdout
    rtl = np.frombuffer(dump, dtype="<i2").astype(np.int64).reshape(READS, COLUMNS)
    streams = Streams(key, np.arange(READS))
    model = np.stack([streams.gaussian() for _ in range(COLUMNS)], axis=1)
    assert np.array_equal(rtl, model), f"{np.sum(rtl != model)} of {rtl.size} RTL samples differ"
    check_gaussian_statistics(rtl / Z_SIGMA, "RTL")
