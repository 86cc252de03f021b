"""The fixed-point contract is one executable source: change a constant, RTL and model move together.

Each case monkeypatches one constant of :mod:`memxbar.protocol.physics`, elaborates the
device engine (``amaranth.sim``) and runs the golden model; both must still agree bit for bit
on every cell after CONFIGURE, programming and a drift call, in both read-noise modes, and
the result must differ from the unpatched model's (the constant is really used).
"""

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

import memxbar
from memxbar.hdl.arith import SerialMultiplier
from memxbar.hdl.cells import CellEngine, table_write_layout, target_layout
from memxbar.hdl.noise import GaussianSource
from memxbar.model import TileModel
from memxbar.protocol import TileConfig, physics
from memxbar.protocol.physics import EngineOp, Params, ReadNoise, params_fields, table_entries

CONFIG = TileConfig(rows=3, cols=2, lanes=2)  # 3 words a lane, every cell its own key
DEVICE = memxbar.PCM(stuck_on=0.2, stuck_off=0.1)
SEED = 0x5EED


def device_tables():
    """The tables, compiled once: data both sides are given, so a changed shift changes results."""
    return (DEVICE.compile_program(CONFIG), DEVICE.compile_drift(CONFIG, 0.0),
            DEVICE.compile_drift(CONFIG, 86400.0))


def model_run(read_noise, targets, tables):
    """``(g_now, variance)`` after CONFIGURE, programming every cell and one drift call."""
    model = TileModel(CONFIG)
    program, drift0, drift1 = tables
    model.configure(SEED, read_noise, program, drift0)
    cells = np.arange(CONFIG.lanes * CONFIG.words_per_lane)
    model.program_cells(cells, targets, write_index=0)
    after_programming = model.g_now.copy(), model.variance.copy()
    model.drift(drift1, drift_index=1)
    return after_programming, (model.g_now.copy(), model.variance.copy())


def rtl_run(read_noise, targets, tables):
    engine = CellEngine(CONFIG)
    words = CONFIG.words_per_lane
    shape = (2, CONFIG.lanes, words)
    g_now, variance = np.zeros(shape, dtype=np.int64), np.zeros(shape[1:], dtype=np.int64)
    snapshots = []
    program, drift0, drift1 = tables

    async def send(ctx, port, value):
        ctx.set(port.payload, value)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)

    async def load(ctx, program_tables, drift, op):
        layout = table_write_layout(CONFIG)
        for table, index, value in table_entries(program_tables, drift):
            await send(ctx, engine.table, layout.const({"table": table, "index": index, "value": value}))
        ctx.set(engine.params, Params.const(params_fields(SEED, read_noise, program, drift)))
        await send(ctx, engine.op, op)
        await ctx.tick().until(~engine.busy)

    async def collect(ctx):
        async for _, _, valid, cell in ctx.tick().sample(engine.cell.valid, engine.cell.payload):
            if valid:
                g_now[:, cell.lane, cell.word] = cell.g_plus, cell.g_minus
                variance[cell.lane, cell.word] = cell.var

    async def testbench(ctx):
        ctx.set(engine.cell.ready, 1)
        await load(ctx, program, drift0, EngineOp.CONFIGURE)
        layout = target_layout(CONFIG)
        for cell in range(CONFIG.lanes * words):
            lane, word = divmod(cell, words)
            await send(ctx, engine.program, layout.const({"lane": lane, "word": word, "index": cell,
                                                          "t_plus": int(targets[0, cell]),
                                                          "t_minus": int(targets[1, cell])}))
        await ctx.tick().until(~engine.busy)
        await ctx.tick()
        snapshots.append((g_now.copy(), variance.copy()))
        ctx.set(engine.drift_index, 1)  # the first drift call, as the model counts
        await load(ctx, None, drift1, EngineOp.DRIFT)
        await ctx.tick()
        snapshots.append((g_now.copy(), variance.copy()))

    top = Module()  # the engine, and the Gaussian source and multiplier a tile gives it
    top.submodules.engine = engine
    top.submodules.gauss = gauss = GaussianSource()
    wiring.connect(top, gauss, engine.noise)
    top.submodules.mul = mul = SerialMultiplier(*engine.mul_widths)
    wiring.connect(top, mul, engine.mul)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_process(collect)
    sim.add_testbench(testbench)
    sim.run()
    return snapshots


@pytest.mark.parametrize(("constant", "value"), [("READ_SIGMA_SHIFT", 11), ("GAUSS_SHIFT", 14),
                                                 ("NU_FRACTION_BITS", 3)])
@pytest.mark.parametrize("read_noise", [ReadNoise.FROZEN, ReadNoise.PER_READ])
def test_one_constant_moves_rtl_and_model_together(monkeypatch, constant, value, read_noise):
    rng = np.random.default_rng(3)
    targets = rng.integers(0, DEVICE.target_max(CONFIG) + 1, (2, CONFIG.lanes * CONFIG.words_per_lane))
    tables = device_tables()
    before = model_run(read_noise, targets, tables)
    monkeypatch.setattr(physics, constant, value)
    model = model_run(read_noise, targets, tables)
    rtl = rtl_run(read_noise, targets, tables)
    for when, (want, got) in zip(("after programming", "after the drift call"), zip(model, rtl, strict=True),
                                 strict=True):
        for name, w, g in zip(("levels", "variance"), want, got, strict=True):
            assert np.array_equal(w, g), (f"{constant} = {value}, {when}: RTL {name} {g.tolist()} "
                                          f"model {w.tolist()}")
    moved = any(not np.array_equal(a, b) for old, new in zip(before, model, strict=True)
                for a, b in zip(old, new, strict=True))
    assert moved, f"changing {constant} to {value} changed nothing: the constant is not used"
