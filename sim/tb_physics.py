"""cocotb testbench of the tile's device physics under Verilator; the golden model is the oracle.

A device model's tables go in through the table port, a CONFIGURE, the cells through the
device engine, then drift calls and MVMs with noise: every level read back, every ADC code
and every programming event must equal :class:`memxbar.model.TileModel`'s, bit for bit.
The pytest side (``tests/test_physics_rtl.py``) passes the configuration and scenario.
"""

import json
import os

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

import memxbar
from memxbar.hdl import cell_layout, prog_layout
from memxbar.hdl.cells import table_write_layout, target_layout
from memxbar.model import TileModel
from memxbar.protocol import TileConfig, cell_address
from memxbar.protocol.physics import EngineOp, Params, ReadNoise, params_fields, table_entries

from .rtl import StreamSink, StreamSource, from_bits, pause_cycle, to_bits

TIMEOUT_MS = 100  # simulated ms

DEVICES = {
    "pcm": lambda: memxbar.PCM(stuck_on=0.05, stuck_off=0.05),
    "pcm-verify": lambda: memxbar.PCM(verify_tolerance=0.4, verify_max=5),
    "rram-levels": lambda: memxbar.RRAM(levels=6, out_noise=0.02),
    "ideal": lambda: memxbar.Ideal(),
}


def pack(layout, **fields):
    return layout.const(fields).as_value().value


class PhysicsTB:
    def __init__(self, dut):
        self.dut = dut
        self.cfg = TileConfig(**json.loads(os.environ["MEMXBAR_TILE_CONFIG"]))
        self.rng = np.random.default_rng(int(os.environ.get("MEMXBAR_TB_SEED", "1")))
        self.prog = StreamSource(dut, "prog", dut.clk)
        self.readback = StreamSink(dut, "readback", dut.clk)
        self.program_port = StreamSource(dut, "program", dut.clk)
        self.table = StreamSource(dut, "table", dut.clk)
        self.op = StreamSource(dut, "op", dut.clk)
        self.x = StreamSource(dut, "x", dut.clk)
        self.y = StreamSink(dut, "y", dut.clk)
        self.events = {"write_pulses": 0, "verify_reads": 0}
        self.cycle = 0
        self.model = TileModel(self.cfg)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        cocotb.start_soon(self._count_events())

    async def _count_events(self):
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            self.cycle += 1
            self.events["write_pulses"] += int(self.dut.pulse.value)
            self.events["verify_reads"] += int(self.dut.verify_read.value)

    async def reset(self):
        self.dut.params.value = 0
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def idle(self):
        while True:
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if not self.dut.busy.value:
                return

    async def load(self, seed, mode, program, drift, op, drift_index=0):
        layout = table_write_layout(self.cfg)
        # a drift call loads only the time-dependent tables
        tables = table_entries(program if op == EngineOp.CONFIGURE else None, drift)
        entries = [pack(layout, table=t, index=i, value=v) for t, i, v in tables]
        await self.table.send(entries, pause_cycle([0, 0, 1]))
        await FallingEdge(self.dut.clk)
        self.dut.params.value = pack(Params, **params_fields(seed, mode, program, drift))
        self.dut.drift_index.value = drift_index
        await self.op.send([op.value])
        await self.idle()

    async def program(self, g_plus, g_minus, first_write):
        """Program every cell, in memory order; cell ``k`` draws the noise of write ``first_write + k``."""
        cfg = self.cfg
        cols, rows = np.indices(g_plus.shape)
        lanes, words = cell_address(cfg, rows, cols)
        targets = np.zeros((2, cfg.lanes, cfg.words_per_lane), dtype=np.int64)
        targets[0, lanes, words], targets[1, lanes, words] = g_plus, g_minus
        layout = target_layout(cfg)
        commands = [pack(layout, lane=lane, word=word, t_plus=int(targets[0, lane, word]),
                         t_minus=int(targets[1, lane, word]),
                         index=first_write + lane * cfg.words_per_lane + word)
                    for lane in range(cfg.lanes) for word in range(cfg.words_per_lane)]
        await self.program_port.send(commands, pause_cycle([0, 1, 0, 0]))
        await self.idle()

    async def levels(self):
        cfg = self.cfg
        layout = prog_layout(cfg)
        g = np.zeros((2, cfg.cols, cfg.rows), dtype=np.int64)
        for col in range(cfg.cols):
            for row in range(cfg.rows):
                lane, word = cell_address(cfg, row, col)
                receiving = cocotb.start_soon(self.readback.recv(1))
                await self.prog.send([pack(layout, write=0, lane=lane, word=word)])
                cell = data.Const(cell_layout(cfg), (await receiving)[0])
                g[:, col, row] = cell.g_plus, cell.g_minus
        return g[0], g[1]

    async def mvm(self, x_codes):
        cfg = self.cfg
        receiving = cocotb.start_soon(self.y.recv(len(x_codes) * cfg.cols, pause_cycle([0, 0, 1])))
        await self.x.send([to_bits(v, cfg.dac_bits) for v in np.ravel(x_codes).tolist()])
        return from_bits(await receiving, cfg.adc_bits).reshape(len(x_codes), cfg.cols)

    async def check_levels(self, what):
        got = await self.levels()
        want = self.model.levels()
        for name, g, w in zip(("G+", "G-"), got, want, strict=True):
            bad = np.argwhere(g != w)
            assert bad.size == 0, (f"{what}: {len(bad)} {name} levels differ, first at (col, row) "
                                   f"{tuple(bad[0])}: RTL {g[tuple(bad[0])]} model {w[tuple(bad[0])]}")

    async def check_mvms(self, what, batch):
        cfg = self.cfg
        x = self.rng.integers(-cfg.x_max, cfg.x_max + 1, (batch, cfg.rows))
        got = await self.mvm(x)
        want = self.model.run_codes(x)
        bad = np.argwhere(got != want)
        assert bad.size == 0, (f"{what}, batch {batch}: {len(bad)} codes differ, first at (vector, col) "
                               f"{tuple(bad[0])}: RTL {got[tuple(bad[0])]} model {want[tuple(bad[0])]}")
        return got


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def device_physics_bit_exact(dut):
    tb = PhysicsTB(dut)
    await tb.reset()
    cfg = tb.cfg
    device = DEVICES[os.environ["MEMXBAR_DEVICE"]]()
    top = device.target_max(cfg)
    report = {}
    for mode in (ReadNoise.PER_READ, ReadNoise.FROZEN):
        seed = int(tb.rng.integers(0, 2**32))
        program, drift0 = device.compile_program(cfg), device.compile_drift(cfg, 0.0)
        await tb.load(seed, mode, program, drift0, EngineOp.CONFIGURE)
        tb.model.configure(seed, mode, program, drift0)
        await tb.check_levels(f"{mode.name} after CONFIGURE")

        shape = (cfg.cols, cfg.rows)
        g_plus, g_minus = tb.rng.integers(0, top + 1, shape), tb.rng.integers(0, top + 1, shape)
        started = tb.cycle
        first_write = int(tb.rng.integers(0, 2**31))  # the host's count, whatever it is
        await tb.program(g_plus, g_minus, first_write)
        report[f"{mode.name} program cycles per cell"] = (tb.cycle - started) / cfg.cells
        tb.model.program_levels(g_plus, g_minus, first_write)
        await tb.check_levels(f"{mode.name} after programming")
        for batch in (1, 3):
            await tb.check_mvms(f"{mode.name} at t=0", batch)

        for call, t in enumerate((3600.0, 86400.0 * 30)):
            drift = device.compile_drift(cfg, t)
            started = tb.cycle
            await tb.load(seed, mode, program, drift, EngineOp.DRIFT, drift_index=5 + call)
            report[f"{mode.name} drift cycles per cell (with table load)"] = (tb.cycle - started) / cfg.cells
            tb.model.drift(drift, 5 + call)
            await tb.check_levels(f"{mode.name} at t={t:.0f} s")
            await tb.check_mvms(f"{mode.name} at t={t:.0f} s", 2)
        if tb.model.drift_tables.out_var:  # fresh noise on every read
            x = np.repeat(tb.rng.integers(-cfg.x_max, cfg.x_max + 1, (1, cfg.rows)), 4, axis=0)
            started = tb.cycle
            codes = await tb.mvm(x)
            report[f"{mode.name} cycles per noisy MVM (4 back to back)"] = (tb.cycle - started) / 4
            assert np.array_equal(codes, tb.model.run_codes(x))
            assert len({tuple(c) for c in codes}) > 1, "four reads of one vector drew the same noise"

        for name in ("write_pulses", "verify_reads"):
            assert tb.events[name] == tb.model.counters[name], (
                f"{name}: RTL {tb.events[name]} model {tb.model.counters[name]}")
    dut._log.info("events %s", tb.events)
    dut._log.info("cycle report %s", json.dumps(report))
