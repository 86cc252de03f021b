"""The gateware's sequential arithmetic (hdl/arith.py) against Python's integers, in Amaranth's
simulator: every operand pair of small widths, and random ones at the widths the tile builds."""

import random

import pytest
from sequential import run_testbench, start_and_wait

from memxbar.hdl.arith import ISqrt, SerialMultiplier


def _signed_range(bits):
    return range(-(1 << bits - 1), 1 << bits - 1)


def _multiplier_cases(a_width, b_width, shift_max):
    shifts = range(shift_max + 1)
    if a_width + b_width <= 9:  # every pair and shift
        return [(a, b, s) for a in _signed_range(a_width) for b in _signed_range(b_width) for s in shifts]
    rng = random.Random(a_width * 1000 + b_width)
    lo_a, lo_b = -(1 << a_width - 1), -(1 << b_width - 1)
    edges = [(lo_a, lo_b, shift_max), (-lo_a - 1, lo_b, shift_max), (lo_a, -lo_b - 1, 0), (-1, 1, 0),
             (-1, lo_b, shift_max), (0, lo_b, 3), (lo_a, 0, shift_max)]
    return edges + [(rng.choice(_signed_range(a_width)), rng.choice(_signed_range(b_width)),
                     rng.choice(shifts)) for _ in range(1500)]


@pytest.mark.parametrize(("a_width", "b_width", "shift_max"),
                         [(5, 4, 0), (4, 3, 3), (17, 23, 0), (16, 22, 15)])
def test_serial_multiplier_gives_the_shifted_signed_product(a_width, b_width, shift_max):
    dut = SerialMultiplier(a_width, b_width, shift_max)
    cases = _multiplier_cases(a_width, b_width, shift_max)

    async def testbench(ctx):
        for a, b, shift in cases:
            inputs = [(dut.a, a), (dut.b, b), *([(dut.shift, shift)] if shift_max else [])]
            cycles = await start_and_wait(ctx, dut, inputs)
            assert ctx.get(dut.product) == (a * b) << shift, f"{a} * {b} << {shift}"
            assert cycles <= shift + a_width, f"{a} * {b} << {shift} took {cycles} cycles"

    run_testbench(dut, testbench)


@pytest.mark.parametrize("width", [8, 42])
def test_isqrt_is_the_floor_square_root(width):
    dut = ISqrt(width)
    rng = random.Random(width)
    values = list(range(256)) if width == 8 else [
        (1 << width) - 1, 0, 1, *(rng.randrange(1 << width) for _ in range(300)),
        *(k * k + d for k in (rng.randrange(1 << width // 2) for _ in range(100)) for d in (-1, 0))]

    async def testbench(ctx):
        for value in values:
            value = max(value, 0)
            await start_and_wait(ctx, dut, [(dut.value, value)])
            root = ctx.get(dut.root)
            assert root * root <= value < (root + 1) ** 2, f"isqrt({value}) gave {root}"

    run_testbench(dut, testbench)
