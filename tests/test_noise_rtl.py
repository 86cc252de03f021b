"""The gateware's Gaussian source under Verilator: 1e6 samples, bit-exact and statistically sound."""

import subprocess
from importlib import resources

import numpy as np
import pytest
from gaussian_checks import check_gaussian_statistics
from sequential import run_testbench, start_and_wait

from memxbar.hdl.noise import Threefry
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


# around the ends of the first seed's two Threefry blocks
_BLOCK = Threefry.CYCLES


@pytest.mark.parametrize("late", [1, 2, 10, _BLOCK - 1, _BLOCK, _BLOCK + 1, _BLOCK + 10,
                                  2 * _BLOCK, 2 * _BLOCK + 1, 2 * _BLOCK + 2, 2 * _BLOCK + 20])
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


def test_threefry_blocks_equal_the_model_in_its_cycle_count():
    """Random keys and counters, with and without rekey: every block is the model's
    :func:`memxbar.noise.threefry2x32`, and ``busy`` falls after :attr:`Threefry.CYCLES`."""
    from memxbar.hdl.noise import Threefry
    from memxbar.noise import threefry2x32

    rng = np.random.default_rng(12)
    cases = [(tuple(int(v) for v in rng.integers(0, 1 << 32, 4)), bool(i % 3 == 2)) for i in range(12)]
    cases[0] = ((0xFFFF_FFFF,) * 4, False)  # every addition carries out of bit 31
    threefry = Threefry()
    results = []

    async def testbench(ctx):
        for (k0, k1, c0, c1), rekey in cases:
            cycles = await start_and_wait(ctx, threefry, (
                (threefry.key0, k0), (threefry.key1, k1), (threefry.counter0, c0),
                (threefry.counter1, c1), (threefry.rekey, rekey)))
            results.append((ctx.get(threefry.out0), ctx.get(threefry.out1), cycles))

    run_testbench(threefry, testbench)
    key = None
    for ((k0, k1, c0, c1), rekey), (out0, out1, cycles) in zip(cases, results, strict=True):
        key = key if rekey else (k0, k1)
        want0, want1 = threefry2x32(key, (c0, c1))
        assert (out0, out1) == (int(want0), int(want1)), f"block of key {key}, counter {(c0, c1)}"
        assert cycles == Threefry.CYCLES
