"""Every board's own tile (``Board.config``) under Verilator, bit for bit with ``model://``.

The other RTL tests use small or default geometries; these run the configurations that ship,
through the byte-level simulated top (the same tile, command engine and frame buffers as the
board's, without the UART's bit time): the selftest's levels, CHECKSUMs and MVMs, then PCM
with stuck cells and write-verify programmed, drifted and read where the board builds
physics, every code, conductance and counter compared.
"""

import pytest

import memxbar
from memxbar.backends import url_query
from memxbar.firmware.boards import BOARDS
from memxbar.selftest import selftest

pytestmark = pytest.mark.verilator


def _shipped():
    """One (config, max_payload) per distinct build, named by the boards that ship it."""
    builds = {}
    for entry in BOARDS.values():
        builds.setdefault((entry.config, entry.max_payload), []).append(entry.name)
    return [pytest.param(config, payload, id="+".join(names)) for (config, payload), names in builds.items()]


@pytest.mark.parametrize(("config", "max_payload"), _shipped())
def test_a_shipped_tile_equals_the_model(config, max_payload):
    lines = []
    figures = selftest(f"sim://?{url_query(config)}&max_payload={max_payload}", matrices=2,
                       seed=config.build_id & 0xFFFF, say=lines.append,
                       pcm=memxbar.PCM(stuck_on=0.01, verify_tolerance=0.5))
    assert figures["passed"], lines
    assert f"build id {config.build_id:08x}" in lines[0]
