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


@pytest.mark.parametrize("late", [1, 2, 10, 21, 22, 23, 30, 43, 44, 45, 60])
def test_a_seed_while_seeding_restarts_the_stream(late):
    """The stream belongs to the last seed, wherever the first one's Threefry blocks are, and
    key and counter count only in the seed's cycle (issue 13: the stale-block hazard)."""
    from amaranth.sim import Simulator

    from memxbar.hdl.noise import GaussianSource

    source = GaussianSource()
    key = noise_key(0xBEEF, 3, Domain.PROGRAM)
    want = Streams(key, 77, 5)
    expected = [int(want.gaussian()) for _ in range(4)]
    got = []

    async def testbench(ctx):
        async def seed(counter0, counter1):
            ctx.set(source.key0, key[0])
            ctx.set(source.key1, key[1])
            ctx.set(source.counter0, counter0)
            ctx.set(source.counter1, counter1)
            ctx.set(source.seed, 1)
            await ctx.tick()
            ctx.set(source.seed, 0)
            for port in (source.key0, source.key1, source.counter0, source.counter1):
                ctx.set(port, 0xFFFF_FFFF)  # never held: anything may follow

        await seed(12, 0)
        await ctx.tick().repeat(late)
        await seed(77, 5)
        ctx.set(source.z.ready, 1)
        while len(got) < len(expected):
            _, _, valid, payload = await ctx.tick().sample(source.z.valid, source.z.payload)
            if valid:
                got.append(payload)

    sim = Simulator(source)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert got == expected
