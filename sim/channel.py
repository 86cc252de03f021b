"""A pyserial-like port in front of the Python reference device, with an optional faulty wire.

``ReferencePort`` lets the host driver run against :class:`memxbar.reference.ReferenceDevice`
without a simulator; ``faults`` corrupts the bytes in both directions (drop, flip, insert,
duplicate), and a virtual clock makes timeouts cost no wall time.
"""

import numpy as np

__all__ = ["ReferencePort", "VirtualClock"]


class VirtualClock:
    """Seconds that pass only when a read waits for bytes that never come."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class ReferencePort:
    """Parameters: ``device`` (bytes in, bytes out); ``faults`` per-byte probability of each of
    drop, flip, insert and duplicate; ``seed``; ``clock`` a :class:`VirtualClock`."""

    def __init__(self, device, faults=0.0, seed=0, clock=None):
        self.device = device
        self.faults = faults
        self.rng = np.random.default_rng(seed)
        self.clock = clock or VirtualClock()
        self.timeout = None
        self.write_timeout = None
        self.closed = False
        self.injected = 0
        self._pending = bytearray()

    def _corrupt(self, data):
        if not self.faults:
            return data
        out = bytearray()
        for byte in data:
            roll = self.rng.random(4) < self.faults
            self.injected += int(roll.sum())
            if roll[0]:  # drop
                continue
            if roll[1]:  # flip some bits
                byte ^= int(self.rng.integers(1, 256))
            out.append(byte)
            if roll[2]:  # insert a random byte
                out.append(int(self.rng.integers(0, 256)))
            if roll[3]:  # duplicate
                out.append(byte)
        return bytes(out)

    @property
    def in_waiting(self):
        return len(self._pending)

    def write(self, data):
        self._pending += self._corrupt(self.device.receive(self._corrupt(bytes(data))))
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
        self.closed = True
