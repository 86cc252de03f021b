"""The tile's RTL under Verilator (cocotb) against the golden model, per configuration."""

import json

import pytest

from memxbar.hdl import Tile
from memxbar.protocol import TileConfig

CONFIGS = {
    # lanes = 1, nothing a power of two, narrow formats
    "13x7-l1": TileConfig(rows=13, cols=7, lanes=1, g_bits=4, dac_bits=5, adc_bits=6),
    # a partial last column group (20 = 6 * 3 + 2)
    "10x20-l3": TileConfig(rows=10, cols=20, lanes=3),
    # the largest lanes: every column its own lane; rows < lanes, so the ADC drain stalls it
    "16x24-l24": TileConfig(rows=16, cols=24, lanes=24, g_bits=6, dac_bits=4, adc_bits=8, adc_shift=0),
    # the iCEBreaker-sized default tile
    "64x64-l8": TileConfig(),
}


@pytest.mark.verilator
@pytest.mark.parametrize("name", CONFIGS)
def test_tile_rtl_matches_model(name, tmp_path, verilator_tile_build):
    config = CONFIGS[name]
    build = verilator_tile_build(config)
    build.run("memxbar.sim.tb_tile", extra_env={
        "MEMXBAR_TILE_CONFIG": json.dumps(config.as_dict()),
        "MEMXBAR_TB_SEED": str(sorted(CONFIGS).index(name) + 1),
        "MEMXBAR_TB_CASES": "200",
    }, log_file=tmp_path / "sim.log")
