"""The tile's RTL under Verilator (cocotb) against the golden model, per configuration."""

import json

import pytest

from memxbar.sim.configs import VERIFIED_TILES


@pytest.mark.verilator
@pytest.mark.parametrize("name", VERIFIED_TILES)
def test_tile_rtl_matches_model(name, tmp_path, verilator_tile_build):
    config = VERIFIED_TILES[name]
    build = verilator_tile_build(config)
    build.run("memxbar.sim.tb_tile", extra_env={
        "MEMXBAR_TILE_CONFIG": json.dumps(config.as_dict()),
        "MEMXBAR_TB_SEED": str(sorted(VERIFIED_TILES).index(name) + 1),
        "MEMXBAR_TB_CASES": "200",
    }, log_file=tmp_path / "sim.log")
