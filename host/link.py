"""Requests and replies over a byte port: framed, checked, retried, never hanging.

Works on anything with pyserial's port interface (``read``, ``write``, ``timeout``,
``write_timeout``, ``close``): a serial port, ``socket://`` to the simulator, ``loop://``.
Every command is safe to retry: the device answers a repeated SEQ of its last two requests
with the cached reply, and a request that draws noise carries its noise index.
"""

import time

import serial

from .errors import DeviceError, LinkError, StaleDevice, VersionMismatch
from .protocol.frames import REPLY, Command, FrameError, Status, decode_frame, encode_frame

__all__ = ["Link"]


class Link:
    """One request, one reply, over ``port``.

    Parameters
    ----------
    port
        An open pyserial-like port.
    timeout : float
        Seconds to wait for each reply (and for each write to drain).
    retries : int
        Extra attempts after a lost or corrupted reply.
    clock : callable
        Monotonic seconds; tests pass a virtual clock.

    Attributes
    ----------
    epoch : int
        The device epoch this host holds (:mod:`memxbar.protocol.frames`); every request
        carries it, and every OK reply updates it.
    """

    #: Longest a single port read blocks: set once on the port (changing a serial port's
    #: timeout reconfigures it), the reply deadline is kept here.
    POLL = 0.02

    def __init__(self, port, timeout=1.0, retries=3, clock=time.monotonic):
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.clock = clock
        self.port.write_timeout = timeout
        self.port.timeout = min(timeout, self.POLL)
        self.epoch = 0
        self._seq = 0
        self._buffer = bytearray()
        self.attempts = 0  # requests sent, retries included
        self.bytes_sent = 0  # wire bytes, for the efficiency benchmark
        self.bytes_received = 0

    def transact(self, command, payload=b""):
        """Send ``command`` and return the reply's payload; raise on any failure."""
        return self._exchange(*self._request(command, payload), self.retries + 1)

    def transact_many(self, requests, window=2):
        """``transact`` for each ``(command, payload)``, keeping ``window`` requests in flight.

        The device receives a request while it executes the previous one, so the reply line
        stays busy. A lost reply drops back to one request at a time for what is left
        outstanding; every command is safe to repeat (SEQ replay or idempotent effect).
        """
        requests = list(requests)
        results = [None] * len(requests)
        try:
            self._pipeline(requests, results, window)
        except LinkError as error:
            # how many requests from the first on got their reply: the caller may resume there
            error.done = next(i for i, result in enumerate(results) if result is None)
            raise
        return results

    def _pipeline(self, requests, results, window):
        in_flight = []  # [index, command, seq, frame]
        sent = 0
        while sent < len(requests) or in_flight:
            while sent < len(requests) and len(in_flight) < window:
                command, payload = requests[sent]
                request = self._request(command, payload)
                self.attempts += 1
                self._write(request[2])
                in_flight.append((sent, *request))
                sent += 1
            index, command, seq, frame = in_flight.pop(0)
            reply = self._await_reply(command, seq, self.clock() + self.timeout)
            if reply is None:  # resend the oldest, then the rest, one at a time
                results[index] = self._exchange(command, seq, frame, self.retries)
                for index, command, seq, frame in in_flight:
                    results[index] = self._exchange(command, seq, frame, self.retries + 1)
                in_flight = []
                continue
            results[index] = self._check(command, *reply)

    def _request(self, command, payload):
        seq, self._seq = self._seq, (self._seq + 1) % 256
        # A leading delimiter ends whatever partial frame the device may be holding.
        return command, seq, b"\x00" + encode_frame(command, seq, payload, epoch=self.epoch)

    def _exchange(self, command, seq, frame, attempts):
        for _ in range(attempts):
            self.attempts += 1
            self._write(frame)
            reply = self._await_reply(command, seq, self.clock() + self.timeout)
            if reply is not None:
                return self._check(command, *reply)
        raise LinkError(f"no valid reply to {_name(command)} in {self.retries + 1} attempts of "
                        f"{self.timeout:g} s: is the device connected, powered and flashed?")

    def _check(self, command, fields, payload):
        status = Status(fields["status"])
        if status == Status.VERSION:
            raise VersionMismatch(f"the device does not speak protocol {fields['version']}; "
                                  "rebuild and reflash it with this memxbar version")
        if status == Status.STATE and _opcode(command) != Command.HELLO.value:
            raise StaleDevice(command, status, fields["epoch"], self.epoch)
        if status != Status.OK:
            raise DeviceError(command, status)
        self.epoch = fields["epoch"]  # moved on by CONFIGURE or a claim
        return payload

    def close(self):
        self.port.close()

    def _write(self, data):
        # no flush(): tcdrain has no timeout, and the reply's deadline bounds the wait anyway
        try:
            written = self.port.write(data)
            if written is not None and written != len(data):
                raise LinkError(f"the port took {written} of {len(data)} bytes within {self.timeout:g} s")
            self.bytes_sent += len(data)
        except serial.SerialTimeoutException:
            raise LinkError(f"writing to the port took longer than {self.timeout:g} s") from None
        except (serial.SerialException, OSError) as error:
            raise LinkError(f"the port failed while writing: {error}") from None

    def _await_reply(self, command, seq, deadline):
        want = (_opcode(command) | REPLY, seq)
        while (frame := self._read_frame(deadline)) is not None:
            if not frame:
                continue
            try:
                fields, payload = decode_frame(frame)
            except FrameError:
                continue  # garbage or a corrupted reply: the retry will fetch the cached one
            if (fields["command"], fields["seq"]) == want:
                return fields, payload
        return None

    def _read_frame(self, deadline):
        """Bytes up to the next delimiter, or ``None`` at the deadline."""
        while (end := self._buffer.find(0)) < 0:
            if deadline - self.clock() <= 0:
                return None
            try:
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError) as error:
                raise LinkError(f"the port failed while reading: {error}") from None
            self._buffer += chunk
            self.bytes_received += len(chunk)
        frame = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        return frame


def _opcode(command):
    return command.value if isinstance(command, Command) else command


def _name(command):
    return command.name if isinstance(command, Command) else f"opcode 0x{command:02x}"
