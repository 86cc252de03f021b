"""The counter bank alone (amaranth.sim): every event counted once, through bursts, freezes and clears."""

import numpy as np
from amaranth.sim import Simulator

from memxbar.hdl.counters import CounterBank, counter_words

INCREMENTS = {"mvms": 16, "cell_writes": 16, "write_pulses": 1, "verify_reads": 1, "frames_ok": 1,
              "frames_dropped": 1, "uart_overruns": 1, "uart_framing_errors": 1}


def test_counts_survive_bursts_freezes_and_clears():
    bank = CounterBank(INCREMENTS)
    layout = counter_words()
    rng = np.random.default_rng(0)
    expected = dict.fromkeys(INCREMENTS, 0)
    snapshots = []

    async def snapshot(ctx):
        ctx.set(bank.freeze, 1)
        await ctx.tick().until(bank.frozen)
        words = []
        for addr in range(bank.depth):
            ctx.set(bank.read_addr, addr)
            await ctx.tick()
            words.append(ctx.get(bank.read_data))
        ctx.set(bank.freeze, 0)
        return {name: sum(words[first + k] << (16 * k) for k in range(count))
                for name, (first, count) in layout.items()}

    async def testbench(ctx):
        await ctx.tick().repeat(40)  # the clear after reset
        for phase in range(3):
            for _ in range(400):
                for name, width in INCREMENTS.items():
                    if width == 1:
                        amount = int(rng.random() < 0.7)  # strobes in bursts, most cycles
                    else:
                        amount = int(rng.integers(0, 1 << width)) if rng.random() < 0.02 else 0
                    ctx.set(getattr(bank, f"add_{name}"), amount)
                    expected[name] += amount
                await ctx.tick()
            for name in INCREMENTS:
                ctx.set(getattr(bank, f"add_{name}"), 0)
            got = await snapshot(ctx)
            snapshots.append((dict(expected), got))
            if phase == 1:
                ctx.set(bank.clear, 1)
                await ctx.tick()
                ctx.set(bank.clear, 0)
                expected.update(dict.fromkeys(expected, 0))

    sim = Simulator(bank)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    for want, got in snapshots:
        assert {name: got[name] for name in want} == want
        assert got["clock"] > 0
    assert snapshots[1][1]["mvms"] > 1 << 16  # wider than one word: the carry was exercised
