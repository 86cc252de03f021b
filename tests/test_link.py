"""The host driver over a byte link: bit-exact results, faults, dead ports, closed ports."""

import socket
import threading
import time

import numpy as np
import pytest
import serial

import memxbar
from memxbar.backends.serial import SerialBackend
from memxbar.device import Device
from memxbar.link import Link
from memxbar.model import mvm_codes
from memxbar.protocol import TileConfig, lane_memory
from memxbar.protocol.frames import Access, Command, Region, Status, struct_bytes
from memxbar.reference import ReferenceDevice
from memxbar.sim.channel import DevicePort, FaultyPort

CONFIG = TileConfig(rows=10, cols=7, lanes=3, g_bits=4, dac_bits=6, adc_bits=8)


def reference_device(faults=0.0, seed=0, max_payload=128, timeout=0.05, retries=3):
    inner = DevicePort(ReferenceDevice(CONFIG, max_payload))
    port = FaultyPort(inner, faults, seed)
    backend = SerialBackend("reference", timeout=timeout, retries=retries, port=port,
                            clock=inner.clock)
    return Device(backend), port


def random_case(rng, batch):
    shape = (CONFIG.cols, CONFIG.rows)
    levels = rng.integers(0, CONFIG.g_max + 1, (2, *shape))
    x = rng.integers(-CONFIG.x_max, CONFIG.x_max + 1, (batch, CONFIG.rows))
    return levels, x


def test_serial_backend_matches_the_model_bit_for_bit():
    rng = np.random.default_rng(1)
    dev, _ = reference_device()
    with dev, memxbar.open("model://?rows=10&cols=7&lanes=3&g_bits=4&dac_bits=6&adc_bits=8") as model:
        assert dev.info.config == model.info.config and dev.info.build_id == model.info.build_id
        for batch in (1, 2, 9, 10, 57):  # 9 vectors fill a 128-byte reply: batches span frames
            levels, x = random_case(rng, batch)
            dev.tile(0).program_levels(*levels)
            model.tile(0).program_levels(*levels)
            assert np.array_equal(dev.tile(0).run_codes(x), model.tile(0).run_codes(x))


def test_faults_never_corrupt_silently():
    """>= 1e4 commands through a wire dropping, flipping, inserting and duplicating bytes."""
    rng = np.random.default_rng(2)
    dev, port = reference_device(faults=1e-3, seed=3)
    link = dev._backend.link
    levels, _ = random_case(rng, 1)
    expected = lane_memory(CONFIG, *levels)
    dev.tile(0).program_levels(*levels)
    outcomes = {"verified": 0, "link_error": 0}
    for n in range(10_000):
        kind = n % 3
        try:
            if kind == 0:  # RUN: compare with the model; every 10th spans frames, pipelined
                batch = int(rng.integers(20, 40)) if n % 30 == 0 else int(rng.integers(1, 4))
                x = rng.integers(-CONFIG.x_max, CONFIG.x_max + 1, (batch, CONFIG.rows))
                got = dev.tile(0).run_codes(x)
                assert np.array_equal(got, mvm_codes(CONFIG, *levels, x))
            elif kind == 1:  # WRITE one cell, same value: idempotent, memory stays known
                lane, word = int(rng.integers(CONFIG.lanes)), int(rng.integers(CONFIG.words_per_lane))
                access = struct_bytes(Access, region=Region.LEVELS.value, tile=0, lane=lane, word=word,
                                      count=1)
                link.transact(Command.WRITE, access + expected[lane, word].tobytes())
            else:  # READ a lane back
                lane = int(rng.integers(CONFIG.lanes))
                access = struct_bytes(Access, region=Region.LEVELS.value, tile=0, lane=lane, word=0,
                                      count=CONFIG.words_per_lane)
                assert link.transact(Command.READ, access) == expected[lane].tobytes()
            outcomes["verified"] += 1
        except memxbar.LinkError:
            outcomes["link_error"] += 1
    print(f"\n{port.injected} faults injected over {link.attempts} attempts: {outcomes}")
    assert port.injected > 1000
    assert outcomes["verified"] + outcomes["link_error"] == 10_000
    assert link.attempts > 10_000  # faults forced retries
    # a multi-frame RUN fails if any of its frames loses all 4 attempts; the rest must get through
    assert outcomes["verified"] > 9_500


def test_device_errors_carry_the_status():
    dev, _ = reference_device()
    link = dev._backend.link
    access = struct_bytes(Access, region=Region.LEVELS.value, tile=0, lane=CONFIG.lanes, word=0, count=1)
    with pytest.raises(memxbar.DeviceError, match="refused WRITE: status RANGE") as error:
        link.transact(Command.WRITE, access + b"\x00\x00")
    assert error.value.status == Status.RANGE


def test_dead_device_raises_within_the_retry_budget():
    port = serial.serial_for_url("loop://", timeout=0.05)  # echoes the request: never a reply
    timeout, retries = 0.05, 2
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(memxbar.LinkError, match="no valid reply to HELLO in 3 attempts"):
            SerialBackend("loop://", timeout=timeout, retries=retries, port=port)
        assert time.monotonic() - started < (retries + 1) * timeout + 0.1
        port = serial.serial_for_url("loop://", timeout=0.05)


def test_port_closed_mid_stream_raises_within_one_timeout():
    """A TCP 'device' that hangs up halfway through its reply; no thread is left behind."""
    server = socket.create_server(("127.0.0.1", 0))
    host, port_number = server.getsockname()

    def half_reply():
        conn, _ = server.accept()
        device = ReferenceDevice(CONFIG)
        request = conn.recv(4096)
        conn.sendall(device.receive(request)[:10])
        conn.close()

    threads_before = threading.active_count()
    worker = threading.Thread(target=half_reply, daemon=True)
    worker.start()
    started = time.monotonic()
    with pytest.raises(memxbar.LinkError, match="port failed while reading"):
        memxbar.open(f"socket://{host}:{port_number}", timeout=1.0, retries=0)
    assert time.monotonic() - started < 1.0
    worker.join(1.0)
    server.close()
    assert threading.active_count() == threads_before


def test_unopenable_port_names_the_port():
    with pytest.raises(memxbar.LinkError, match="cannot open '/dev/ttyMEMXBAR9'"):
        memxbar.open("/dev/ttyMEMXBAR9")


def test_link_refuses_bad_settings():
    with pytest.raises(ValueError, match="timeout must be positive"):
        Link(serial.serial_for_url("loop://"), timeout=0)
