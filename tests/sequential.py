"""Driving the gateware's small sequential units (a ``start`` pulse, ``busy`` until done) in
Amaranth's simulator, for the tests of hdl/arith.py and hdl/noise.py."""

from amaranth.sim import Simulator


def run_testbench(dut, testbench):
    """``testbench`` against ``dut`` on a 1 MHz clock, to its end."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


async def start_and_wait(ctx, dut, inputs):
    """Set ``inputs`` (port, value pairs) with one ``start`` pulse, then tick until ``busy``
    falls; returns the cycles ``busy`` was high."""
    for port, value in inputs:
        ctx.set(port, value)
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    cycles = 0
    while ctx.get(dut.busy):
        await ctx.tick()
        cycles += 1
    return cycles
