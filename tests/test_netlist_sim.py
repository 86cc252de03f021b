"""The UP5K's synthesised top, gate for gate with yosys's iCE40 cell models, against model://."""

import pytest

pytestmark = [pytest.mark.verilator, pytest.mark.synthesis]


def test_the_synthesised_up5k_top_equals_the_model():
    """A 16x16 tile of the iCEBreaker's physics design (8 lanes: all 8 SB_MAC16; the cell state
    in SB_SPRAM256KA), synthesised as the board's build does, passes the selftest: levels and
    MVMs, then PCM programming with write-verify and stuck cells, a drift, noisy MVMs and the
    counters, bit for bit with model://."""
    import memxbar
    from memxbar.firmware.boards import board
    from memxbar.selftest import selftest
    from memxbar.sim.netlist import NetlistDevice, build

    target = board("icebreaker").with_config(rows=16, cols=16, lanes=8, physics=True, per_read_noise=False)
    executable = build(target)
    netlist = (executable.parent / "netlist.v").read_text()
    # the primitives themselves are simulated, not stand-ins for them
    for cell, count in (("SB_SPRAM256KA", 3), ("SB_MAC16", 8)):
        assert netlist.count(f"  {cell} ") == count, cell
    assert "SB_RAM40_4K " in netlist
    lines = []
    with NetlistDevice(target, executable) as device:
        figures = selftest(device.url, matrices=1, say=lines.append, timeout=600.0,
                           pcm=memxbar.PCM(stuck_on=0.01, verify_tolerance=0.5))
    assert figures["passed"], lines
    assert f"build id {target.config.build_id:08x}" in lines[0]
