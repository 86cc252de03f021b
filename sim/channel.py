"""pyserial-like ports for tests: a device in process, and a faulty wire around any port.

``DevicePort`` puts the Python reference device behind the port interface, with a virtual
clock so that timeouts cost no wall time; ``FaultyPort`` corrupts the bytes of any port in
both directions (drop, flip, insert, duplicate), e.g. a ``socket://`` port to ``memxbar sim``.
"""

import numpy as np

__all__ = ["DevicePort", "FaultyPort", "VirtualClock"]


class VirtualClock:
    """Seconds that pass only when a read waits for bytes that never come."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class DevicePort:
    """``device.receive(bytes) -> bytes`` as a port; an empty read advances ``clock`` by the timeout."""

    def __init__(self, device, clock=None):
        self.device = device
        self.clock = clock or VirtualClock()
        self.timeout = None
        self.write_timeout = None
        self._pending = bytearray()

    @property
    def in_waiting(self):
        return len(self._pending)

    def write(self, data):
        self._pending += self.device.receive(bytes(data))
        return len(data)

    def flush(self):
        pass

    def read(self, size=1):
        if not self._pending:
            self.clock.now += self.timeout or 0.0  # a real port would block this long
            return b""
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data

    def close(self):
        pass


class FaultyPort:
    """Wraps ``port``; each byte each way is dropped, flipped, followed by a random byte or
    duplicated, each with probability ``faults``. ``injected`` counts the faults."""

    def __init__(self, port, faults, seed=0):
        self.port = port
        self.faults = faults
        self.rng = np.random.default_rng(seed)
        self.injected = 0

    def _corrupt(self, data):
        out = bytearray()
        for byte in data:
            roll = self.rng.random(4) < self.faults
            self.injected += int(roll.sum())
            if roll[0]:
                continue
            if roll[1]:
                byte ^= int(self.rng.integers(1, 256))
            out.append(byte)
            if roll[2]:
                out.append(int(self.rng.integers(0, 256)))
            if roll[3]:
                out.append(byte)
        return bytes(out)

    def write(self, data):
        self.port.write(self._corrupt(bytes(data)))
        return len(data)

    def read(self, size=1):
        return self._corrupt(self.port.read(size))

    def __getattr__(self, name):  # timeout, write_timeout, in_waiting, flush, close
        return getattr(self.port, name)

    def __setattr__(self, name, value):
        if name in ("timeout", "write_timeout"):
            setattr(self.port, name, value)
        else:
            super().__setattr__(name, value)
