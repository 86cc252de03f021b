"""Mutation checks: break the golden model in one place and the RTL comparison must fail.

The RTL (``sim://``) and the oracle (:class:`memxbar.model.TileModel`, behind the reference
device) run the same PCM scenario; unbroken they agree bit for bit, and each mutation of the
oracle alone must make them differ. A comparison that still passed would prove nothing.
"""

import numpy as np
import pytest

import memxbar
import memxbar.model
from memxbar.backends.serial import SerialBackend
from memxbar.device import Device
from memxbar.protocol import physics
from memxbar.protocol.physics import DRIFT_ONE
from memxbar.reference import ReferenceDevice
from memxbar.sim.channel import DevicePort

pytestmark = pytest.mark.verilator
QUERY = "rows=10&cols=7&lanes=3"


def scenario(dev):
    rng = np.random.default_rng(21)
    tile = dev.tile(0)
    tile.configure(memxbar.PCM(), seed=5, read_noise="per_read")
    tile.program(rng.normal(size=(7, 10)))
    x = rng.normal(size=(16, 10))
    outputs = [tile.matvec(x)]
    tile.drift(86400.0)
    outputs += [tile.matvec(x), *tile.conductances()]
    return outputs


def adc_rounding_down(monkeypatch):
    """Round half down instead of half up: one LSB off on exact halves."""
    def adc(config, acc):
        acc = np.asarray(acc, dtype=np.int64)
        acc = (acc + (1 << (config.adc_shift - 1)) - 1) >> config.adc_shift
        return np.clip(acc, -config.y_max, config.y_max)
    monkeypatch.setattr(memxbar.model, "adc", adc)


def drift_table_entry(monkeypatch):
    """Every DRIFT factor (Q16) one step of 1/64 too small."""
    load = memxbar.model.TileModel._load_drift

    def broken(self, drift):
        load(self, drift)
        self._drift = np.where(self._drift > 0, self._drift - DRIFT_ONE // 64, 0)
    monkeypatch.setattr(memxbar.model.TileModel, "_load_drift", broken)


def output_noise_shift(monkeypatch):
    """The MVM noise one bit too weak: its final shift one more than the contract's."""
    shift = physics.noise_shift
    monkeypatch.setattr(physics, "noise_shift", lambda var_shift: shift(var_shift) + 1)


@pytest.fixture(scope="module")
def rtl_outputs():
    with memxbar.open(f"sim://?{QUERY}") as sim:
        return scenario(sim)


def oracle_outputs(config):
    port = DevicePort(ReferenceDevice(config, 1024))
    with Device(SerialBackend("reference", timeout=0.05, port=port, clock=port.clock)) as dev:
        return scenario(dev)


@pytest.mark.parametrize("mutation", [None, adc_rounding_down, output_noise_shift, drift_table_entry])
def test_the_rtl_comparison_catches_a_broken_model(mutation, rtl_outputs, monkeypatch):
    config = memxbar.open(f"model://?{QUERY}").info.config
    if mutation is not None:
        mutation(monkeypatch)
    agree = all(np.array_equal(a, b) for a, b in zip(rtl_outputs, oracle_outputs(config), strict=True))
    assert agree == (mutation is None)
