"""sim://: the Verilated top behind a simulated serial port, driven by the host library."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import serial

import memxbar
from memxbar.backends.serial import SerialBackend
from memxbar.device import Device
from memxbar.model import mvm_codes
from memxbar.protocol import Window
from memxbar.protocol.frames import Command, Status, decode_frame, encode_frame
from memxbar.protocol.physics import ReadNoise, ideal_tables

SMALL = "rows=10&cols=7&lanes=3&g_bits=4&dac_bits=6&adc_bits=8&max_payload=128"
pytestmark = pytest.mark.verilator


@pytest.fixture(scope="module")
def sim_device():
    with memxbar.open(f"sim://?{SMALL}") as dev:
        yield dev


def random_case(cfg, rng, batch):
    levels = rng.integers(0, cfg.g_max + 1, (2, cfg.cols, cfg.rows))
    return levels, rng.integers(-cfg.x_max, cfg.x_max + 1, (batch, cfg.rows))


@pytest.mark.parametrize(("query", "top"),
                         [(SMALL, "bytes"), (SMALL, "pins"), ("rows=64&cols=64&lanes=8", "bytes")])
def test_sim_and_model_agree_bit_for_bit(query, top):
    """Both simulated tops, the byte-level default and the board's pins, against the model."""
    rng = np.random.default_rng(4)
    model_query = re.sub(r"&?max_payload=\d+", "", query)
    with (memxbar.open(f"sim://?{query}&top={top}") as sim,
          memxbar.open(f"model://?{model_query}") as model):
        assert sim._backend.simulator.top == top
        assert sim.info.build_id == model.info.build_id
        cfg = sim.info.config
        for batch in (1, 3, 40):
            levels, x = random_case(cfg, rng, batch)
            sim.tile(0).program_levels(*levels)
            model.tile(0).program_levels(*levels)
            assert np.array_equal(sim.tile(0).run_codes(x), model.tile(0).run_codes(x))
            for _ in range(4):  # windows of the array: fewer bytes, the same numbers
                row0, col0 = int(rng.integers(0, cfg.rows)), int(rng.integers(0, cfg.cols))
                window = Window(row0, int(rng.integers(1, cfg.rows - row0 + 1)),
                                col0, int(rng.integers(1, cfg.cols - col0 + 1)))
                part = x[:, window.row0:window.row0 + window.rows]
                got = sim.tile(0).run_codes(part, window)
                assert np.array_equal(got, model.tile(0).run_codes(part, window))
                assert got.shape == (batch, window.cols)


@pytest.mark.parametrize(("read_noise", "stuck_map", "per_read_lanes"),
                         [("per_read", False, 1), ("frozen", True, 1), ("frozen", False, 0)])
def test_device_physics_on_sim_equals_model(read_noise, stuck_map, per_read_lanes):
    """PCM through the float API: same conductances, outputs and event counts, bit for bit."""
    rng = np.random.default_rng(7)
    query = f"rows=10&cols=7&lanes=3&per_read_noise={per_read_lanes}"
    with (memxbar.open(f"sim://?{query}&max_payload=256") as sim,
          memxbar.open(f"model://?{query}") as model):
        w = rng.normal(size=(7, 10))
        x = rng.normal(size=(5, 10))
        stuck = rng.choice(3, size=(2, 7, 10), p=[0.8, 0.1, 0.1]) if stuck_map else None
        results = []
        for dev in (sim, model):
            tile = dev.tile(0)
            tile.configure(memxbar.PCM(stuck_on=0.05, verify_tolerance=0.5), seed=1234, read_noise=read_noise,
                           stuck=stuck)
            tile.program(w)
            steps = [tile.conductances(), tile.matvec(x), tile.matvec(x[0])]
            tile.drift(86400.0)
            steps += [tile.conductances(), tile.matvec(x)]
            counters = dev.counters()
            results.append((steps, {name: counters[name] for name in
                                    ("cycles", "mvms", "macs", "adc_conversions", "cell_writes",
                                     "write_pulses", "verify_reads")}))
        (sim_steps, sim_counters), (model_steps, model_counters) = results
        for got, want in zip(sim_steps, model_steps, strict=True):
            assert np.array_equal(np.asarray(got), np.asarray(want))
        assert sim_counters == model_counters
        assert model_counters["verify_reads"] > 0


def test_faulty_wire_to_the_rtl_never_corrupts_silently(sim_device):
    """>= 500 commands through byte drops, flips, inserts and duplicates at 1e-3 each."""
    from memxbar.sim.channel import FaultyPort

    rng = np.random.default_rng(5)
    url = sim_device._backend.simulator.url
    port = FaultyPort(serial.serial_for_url(url, timeout=0.2), 1e-3, seed=6)
    dev = Device(SerialBackend(url, timeout=0.2, retries=4, port=port))
    cfg = dev.info.config
    levels, _ = random_case(cfg, rng, 1)
    dev.tile(0).program_levels(*levels)
    verified = link_errors = 0
    for _ in range(500):
        x = rng.integers(-cfg.x_max, cfg.x_max + 1, (int(rng.integers(1, 5)), cfg.rows))
        try:
            assert np.array_equal(dev.tile(0).run_codes(x), mvm_codes(cfg, *levels, x))
            verified += 1
        except memxbar.LinkError:
            link_errors += 1
    dev.close()
    print(f"\n{port.injected} faults injected; {verified} verified, {link_errors} LinkError")
    assert port.injected > 50 and verified + link_errors == 500 and verified > 480


def test_garbage_never_yields_a_frame_and_the_next_valid_frame_is_answered(sim_device):
    url = sim_device._backend.simulator.url
    port = serial.serial_for_url(url, timeout=5)
    rng = np.random.default_rng(7)
    cases = int(os.environ.get("MEMXBAR_GARBAGE_CASES", "10000"))
    replies = 0
    for n in range(cases):
        garbage = rng.integers(0, 256, int(rng.integers(1, 24)), dtype=np.uint8).tobytes()
        port.write(garbage + b"\x00" + encode_frame(Command.HELLO, n % 256))
        reply = port.read_until(b"\x00")
        fields, _ = decode_frame(reply[:-1])
        assert (fields["seq"], fields["status"]) == (n % 256, Status.OK.value), "garbage answered"
        replies += 1
    port.timeout = 0.2
    assert port.read(1) == b""  # nothing more than one reply per valid frame
    assert replies == cases
    port.close()


def test_every_prefix_of_a_frame_then_a_valid_frame(sim_device):
    url = sim_device._backend.simulator.url
    port = serial.serial_for_url(url, timeout=5)
    frame = encode_frame(Command.HELLO, 1)
    for cut in range(1, len(frame) - 1):
        port.write(frame[:cut] + b"\x00" + encode_frame(Command.HELLO, 100 + cut))
        fields, _ = decode_frame(port.read_until(b"\x00")[:-1])
        assert fields["seq"] == 100 + cut
    port.close()


def test_memxbar_sim_prints_a_port_pyserial_opens():
    process = subprocess.Popen(
        [sys.executable, "-m", "memxbar.cli", "sim", "--rows", "10", "--cols", "7", "--lanes", "3",
         "--g-bits", "4", "--dac-bits", "6", "--adc-bits", "8", "--max-payload", "128"],
        stdout=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        tcp = re.search(r"socket://\S+", lines[1]).group()
        pty = re.search(r"/dev/\S+", lines[2]).group()
        with serial.Serial(pty, timeout=5) as port:
            port.write(b"\x00" + encode_frame(Command.HELLO, 3))
            fields, hello = decode_frame(port.read_until(b"\x00")[:-1])
            assert fields["status"] == Status.OK.value and hello[:4] == b"MXB1"
        with memxbar.open(tcp, timeout=5) as dev:
            assert dev.info.rows == 10
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        assert "stopped" in process.stdout.read()
        process.stdout.close()


def test_closing_sim_stops_the_simulator():
    dev = memxbar.open(f"sim://?{SMALL}")
    simulator = dev._backend.simulator._process
    dev.close()
    deadline = time.monotonic() + 5
    while simulator.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert simulator.poll() is not None


def _cpu_seconds(pid):
    """User + system CPU time of process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("top", ["bytes", "pins"])
def test_an_idle_simulator_sleeps_and_wakes_for_the_next_request(top):
    """Idle (no frame, engine and tile done, reply out) it waits in poll(), not on a core.

    Also after a client opened and closed the pty (the old harness then spun on POLLHUP)."""
    with memxbar.open(f"sim://?{SMALL}&top={top}") as dev:
        pid = dev._backend.simulator._process.pid
        with serial.Serial(dev._backend.simulator.pty, timeout=5) as port:
            port.write(b"\x00" + encode_frame(Command.HELLO, 9))
            assert decode_frame(port.read_until(b"\x00")[:-1])[0]["seq"] == 9
        dev.tile(0).program_levels(np.ones((7, 10), int), np.zeros((7, 10), int))
        before, started = _cpu_seconds(pid), time.monotonic()
        time.sleep(2.0)
        busy = (_cpu_seconds(pid) - before) / (time.monotonic() - started)
        assert busy < 0.2, f"the idle simulator used {busy:.0%} of a core"
        assert np.array_equal(dev.tile(0).run_codes(np.ones((1, 10), int)),
                              mvm_codes(dev.info.config, np.ones((7, 10), int), np.zeros((7, 10), int),
                                        np.ones((1, 10), int)))


def test_sim_url_words_are_checked():
    with pytest.raises(ValueError, match="top must be one of 'bytes', 'pins', not 'wires'"):
        memxbar.open(f"sim://?{SMALL}&top=wires")
    with pytest.raises(ValueError, match=r"ending in \.fst"):
        memxbar.open(f"sim://?{SMALL}&waves=trace.txt")


def test_a_build_without_per_read_lanes_refuses_that_mode():
    """The gateware says RANGE to CONFIG in per-read mode; the host API says why before sending."""
    with memxbar.open("sim://?rows=10&cols=7&lanes=3&per_read_noise=0&max_payload=256") as sim:
        assert sim.info.config.per_read_noise is False
        with pytest.raises(memxbar.Unsupported, match=r"per_read_noise=False.*frozen"):
            sim.tile(0).configure(memxbar.PCM(), read_noise="per_read")
        program, drift = ideal_tables(sim.info.config)
        with pytest.raises(memxbar.DeviceError, match="CONFIG: status RANGE"):
            sim._backend_for_use().configure(0, 0, ReadNoise.PER_READ, program, drift, None)
        sim.tile(0).configure(memxbar.PCM(), seed=3)  # frozen by default on this build
        sim.tile(0).program(np.eye(7, 10))
        assert sim.tile(0).matvec(np.ones(10)).shape == (7,)


@pytest.mark.parametrize("faults", [5e-4, 1e-3])
def test_noisy_rtl_behind_a_faulty_wire_never_differs_silently(faults):
    """PCM with per-read noise on the RTL, through a wire corrupting bytes both ways: every call
    returns model://'s bits or raises, including every call after a LinkError."""
    from memxbar.sim.channel import FaultyPort

    rng = np.random.default_rng(8)
    query = "rows=10&cols=7&lanes=3"
    with memxbar.open(f"sim://?{query}&max_payload=256") as sim, memxbar.open(f"model://?{query}") as model:
        url = sim._backend.simulator.url
        port = FaultyPort(serial.serial_for_url(url, timeout=0.2), faults, seed=int(faults * 1e4))
        dev = Device(SerialBackend(url, timeout=0.2, retries=3, port=port))
        w = rng.normal(size=(7, 10))
        outcome = {"verified": 0, "raised": 0, "wrong": 0, "verified after an error": 0}
        programmed, errors_seen = False, False
        for _ in range(150):
            try:
                if not programmed:  # as a user would: configure and program again after a failure
                    for d in (dev, model):
                        d.tile(0).configure(memxbar.PCM(), seed=77, read_noise="per_read")
                        d.tile(0).program(w)
                    programmed = True
                x = rng.normal(size=(int(rng.integers(1, 6)), 10))
                want = model.tile(0).matvec(x)
                got = dev.tile(0).matvec(x)
            except memxbar.LinkError:
                outcome["raised"] += 1
                errors_seen = True
                continue
            except (memxbar.StaleState, memxbar.StaleDevice):
                outcome["raised"] += 1
                programmed = False
                continue
            key = "verified" if np.array_equal(got, want) else "wrong"
            outcome[key] += 1
            outcome["verified after an error"] += errors_seen and key == "verified"
        dev.close()
    print(f"\nRTL, PCM per-read, {faults:g} faults per byte each way: {outcome}, "
          f"{port.injected} faults injected")
    assert outcome["wrong"] == 0 and outcome["verified"] > 100
    assert faults < 1e-3 or outcome["verified after an error"] > 0


def test_a_cached_simulator_starts_without_converting_the_gateware(monkeypatch):
    """A build found by its recipe starts at once; other gateware sources convert afresh."""
    from memxbar.protocol import TileConfig
    from memxbar.sim import device, verilator

    config = TileConfig(rows=10, cols=7, lanes=3, g_bits=4, dac_bits=6, adc_bits=8)
    device.SimulatedDevice(config, max_payload=128).close()  # SMALL's build, found or made
    made, real = [], device.ByteTop
    monkeypatch.setattr(device, "ByteTop", lambda *args: made.append(args) or real(*args))
    started = time.monotonic()
    with device.SimulatedDevice(config, max_payload=128) as again, \
            Device(SerialBackend(again.url, timeout=5.0)) as dev:
        assert dev.info.build_id == config.build_id
    assert made == [] and time.monotonic() - started < 2.0
    recipes = verilator.cache_root() / "verilator" / "recipes"
    known = set(recipes.iterdir())
    monkeypatch.setattr(verilator, "gateware_digest", lambda: f"other sources {os.getpid()} {started}")
    device.SimulatedDevice(config, max_payload=128).close()
    for path in set(recipes.iterdir()) - known:  # the made-up sources' recipe: never found again
        path.unlink()
    assert len(made) == 1
