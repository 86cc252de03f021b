"""The UP5K's synthesised top, gate for gate with yosys's iCE40 cell models, against model://."""

import pytest

pytestmark = [pytest.mark.verilator, pytest.mark.synthesis]


def test_the_synthesised_up5k_top_equals_the_model():
    """A 16x16 tile of the iCEBreaker's physics design (8 lanes: all 8 SB_MAC16; the cell state
    in SB_SPRAM256KA), synthesised as the board's build does: PCM programming with
    write-verify and stuck cells, noisy MVMs, a drift and the counters, bit for bit."""
    from memxbar.firmware.boards import board
    from memxbar.sim.netlist import NetlistDevice, build, compare_with_model

    target = board("icebreaker").with_config(rows=16, cols=16, lanes=8, physics=True, per_read_noise=False)
    executable = build(target)
    netlist = (executable.parent / "netlist.v").read_text()
    # the primitives themselves are simulated, not stand-ins for them
    for cell, count in (("SB_SPRAM256KA", 3), ("SB_MAC16", 8)):
        assert netlist.count(f"  {cell} ") == count, cell
    assert "SB_RAM40_4K " in netlist
    with NetlistDevice(target, executable) as device:
        differ, _ = compare_with_model(device.url, target.config)
    assert differ == []
