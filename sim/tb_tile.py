"""cocotb testbench of :class:`memxbar.hdl.Tile` under Verilator; the golden model is the oracle.

The pytest side (``tests/test_tile_rtl.py``) builds one Verilator model per configuration
and passes the configuration, seed and case count in the environment.
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from memxbar.hdl import cell_layout, prog_layout
from memxbar.model import mvm_codes
from memxbar.protocol import TileConfig, cell_address

from .rtl import StreamSink, StreamSource, field_packer, from_bits, pause_cycle, to_bits

TIMEOUT_MS = 50  # simulated ms: a hang fails in minutes, a pass needs under 10


class TileTB:
    """Owns the clock, reset and the three streams of one tile; tests read as scenarios."""

    def __init__(self, dut):
        self.dut = dut
        self.cfg = TileConfig(**json.loads(os.environ["MEMXBAR_TILE_CONFIG"]))
        self.rng = np.random.default_rng(int(os.environ.get("MEMXBAR_TB_SEED", "1")))
        self.cases = int(os.environ.get("MEMXBAR_TB_CASES", "200"))
        self.pack_prog, _ = field_packer(prog_layout(self.cfg))
        _, self.unpack_cell = field_packer(cell_layout(self.cfg))
        self.prog = StreamSource(dut, "prog", dut.clk)
        self.readback = StreamSink(dut, "readback", dut.clk)
        self.x = StreamSource(dut, "x", dut.clk)
        self.y = StreamSink(dut, "y", dut.clk)
        self.g_plus = np.zeros((self.cfg.cols, self.cfg.rows), dtype=np.int64)
        self.g_minus = np.zeros_like(self.g_plus)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    def random_levels(self, style):
        cfg, rng = self.cfg, self.rng
        shape = (cfg.cols, cfg.rows)
        if style == "uniform":
            return rng.integers(0, cfg.g_max + 1, shape), rng.integers(0, cfg.g_max + 1, shape)
        if style == "extreme":  # every cell at a rail: full-scale positive or negative weights
            plus = rng.integers(0, 2, shape).astype(bool)
            return np.where(plus, cfg.g_max, 0), np.where(plus, 0, cfg.g_max)
        if style == "sparse":
            keep = rng.random(shape) < 0.1
            return (np.where(keep, rng.integers(0, cfg.g_max + 1, shape), 0),
                    np.where(keep, rng.integers(0, cfg.g_max + 1, shape), 0))
        raise ValueError(style)

    def random_inputs(self, count, style):
        cfg, rng = self.cfg, self.rng
        if style == "rails":  # every input at +-x_max: drives columns into ADC saturation
            return rng.choice([-cfg.x_max, cfg.x_max], (count, cfg.rows))
        return rng.integers(-cfg.x_max, cfg.x_max + 1, (count, cfg.rows))

    async def program(self, g_plus, g_minus, pause=None):
        cols, rows = np.indices(g_plus.shape)
        lanes, words = cell_address(self.cfg, rows, cols)
        commands = [
            self.pack_prog(**{"write": 1, "lane": lane, "word": word,
                              "cell.g_plus": gp, "cell.g_minus": gm})
            for lane, word, gp, gm in zip(lanes.ravel().tolist(), words.ravel().tolist(),
                                          g_plus.ravel().tolist(), g_minus.ravel().tolist(), strict=True)
        ]
        await self.prog.send(commands, pause)
        self.g_plus, self.g_minus = np.array(g_plus), np.array(g_minus)

    async def read_cell(self, row, col):
        lane, word = cell_address(self.cfg, row, col)
        receiving = cocotb.start_soon(self.readback.recv(1))
        await self.prog.send([self.pack_prog(write=0, lane=lane, word=word)])
        cell = self.unpack_cell((await receiving)[0])
        return cell["g_plus"], cell["g_minus"]

    async def mvm(self, x_codes, in_pause=None, out_pause=None, on_word=None):
        """Stream vectors in while collecting the outputs; returns signed codes (batch, cols)."""
        cfg = self.cfg
        receiving = cocotb.start_soon(self.y.recv(len(x_codes) * cfg.cols, out_pause, on_word))
        await self.x.send([to_bits(v, cfg.dac_bits) for v in np.ravel(x_codes).tolist()], in_pause)
        return self.signed_codes(await receiving).reshape(len(x_codes), cfg.cols)

    def signed_codes(self, words):
        return from_bits(words, self.cfg.adc_bits)

    def expect(self, x_codes):
        return mvm_codes(self.cfg, self.g_plus, self.g_minus, np.asarray(x_codes))


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def random_mvm_bit_exact(dut):
    """>= MEMXBAR_TB_CASES random (G, x) cases under input gaps and output backpressure."""
    tb = TileTB(dut)
    await tb.reset()
    cfg = tb.cfg
    styles = ["uniform", "extreme", "sparse"]
    pauses = [None, [0, 0, 1], [1, 0, 1, 1, 0], [0, 1]]
    cases = saturated_high = saturated_low = 0
    program_index = 0
    while cases < tb.cases:
        style = styles[program_index % len(styles)]
        await tb.program(*tb.random_levels(style), pause=pause_cycle(pauses[program_index % 3]))
        row, col = int(tb.rng.integers(cfg.rows)), int(tb.rng.integers(cfg.cols))
        assert await tb.read_cell(row, col) == (tb.g_plus[col, row], tb.g_minus[col, row])
        # batches of 1..3 vectors: back-to-back vectors share the input double buffer
        x = tb.random_inputs(1 + program_index % 3, "rails" if program_index % 4 == 1 else "uniform")
        got = await tb.mvm(x, pause_cycle(pauses[program_index % 4]),
                           pause_cycle(pauses[(program_index + 1) % 4]))
        want = tb.expect(x)
        mismatch = np.argwhere(got != want)
        assert mismatch.size == 0, (
            f"case {cases}: {len(mismatch)} codes differ, first at (vector, column) "
            f"{tuple(mismatch[0])}: RTL {got[tuple(mismatch[0])]} model {want[tuple(mismatch[0])]}")
        saturated_high += int(np.sum(want == cfg.y_max))
        saturated_low += int(np.sum(want == -cfg.y_max))
        cases += len(x)
        program_index += 1
    dut._log.info("%d cases, %d programmings, saturated codes: %d high, %d low",
                  cases, program_index, saturated_high, saturated_low)
    assert saturated_high and saturated_low, "the random cases never drove the ADC to both rails"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def back_to_back_throughput(dut):
    """Without pauses, vectors complete every ``TileConfig.cycles_per_mvm`` cycles."""
    tb = TileTB(dut)
    await tb.reset()
    cfg = tb.cfg
    await tb.program(*tb.random_levels("uniform"))
    batch = int(os.environ.get("MEMXBAR_TB_BATCH", "6"))
    x = tb.random_inputs(batch, "uniform")
    cycle = 0
    started = time.perf_counter()

    async def count_cycles():
        nonlocal cycle
        while True:
            await FallingEdge(dut.clk)
            cycle += 1

    counter = cocotb.start_soon(count_cycles())
    finished = []
    outputs = 0

    def on_word():
        nonlocal outputs
        outputs += 1
        if outputs % cfg.cols == 0:
            finished.append(cycle)

    got = await tb.mvm(x, on_word=on_word)
    wall = time.perf_counter() - started
    counter.cancel()
    assert np.array_equal(got, tb.expect(x))
    intervals = np.diff(finished)
    latency = finished[0]
    report = {"cycles_per_mvm": intervals.tolist(), "first_vector_latency": latency,
              "spec_cycles_per_mvm": cfg.cycles_per_mvm,
              "ideal_cycles_per_mvm": -(-cfg.cells // cfg.lanes),
              "simulated_cycles": cycle, "wall_seconds": wall}
    dut._log.info("throughput report %s", json.dumps(report))
    if "MEMXBAR_TB_REPORT" in os.environ:
        with open(os.environ["MEMXBAR_TB_REPORT"], "w") as f:
            json.dump(report, f)
    assert set(intervals.tolist()) == {cfg.cycles_per_mvm}, report


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def reset_in_the_middle_of_an_mvm(dut):
    """A reset drops vectors in flight, keeps the conductances, and the next MVM is exact."""
    tb = TileTB(dut)
    await tb.reset()
    cfg = tb.cfg
    await tb.program(*tb.random_levels("uniform"))
    x = tb.random_inputs(2, "uniform")
    sending = cocotb.start_soon(tb.x.send([to_bits(v, cfg.dac_bits) for v in x.ravel().tolist()]))
    await ClockCycles(dut.clk, cfg.rows + cfg.cycles_per_mvm // 2)
    sending.cancel()
    await FallingEdge(dut.clk)
    dut.x__valid.value = 0
    await tb.reset()
    for _ in range(cfg.cycles_per_mvm + 8):
        await ReadOnly()
        assert not dut.y__valid.value, "an output of the interrupted MVM survived the reset"
        assert not dut.busy.value
        await FallingEdge(dut.clk)
    x = tb.random_inputs(3, "uniform")
    assert np.array_equal(await tb.mvm(x), tb.expect(x))
    row, col = cfg.rows - 1, cfg.cols - 1
    assert await tb.read_cell(row, col) == (tb.g_plus[col, row], tb.g_minus[col, row])


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def programming_waits_for_the_mvm(dut):
    """While an MVM is in flight the programming port is not ready, so G never changes mid-MVM."""
    tb = TileTB(dut)
    await tb.reset()
    cfg = tb.cfg
    await tb.program(*tb.random_levels("uniform"))
    x = tb.random_inputs(1, "uniform")
    want = tb.expect(x)
    new_levels = tb.random_levels("uniform")
    receiving = cocotb.start_soon(tb.y.recv(cfg.cols, pause_cycle([1, 1, 0])))
    await tb.x.send([to_bits(v, cfg.dac_bits) for v in x.ravel().tolist()])
    await ReadOnly()
    assert dut.busy.value and not dut.prog__ready.value
    await tb.program(*new_levels)  # waits until the MVM has drained
    assert np.array_equal(tb.signed_codes(await receiving), want[0])
    x = tb.random_inputs(2, "uniform")
    assert np.array_equal(await tb.mvm(x), tb.expect(x))
