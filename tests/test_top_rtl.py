"""The device top under Verilator against the reference device, byte for byte: the frame-level
checks (memxbar.sim.frame_checks) through the UART pins under cocotb on a small tile, and on
the default tile through sim://'s byte-level top, where they cost seconds instead of minutes;
the checks only pins or a reset can make run under cocotb on both."""

import json

import pytest

from memxbar.hdl.top import Top
from memxbar.protocol import TileConfig

#: The byte top's buffer for the default tile: sim://'s default, so its build is shared with
#: tests/test_sim_device.py; a lane (1024 bytes) still outgrows a WRITE frame.
MAX_PAYLOAD = 1024
#: The cocotb tests that need the pins or the reset input, not only frames.
PIN_TESTS = "a_claimed_device_refuses_a_stale_host,uart_errors_are_counted"

TOPS = {
    # a partial last column group, narrow levels (so WRITE range-checks level bytes): every test
    "10x7-l3": (TileConfig(rows=10, cols=7, lanes=3, g_bits=4, dac_bits=6, adc_bits=8), 4, 128, None),
    # the default tile: the pin-level tests; its frame-level checks run on the byte top below
    "64x64-l8": (TileConfig(), 4, 256, PIN_TESTS),
}


@pytest.mark.verilator
@pytest.mark.parametrize("name", TOPS)
def test_top_through_uart_pins_matches_reference(name, tmp_path):
    from memxbar.sim import verilator

    config, divisor, max_payload, testcase = TOPS[name]
    build = verilator.build(Top(config, divisor, max_payload), "memxbar_top")
    build.run("memxbar.sim.tb_top", testcase=testcase, extra_env={
        "MEMXBAR_TILE_CONFIG": json.dumps(config.as_dict()), "MEMXBAR_DIVISOR": str(divisor),
        "MEMXBAR_MAX_PAYLOAD": str(max_payload), "MEMXBAR_TB_PROGRAMS": "4",
        "MEMXBAR_TB_MODES": "PER_READ,FROZEN",
    }, log_file=tmp_path / "sim.log")


@pytest.mark.verilator
@pytest.mark.parametrize("check", ["commands_match_the_reference_device",
                                   "device_physics_commands_match_the_reference_device",
                                   "bad_requests_get_status_and_leave_memory_untouched",
                                   "replayed_seq_returns_the_cached_reply_without_executing",
                                   "garbage_and_cut_frames_are_dropped"])
def test_default_tile_byte_top_matches_reference(check):
    """The default tile: WRITE spans frames, CHECKSUM walks further than any reply, RUNs of
    up to 8 vectors a frame; both read-noise modes."""
    from memxbar.sim.frame_checks import run_checks

    run_checks(TileConfig(), MAX_PAYLOAD, [check], programs=4, modes=("PER_READ", "FROZEN"))


@pytest.mark.verilator
def test_the_byte_top_checks_catch_a_broken_reference(monkeypatch):
    """Every DRIFT factor 1/64 too small in the golden model alone: the same check must fail."""
    from test_mutations import drift_table_entry

    from memxbar.sim.frame_checks import run_checks

    drift_table_entry(monkeypatch)
    with pytest.raises(AssertionError, match=r"RTL .* != reference"):
        run_checks(TileConfig(), MAX_PAYLOAD, ["device_physics_commands_match_the_reference_device"],
                   programs=1, modes=("PER_READ",))
