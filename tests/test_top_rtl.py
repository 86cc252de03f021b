"""The device top under Verilator, driven through its UART pins, against the reference device."""

import json

import pytest

from memxbar.hdl.top import Top
from memxbar.protocol import TileConfig

TOPS = {
    # a partial last column group, narrow levels (so WRITE range-checks level bytes)
    "10x7-l3": (TileConfig(rows=10, cols=7, lanes=3, g_bits=4, dac_bits=6, adc_bits=8), 4, 128, 4,
                "PER_READ,FROZEN"),
    # the default tile with a small buffer: a lane (1024 bytes) outgrows a frame, so WRITE
    # spans frames and CHECKSUM walks further than any reply
    # (one read-noise mode: 4096 cells through the pins per mode cost a minute of cocotb)
    "64x64-l8": (TileConfig(), 4, 256, 1, "FROZEN"),
}


@pytest.mark.verilator
@pytest.mark.parametrize("name", TOPS)
def test_top_through_uart_pins_matches_reference(name, tmp_path):
    from memxbar.sim import verilator

    config, divisor, max_payload, programs, modes = TOPS[name]
    build = verilator.build(Top(config, divisor, max_payload), "memxbar_top")
    build.run("memxbar.sim.tb_top", extra_env={
        "MEMXBAR_TILE_CONFIG": json.dumps(config.as_dict()), "MEMXBAR_DIVISOR": str(divisor),
        "MEMXBAR_MAX_PAYLOAD": str(max_payload), "MEMXBAR_TB_PROGRAMS": str(programs),
        "MEMXBAR_TB_MODES": modes,
    }, log_file=tmp_path / "sim.log")
