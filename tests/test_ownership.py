"""One owner per tile: holders of a stale view fail loudly, never compute with other weights."""

import numpy as np
import pytest

import memxbar
from memxbar.backends.serial import SerialBackend
from memxbar.device import Device
from memxbar.protocol import TileConfig
from memxbar.reference import ReferenceDevice
from memxbar.sim.channel import DevicePort

rng = np.random.default_rng(0)


def test_a_second_mapping_on_the_same_tile_makes_the_first_fail_loudly():
    with memxbar.open("model://") as dev:
        first = memxbar.Mapping(dev)
        layer = first.add(rng.normal(size=(20, 30)))
        first.program()
        x = rng.normal(size=(3, 30))
        before = layer(x)
        second = memxbar.Mapping(dev)
        second.add(rng.normal(size=(20, 30)))
        second.program()
        with pytest.raises(memxbar.StaleState, match="programmed again since this mapping"):
            layer(x)
        with pytest.raises(memxbar.StaleState):
            first.drift(60.0)
        first.program()  # what the error says to do
        assert np.allclose(layer(x), before, atol=0.2 * np.abs(before).max())


def test_a_refused_matrix_leaves_no_space_taken():
    with memxbar.open("model://?rows=16&cols=16") as dev:
        mapping = memxbar.Mapping(dev)
        mapping.add(rng.normal(size=(8, 16)))
        with pytest.raises(ValueError, match="does not fit"):
            mapping.add(rng.normal(size=(16, 24)))  # one 16x8 block fits, the other does not
        mapping.add(rng.normal(size=(8, 16)))  # the space the refused one would have used
        assert mapping.pages == 1 and len(mapping.layers) == 2


def test_drift_on_a_tile_this_host_never_configured_is_an_error():
    with memxbar.open("model://") as dev, pytest.raises(memxbar.StaleState, match="configure"):
        dev.tile(0).drift(3600.0)


def test_tile_counters_work_on_a_serial_device():
    config = TileConfig(rows=10, cols=7, lanes=3)
    port = DevicePort(ReferenceDevice(config, 128))
    with Device(SerialBackend("reference", timeout=0.05, port=port, clock=port.clock)) as dev:
        dev.tile(0).run_codes(np.zeros((4, 10), dtype=np.int64))
        counters = dev.tile(0).counters()
        assert counters["mvms"] == 4 and counters["macs"] == 4 * 10 * 7
        assert counters["cycles"] == 4 * config.rows * config.groups
