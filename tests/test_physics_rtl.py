"""The tile's device physics under Verilator (cocotb) against the golden model, bit for bit."""

import json

import pytest

from memxbar.sim.configs import VERIFIED_TILES

SCENARIOS = [
    ("10x20-l3", "pcm"),          # stuck cells, output and read noise, a partial column group
    ("13x7-l1", "pcm-verify"),    # write-verify; 4-bit levels, 5-bit DAC, 6-bit ADC
    ("16x24-l24", "rram-levels"), # finite levels, every column its own lane
]


@pytest.mark.verilator
@pytest.mark.parametrize(("name", "device"), SCENARIOS)
def test_physics_rtl_matches_model(name, device, tmp_path, verilator_tile_build):
    config = VERIFIED_TILES[name]
    build = verilator_tile_build(config)
    build.run("memxbar.sim.tb_physics", extra_env={
        "MEMXBAR_TILE_CONFIG": json.dumps(config.as_dict()),
        "MEMXBAR_DEVICE": device,
        "MEMXBAR_TB_SEED": str(SCENARIOS.index((name, device)) + 11),
    }, log_file=tmp_path / "sim.log")
