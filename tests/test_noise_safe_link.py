"""The host owns the noise indices: no link fault, reset or second client silently changes a result.

Every scenario runs the float API against the Python reference device behind a port (a
virtual clock makes timeouts free) and a ``model://`` twin that makes the same calls; a call
either returns the twin's bits or raises.
"""

import contextlib

import numpy as np
import pytest

import memxbar
from memxbar.backends import url_query
from memxbar.backends.serial import SerialBackend
from memxbar.device import Device
from memxbar.protocol import TileConfig
from memxbar.protocol.frames import Command, Hello, Run, Status, struct_bytes, struct_fields
from memxbar.reference import ReferenceDevice
from memxbar.sim.channel import DevicePort, FaultyPort

CONFIG = TileConfig(rows=10, cols=7, lanes=3, g_bits=6, dac_bits=6, adc_bits=8)
PCM = memxbar.PCM(stuck_on=0.02, verify_tolerance=1.0, verify_max=2)


def device(faults=0.0, seed=0, max_payload=128, reference=None):
    inner = DevicePort(reference or ReferenceDevice(CONFIG, max_payload))
    port = FaultyPort(inner, faults, seed)
    return Device(SerialBackend("reference", timeout=0.05, retries=3, port=port, clock=inner.clock)), inner


def twin():
    return memxbar.open(f"model://?{url_query(CONFIG)}")


def setup(devices, weights, read_noise="per_read", seed=5):
    for dev in devices:
        dev.tile(0).configure(PCM, seed=seed, read_noise=read_noise)
        dev.tile(0).program(weights)


def programmed_pair(seed):
    """A device behind a clean port and its model:// twin, both programmed alike."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(CONFIG.cols, CONFIG.rows))
    dev, port = device()
    model = twin()
    setup([dev, model], weights)
    return rng, weights, dev, port, model


@pytest.mark.parametrize("faults", [3e-4, 1e-3, 1.5e-3])
@pytest.mark.parametrize("read_noise", ["per_read", "frozen"])
def test_noisy_calls_over_a_faulty_wire_never_differ_silently(faults, read_noise):
    rng = np.random.default_rng(int(faults * 1e4))
    weights = rng.normal(size=(CONFIG.cols, CONFIG.rows))
    dev, _ = device(faults, seed=int(faults * 1e5))
    model = twin()
    outcome = {"verified": 0, "raised": 0, "wrong": 0, "verified after an error": 0}
    for _ in range(100):  # the first programming itself may fail on such a wire: retry as a user would
        try:
            setup([dev, model], weights, read_noise)
            break
        except memxbar.LinkError:
            outcome["raised"] += 1
    else:
        pytest.fail("100 attempts at configuring and programming all failed")
    errors_seen = False
    for call in range(300):
        tiles = (dev.tile(0), model.tile(0))
        try:
            if call % 37 == 36:  # a drift call: its state, and the frozen noise, move on
                t = float(rng.choice([60.0, 3600.0, 86400.0]))
                for tile in tiles:
                    tile.drift(t)
                outcome["verified"] += 1
                continue
            x = rng.normal(size=(int(rng.integers(1, 25)), CONFIG.rows))
            want = tiles[1].matvec(x)
            got = tiles[0].matvec(x)
        except memxbar.LinkError:
            outcome["raised"] += 1
            errors_seen = True
            continue
        except memxbar.StaleState:  # a drift that failed on the link: do what the error says
            outcome["raised"] += 1
            with contextlib.suppress(memxbar.LinkError):
                setup([dev, model], weights, read_noise)
            continue
        if np.array_equal(got, want):
            outcome["verified"] += 1
            outcome["verified after an error"] += errors_seen
        else:
            outcome["wrong"] += 1
    print(f"\nfaults {faults:g} per byte each way, {read_noise}: {outcome}")
    assert outcome["wrong"] == 0
    assert outcome["raised"] > 0 and outcome["verified after an error"] > 30


def test_a_reset_device_is_detected_and_recovered():
    rng, weights, dev, port, model = programmed_pair(1)
    x = rng.normal(size=(4, CONFIG.rows))
    assert np.array_equal(dev.tile(0).matvec(x), model.tile(0).matvec(x))
    port.device = ReferenceDevice(CONFIG, 128)  # power-cycled (or reflashed): tables, state, epoch gone
    with pytest.raises(memxbar.StaleDevice, match="reset, power-cycled, reflashed or claimed"):
        dev.tile(0).matvec(x)
    with pytest.raises(memxbar.StaleState, match=r"tile\.configure"):
        dev.tile(0).matvec(x)
    setup([dev, model], weights)
    assert np.array_equal(dev.tile(0).matvec(x), model.tile(0).matvec(x))


def test_a_second_client_takes_the_device_and_the_first_is_told():
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(CONFIG.cols, CONFIG.rows))
    first, port = device()
    setup([first], weights)
    second = Device(SerialBackend("reference", timeout=0.05, port=port, clock=port.clock))
    second.tile(0).program_levels(*rng.integers(0, CONFIG.g_max + 1, (2, CONFIG.cols, CONFIG.rows)))
    with pytest.raises(memxbar.StaleDevice):
        first.tile(0).matvec(rng.normal(size=CONFIG.rows))


class DropReplies:
    """A port that loses the reply frames whose numbers are in ``lost`` (counted from 0)."""

    def __init__(self, port, lost):
        self.port, self.lost, self.replies = port, set(lost), 0

    def write(self, data):
        out = self.port.device.receive(bytes(data))
        for frame in out.split(b"\x00")[:-1]:
            if self.replies not in self.lost:
                self.port._pending += frame + b"\x00"
            self.replies += 1
        return len(data)

    def __getattr__(self, name):
        return getattr(self.port, name)


def test_lost_replies_of_pipelined_requests_count_once():
    """Two RUNs in flight, replies lost: retries come from the two-deep replay cache."""
    rng = np.random.default_rng(3)
    inner = DevicePort(ReferenceDevice(CONFIG, 128))
    dev = Device(SerialBackend("reference", timeout=0.05, port=inner, clock=inner.clock))
    model = twin()
    setup([dev, model], rng.normal(size=(CONFIG.cols, CONFIG.rows)))
    dev._backend.link.port = DropReplies(inner, lost=range(0, 40, 3))
    x = rng.normal(size=(60, CONFIG.rows))  # 7 frames of 9 vectors
    for _ in range(3):
        assert np.array_equal(dev.tile(0).matvec(x), model.tile(0).matvec(x))
    assert dev._backend.link.port.replies > 21  # replies were lost and retried
    got, want = dev.counters(), model.counters()
    assert {k: got[k] for k in want} == want


def test_a_programming_that_fails_on_the_link_leaves_the_tile_unknown():
    rng, weights, dev, port, model = programmed_pair(4)
    healthy = port.device
    port.device = type("Unplugged", (), {"receive": staticmethod(lambda data: b"")})()
    with pytest.raises(memxbar.LinkError):
        dev.tile(0).program(weights)
    port.device = healthy
    x = rng.normal(size=(2, CONFIG.rows))
    with pytest.raises(memxbar.StaleState, match=r"failed on the link.*tile\.program"):
        dev.tile(0).matvec(x)
    dev.tile(0).program(weights)
    model.tile(0).program(weights)
    assert np.array_equal(dev.tile(0).matvec(x), model.tile(0).matvec(x))


def test_programming_survives_a_wire_that_loses_long_frames():
    """1e-3 per byte each of drop, flip, insert, duplicate: a 1 KB frame rarely arrives whole."""
    config = TileConfig()
    rng = np.random.default_rng(5)
    weights = rng.normal(size=(config.cols, config.rows))
    inner = DevicePort(ReferenceDevice(config, 1024))
    dev = Device(SerialBackend("reference", timeout=0.05, retries=3, port=FaultyPort(inner, 1e-3, 9),
                               clock=inner.clock))
    with memxbar.open("model://") as model:
        for d in (dev, model):
            d.tile(0).configure(memxbar.PCM(), seed=3)
        model.tile(0).program(weights)
        for _ in range(3):  # the CONFIG before it may still lose all its attempts
            try:
                dev.tile(0).program(weights)
                break
            except memxbar.LinkError:
                pass
        assert dev._backend._frame_payload < 1024
        for got, want in zip(dev.tile(0).conductances(), model.tile(0).conductances(), strict=True):
            assert np.array_equal(got, want)


def test_repeated_programming_is_reproducible():
    rng = np.random.default_rng(6)
    weights = rng.normal(size=(CONFIG.cols, CONFIG.rows))
    with twin() as model:
        tile = model.tile(0)
        tile.configure(PCM, seed=8, read_noise="frozen")
        tile.program(weights)
        first = tile.conductances()
        tile.drift(3600.0)
        tile.matvec(np.ones(CONFIG.rows))
        tile.program(weights)
        for a, b in zip(first, tile.conductances(), strict=True):
            assert np.array_equal(a, b)


def test_the_device_refuses_inputs_outside_the_dac_range():
    dev, _ = device()
    link = dev._backend.link
    head = struct_bytes(Run, tile=0, batch=1, row0=0, rows=1, col0=0, cols=1, index=0)
    for byte in (CONFIG.x_max + 1, 127, 256 - CONFIG.x_max - 1, 128):
        with pytest.raises(memxbar.DeviceError, match="RANGE"):
            link.transact(Command.RUN, head + bytes([byte]))
    assert link.transact(Command.RUN, head + bytes([CONFIG.x_max])) is not None


def test_a_device_whose_formats_the_link_cannot_carry_is_refused():
    class WideInputs(ReferenceDevice):
        def hello(self):
            fields = struct_fields(Hello, super().hello())
            return struct_bytes(Hello, **{**fields, "dac_bits": 9})

    with pytest.raises(memxbar.VersionMismatch, match="9-bit inputs"):
        device(reference=WideInputs(CONFIG, 128))


class Stubborn(DevicePort):
    """A port whose ``flush`` would block forever (tcdrain on a stuck USB bridge) and which
    counts how often its timeout is reconfigured."""

    def __init__(self, device):
        super().__init__(device)
        self.timeout_sets = 0

    def flush(self):
        raise AssertionError("flush() blocks without a timeout; the link must not call it")

    def __setattr__(self, name, value):
        if name == "timeout":
            self.__dict__["timeout_sets"] = self.__dict__.get("timeout_sets", 0) + 1
        super().__setattr__(name, value)


def test_writes_are_bounded_and_the_port_is_configured_once():
    port = Stubborn(ReferenceDevice(CONFIG, 128))
    dev = Device(SerialBackend("reference", timeout=0.05, port=port, clock=port.clock))
    sets = port.timeout_sets
    for _ in range(50):
        dev.tile(0).run_codes(np.zeros((3, CONFIG.rows), dtype=np.int64))
    assert port.timeout_sets == sets


def test_status_state_is_what_a_stale_epoch_gets():
    dev, _ = device()
    link = dev._backend.link
    link.epoch ^= 0x55
    with pytest.raises(memxbar.StaleDevice) as error:
        link.transact(Command.COUNTERS)
    assert error.value.status == Status.STATE and error.value.device_epoch == link.epoch ^ 0x55
