"""The gateware framer under Verilator: COBS + CRC round trips, garbage and gaps."""

import pytest

from memxbar.sim.tb_framing import FrameEcho

DEPTH = 600


@pytest.mark.verilator
def test_framer_round_trips_host_frames(tmp_path):
    from memxbar.sim import verilator

    build = verilator.build(FrameEcho(DEPTH), "memxbar_framing")
    build.run("memxbar.sim.tb_framing", extra_env={"MEMXBAR_FRAME_DEPTH": str(DEPTH)},
              log_file=tmp_path / "sim.log")
