"""Every board's own tile (``Board.config``) under Verilator, bit for bit with ``model://``.

The other RTL tests use small or default geometries; these run the configurations that ship,
through the byte-level simulated top (the same tile, command engine and frame buffers as the
board's, without the UART's bit time): random programming with PCM physics where the board
builds it, MVMs, a drift call and the event counters.
"""

import numpy as np
import pytest

import memxbar
from memxbar.backends import url_query
from memxbar.firmware.boards import BOARDS

pytestmark = pytest.mark.verilator


def _shipped():
    """One (config, max_payload) per distinct build, named by the boards that ship it."""
    builds = {}
    for entry in BOARDS.values():
        builds.setdefault((entry.config, entry.max_payload), []).append(entry.name)
    return [pytest.param(config, payload, id="+".join(names)) for (config, payload), names in builds.items()]


@pytest.mark.parametrize(("config", "max_payload"), _shipped())
def test_a_shipped_tile_equals_the_model(config, max_payload):
    rng = np.random.default_rng(config.build_id & 0xFFFF)
    query = url_query(config)
    results = []
    with (memxbar.open(f"sim://?{query}&max_payload={max_payload}") as sim,
          memxbar.open(f"model://?{query}") as model):
        assert sim.info.build_id == model.info.build_id == config.build_id
        w = rng.normal(size=(config.cols, config.rows))
        x = rng.normal(size=(8, config.rows))
        for dev in (sim, model):
            tile = dev.tile(0)
            if config.physics:
                mode = "per_read" if config.per_read_noise else "frozen"
                tile.configure(memxbar.PCM(stuck_on=0.01, verify_tolerance=0.5), seed=99, read_noise=mode)
            tile.program(w)
            steps = [tile.conductances(), tile.matvec(x)]
            if config.physics:
                tile.drift(3600.0)
                steps += [tile.conductances(), tile.matvec(x[:3])]
            counters = dev.counters()
            results.append((steps, {name: counters[name] for name in
                                    ("mvms", "cell_writes", "write_pulses", "verify_reads")}))
    (sim_steps, sim_counters), (model_steps, model_counters) = results
    for step, (got, want) in enumerate(zip(sim_steps, model_steps, strict=True)):
        assert np.array_equal(np.asarray(got), np.asarray(want)), f"step {step} differs"
    assert sim_counters == model_counters
    assert model_counters["mvms"] > 0
