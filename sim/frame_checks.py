"""Frame-level checks of a memxbar device top against the Python reference device.

Every request goes to the RTL and to :class:`memxbar.reference.ReferenceDevice`; the reply
frames must be identical byte for byte (COUNTERS: every field but ``clock``, which only the
RTL has). The checks only send bytes and read replies, so one set of them runs over any
transport: :mod:`memxbar.sim.tb_top` drives them through the UART pins under cocotb, and
:class:`SocketBench` through the byte-level top of ``sim://`` (``memxbar.sim.device``), a
hundred times faster, which is where the large geometries run them.
"""

import asyncio
import contextlib
import socket
import struct
import time
import zlib

import numpy as np
from cobs import cobs

import memxbar
from memxbar.protocol import PROTOCOL_VERSION, TileConfig, Window, lane_memory
from memxbar.protocol.frames import (
    Access,
    Command,
    Config,
    Counters,
    Region,
    Run,
    Status,
    decode_frame,
    encode_frame,
    struct_bytes,
    struct_fields,
    table_payloads,
)
from memxbar.protocol.physics import EngineOp, ReadNoise, Table, params_fields
from memxbar.reference import ReferenceDevice

__all__ = ["CHECKS", "FrameBench", "SocketBench", "config_payload", "run_checks"]

RUN_BYTES = len(struct_bytes(Run))


class FrameBench:
    """What the checks need of a device: requests, replies and the reference beside them.

    A transport subclasses this and provides ``send(wire)`` and ``reply()`` (the RTL's next
    reply frame, delimiter included) and ``silent()`` (assert no reply comes); ``programs``,
    ``modes`` and ``garbage`` size the checks.
    """

    def __init__(self, config, max_payload, programs=4, modes=("PER_READ", "FROZEN"), garbage=30):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.cfg = config
        self.max_payload = max_payload
        self.programs, self.modes, self.garbage = programs, tuple(modes), garbage
        self.rng = np.random.default_rng(11)
        self.ref = ReferenceDevice(self.cfg, self.max_payload)
        self.seq = 0
        self.epoch = 0  # the device's, as its last OK reply said

    async def exchange(self, wire):
        """Send raw bytes to both devices; return the RTL's reply after checking it."""
        want = self.ref.receive(wire)
        await self.send(wire)
        if not want:
            await self.silent()
            return None
        got = await self.reply()
        got_fields, got_payload = decode_frame(got[:-1])
        if got_fields["command"] == Command.COUNTERS.value | 0x80:
            want_fields, want_payload = decode_frame(want[:-1])
            rtl, ref = struct_fields(Counters, got_payload), struct_fields(Counters, want_payload)
            assert rtl["clock"] > 0
            rtl.pop("clock"), ref.pop("clock")
            assert (got_fields, rtl) == (want_fields, ref)
        else:
            assert got == want, (f"RTL {decode_frame(got[:-1])} != reference "
                                 f"{decode_frame(want[:-1])}")
        if got_fields["status"] == Status.OK.value:
            self.epoch = got_fields["epoch"]
        return got_fields, got_payload

    async def command(self, command, payload=b"", seq=None, **kwargs):
        if seq is None:
            seq, self.seq = self.seq, (self.seq + 1) % 256
        kwargs.setdefault("epoch", self.epoch)
        return await self.exchange(encode_frame(command, seq, payload, **kwargs))

    async def ok(self, command, payload=b"", **kwargs):
        """``command``, asserting the device (and so the reference) answered OK."""
        fields, reply = await self.command(command, payload, **kwargs)
        assert fields["status"] == Status.OK.value, (command, fields)
        return reply

    def access(self, lane, word, count, region=Region.LEVELS.value, tile=0, index=0):
        return struct_bytes(Access, region=region, tile=tile, lane=lane, word=word, count=count, index=index)

    async def tables(self, program, drift):
        """WRITE TABLE every entry, in frames that fit."""
        for payload in table_payloads(program, drift, self.max_payload):
            fields, _ = await self.command(Command.WRITE, payload)
            assert fields["status"] == Status.OK.value

    async def program(self, g_plus, g_minus, region=Region.LEVELS.value, first_write=0):
        """WRITE every lane, in chunks that fit a frame; TARGETS cells draw the noise of cell
        writes ``first_write`` on, in memory order."""
        cfg = self.cfg
        memory = lane_memory(cfg, g_plus, g_minus)
        chunk = (self.max_payload - len(self.access(0, 0, 0))) // 2
        for lane in range(cfg.lanes):
            for word in range(0, cfg.words_per_lane, chunk):
                cells = memory[lane, word:word + chunk]
                index = first_write + lane * cfg.words_per_lane + word
                await self.ok(Command.WRITE, self.access(lane, word, len(cells), region, index=index)
                              + cells.tobytes())

    async def checksums(self):
        """The CRC-32 of every lane's memory, as CHECKSUM reports it."""
        replies = [await self.command(Command.CHECKSUM, self.access(lane, 0, self.cfg.words_per_lane))
                   for lane in range(self.cfg.lanes)]
        return [payload for _, payload in replies]

    def random_levels(self):
        shape = (self.cfg.cols, self.cfg.rows)
        return (self.rng.integers(0, self.cfg.g_max + 1, shape),
                self.rng.integers(0, self.cfg.g_max + 1, shape))

    def run_head(self, batch, window=None, tile=0, index=0):
        window = Window.full(self.cfg) if window is None else window
        return struct_bytes(Run, tile=tile, batch=batch, index=index, **window._asdict())

    def random_window(self):
        cfg, rng = self.cfg, self.rng
        row0, col0 = int(rng.integers(0, cfg.rows)), int(rng.integers(0, cfg.cols))
        return Window(row0, int(rng.integers(1, cfg.rows - row0 + 1)),
                      col0, int(rng.integers(1, cfg.cols - col0 + 1)))

    def run_payload(self, batch, window=None, index=0):
        window = Window.full(self.cfg) if window is None else window
        x = self.rng.integers(-self.cfg.x_max, self.cfg.x_max + 1, (batch, window.rows))
        return self.run_head(batch, window, index=index) + x.astype(np.int8).tobytes()


def config_payload(op, tile=0, params=None, index=0):
    return struct_bytes(Config, tile=tile, op=op, params=params or {}, index=index)


def _with_length(command, seq, payload, length):
    """A valid frame whose LEN field lies about its payload."""
    body = struct.pack("<BBBBHH", PROTOCOL_VERSION, command.value, seq, 0, 0, length) + payload
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


async def commands_match_the_reference_device(tb):
    cfg = tb.cfg
    fields, hello = await tb.command(Command.HELLO)
    assert hello[:4] == b"MXB1"
    max_batch = tb.max_payload // (2 * cfg.cols)
    for _ in range(tb.programs):
        await tb.program(*tb.random_levels())
        for lane in range(cfg.lanes):
            await tb.command(Command.READ, tb.access(lane, 0, min(cfg.words_per_lane, tb.max_payload // 2)))
        await tb.checksums()
        for batch in (1, max_batch, int(tb.rng.integers(1, max_batch + 1))):
            fields, _ = await tb.command(Command.RUN, tb.run_payload(batch))
            assert fields["status"] == Status.OK.value
        for _ in range(3):  # windows: inputs outside are 0, only the window's outputs return
            window = tb.random_window()
            batch = min(3, tb.max_payload // (2 * window.cols), (tb.max_payload - RUN_BYTES) // window.rows)
            fields, _ = await tb.command(Command.RUN, tb.run_payload(batch, window))
            assert fields["status"] == Status.OK.value
    await tb.command(Command.COUNTERS)
    await tb.command(Command.RESET)
    await tb.command(Command.COUNTERS)


async def device_physics_commands_match_the_reference_device(tb):
    """PCM tables, CONFIG, WRITE TARGETS, noisy RUNs and a drift: byte for byte as the reference."""
    cfg = tb.cfg
    device = memxbar.PCM(stuck_on=0.05, stuck_off=0.05, verify_tolerance=0.5, verify_max=3)
    program, drift = device.compile_program(cfg), device.compile_drift(cfg, 0.0)
    modes = tb.modes
    for mode in (ReadNoise[name] for name in modes):
        await tb.tables(program, drift)
        epoch = tb.epoch
        await tb.ok(Command.CONFIG, config_payload(
            op=EngineOp.CONFIGURE.value, params=params_fields(99, mode, program, drift)))
        assert tb.epoch not in (0, epoch), "CONFIGURE moves the epoch on"
        marks = tb.rng.integers(0, 3, (2, min(cfg.words_per_lane, 9)))
        await tb.ok(Command.WRITE, tb.access(0, 0, marks.shape[1], region=Region.STUCK.value)
                    + (marks[0] | marks[1] << 2).astype(np.uint8).tobytes())
        top = device.target_max(cfg)
        targets = tb.rng.integers(0, top + 1, (2, cfg.cols, cfg.rows))
        await tb.program(*targets, region=Region.TARGETS.value, first_write=17)
        for lane in range(cfg.lanes):
            await tb.ok(Command.READ, tb.access(lane, 0, min(cfg.words_per_lane, tb.max_payload // 2)))
        reads = 0
        for batch in (1, min(3, tb.max_payload // (2 * cfg.cols))):
            await tb.ok(Command.RUN, tb.run_payload(batch, index=reads))
            reads += batch
        await tb.ok(Command.RUN, tb.run_payload(2, tb.random_window(), index=reads))
        # the host owns the read index: the same RUN twice (two SEQs) draws the same noise,
        # and a RUN after one the device never saw draws what its index says
        again = tb.run_payload(2, index=5)
        assert await tb.ok(Command.RUN, again) == await tb.ok(Command.RUN, again)
        await tb.ok(Command.RUN, tb.run_payload(1, index=41))
        # a code out of range in the second vector: the device has run the first MVM by the
        # time it reads it, and answers RANGE as if it had run none (no count, and the next
        # RUN with the same read index draws the same noise as the reference's)
        bad = bytearray(tb.run_payload(2, index=50))
        bad[RUN_BYTES + cfg.rows + cfg.rows // 2] = cfg.x_max + 1
        fields, _ = await tb.command(Command.RUN, bytes(bad))
        assert fields["status"] == Status.RANGE.value
        await tb.ok(Command.RUN, tb.run_payload(2, index=50))
        later = device.compile_drift(cfg, 86400.0)
        await tb.tables(None, later)
        # a DRIFT carrying another seed keeps CONFIGURE's: RTL and reference alike
        await tb.ok(Command.CONFIG, config_payload(
            op=EngineOp.DRIFT.value, params=params_fields(1234, mode, program, later), index=3))
        await tb.checksums()
        await tb.ok(Command.RUN, tb.run_payload(2, index=42))
        await tb.ok(Command.COUNTERS)


async def bad_requests_get_status_and_leave_memory_untouched(tb):
    cfg = tb.cfg
    await tb.program(*tb.random_levels())
    before = await tb.checksums()
    words = cfg.words_per_lane
    bad = [
        (Command.WRITE, tb.access(cfg.lanes, 0, 1) + b"\x00\x00", Status.RANGE),
        (Command.WRITE, tb.access(0, words, 1) + b"\x00\x00", Status.RANGE),
        (Command.WRITE, tb.access(0, 1, words) + bytes(4), Status.RANGE),  # ranges before LEN
        (Command.WRITE, tb.access(0, 0xFFFF, 2) + bytes(4), Status.RANGE),   # word + count wraps
        (Command.WRITE, tb.access(0, 2, 0xFFFF) + bytes(4), Status.RANGE),
        (Command.WRITE, tb.access(0, 0, 1, region=7) + bytes(2), Status.RANGE),
        (Command.WRITE, tb.access(0, 0, 1, tile=1) + bytes(2), Status.RANGE),
        (Command.WRITE, tb.access(0, 0, 2) + bytes(3), Status.LEN),
        (Command.WRITE, tb.access(0, 0, 1), Status.LEN),
        (Command.WRITE, b"\x00\x00", Status.LEN),
        (Command.READ, b"\x07", Status.LEN),
        (Command.RUN, b"\x00\x01", Status.LEN),
        (Command.READ, tb.access(0, 0, 1) + b"\x00", Status.LEN),
        (Command.READ, tb.access(0, 0xFFFF, 0xFFFF), Status.RANGE),
        (Command.RUN, tb.run_head(0), Status.LEN),
        (Command.RUN, tb.run_head(2) + bytes(cfg.rows), Status.LEN),
        (Command.RUN, tb.run_head(1, tile=1) + bytes(cfg.rows), Status.RANGE),
        (Command.RUN, tb.run_head(1, Window(0, 0, 0, 1)), Status.RANGE),
        (Command.RUN, tb.run_head(1, Window(0, 1, 0, 0)) + bytes(1), Status.RANGE),
        (Command.RUN, tb.run_head(1, Window(1, cfg.rows, 0, 1)) + bytes(cfg.rows), Status.RANGE),
        (Command.RUN, tb.run_head(1, Window(0, 1, cfg.cols - 1, 2)) + bytes(1), Status.RANGE),
        (Command.RUN, tb.run_head(1, Window(0xFFFF, 2, 0, 1)) + bytes(2), Status.RANGE),  # row0 + rows wraps
        (Command.RUN, tb.run_head(1, Window(0, 1, 1, 0xFFFF)) + bytes(1), Status.RANGE),
        (Command.RUN, tb.run_head(3, Window(0, 2, 0, 1)) + bytes(5), Status.LEN),
        (Command.RUN, tb.run_head(3, Window(0, 2, 0, 1)) + bytes(7), Status.LEN),
        (Command.RUN, tb.run_head(0xFFFF, Window(0, 1, 0, 1)) + bytes(5), Status.LEN),
        (Command.READ, tb.access(0, 0, 1, region=Region.TARGETS.value), Status.RANGE),
        (Command.CHECKSUM, tb.access(0, 0, 1, region=Region.TABLE.value), Status.RANGE),
        (Command.WRITE, tb.access(len(Table), 0, 1, region=Region.TABLE.value) + bytes(3), Status.RANGE),
        (Command.WRITE, tb.access(Table.LEVEL.value, 1 << cfg.g_bits, 1, region=Region.TABLE.value)
         + bytes(3), Status.RANGE),
        (Command.WRITE, tb.access(Table.DRIFT.value, 255, 2, region=Region.TABLE.value) + bytes(6),
         Status.RANGE),
        (Command.WRITE, tb.access(Table.LEVEL.value, 0, 2, region=Region.TABLE.value) + bytes(5), Status.LEN),
        (Command.WRITE, tb.access(Table.LEVEL.value, 0, 2, region=Region.TABLE.value)
         + bytes([1, 0, 0, 0, 1, 0]), Status.RANGE),  # 256 does not fit the 8-bit LEVEL table
        (Command.WRITE, tb.access(Table.READ_SIGMA.value, 0, 1, region=Region.TABLE.value)
         + bytes([0, 0, 0x20]), Status.RANGE),  # 2**21 does not fit 21 bits
        (Command.WRITE, tb.access(0, 0, 2, region=Region.STUCK.value) + bytes([0, 3]), Status.RANGE),
        (Command.WRITE, tb.access(0, 0, 2, region=Region.STUCK.value) + bytes([0x12, 0]), Status.RANGE),
        (Command.WRITE, tb.access(0, 0, 2, region=Region.STUCK.value) + bytes(3), Status.LEN),
        (Command.WRITE, tb.access(cfg.lanes, 0, 1, region=Region.STUCK.value) + bytes(1), Status.RANGE),
        (Command.CONFIG, b"", Status.LEN),
        (Command.CONFIG, config_payload(op=0)[:-1], Status.LEN),
        (Command.CONFIG, config_payload(op=2), Status.RANGE),
        (Command.CONFIG, config_payload(op=0, tile=1), Status.RANGE),
        (0x55, b"", Status.UNKNOWN_CMD),
        # inputs outside the DAC's +-x_max: the byte is never taken modulo 2**dac_bits
        (Command.RUN, tb.run_head(1, Window(0, 1, 0, 1)) + bytes([cfg.x_max + 1]), Status.RANGE),
        (Command.RUN, tb.run_head(1, Window(0, 1, 0, 1)) + np.int8(-cfg.x_max - 1).tobytes(),
         Status.RANGE),
        (Command.RUN, tb.run_head(2, Window(0, 2, 0, 1)) + bytes([1, 2, 3, 127]), Status.RANGE),
        (Command.HELLO, b"\x01", Status.LEN),
        (Command.READ, tb.access(0, 0, 1), Status.STATE, {"epoch": tb.epoch ^ 1}),  # a stale host
    ]
    if cfg.g_bits < 8:
        bad.append((Command.WRITE, tb.access(0, 0, 2) + bytes([1, 2, 1 << cfg.g_bits, 0]),
                    Status.RANGE))
    if tb.max_payload // (2 * cfg.cols) < 0xFFFF:
        batch = tb.max_payload // (2 * cfg.cols) + 1
        if RUN_BYTES + batch * cfg.rows <= tb.max_payload:
            bad.append((Command.RUN, tb.run_payload(batch), Status.LEN))
    batch = tb.max_payload // 2 + 1  # one output a vector, but 2 bytes each: the reply is too long
    if RUN_BYTES + batch <= tb.max_payload:
        bad.append((Command.RUN, tb.run_payload(batch, Window(0, 1, 0, 1)), Status.LEN))
    for command, payload, status, *options in bad:
        fields, _ = await tb.command(command, payload, **(options[0] if options else {}))
        assert fields["status"] == status.value, (command, payload[:8].hex(), fields)
    fields, _ = await tb.command(Command.HELLO, version=PROTOCOL_VERSION - 1)
    assert fields["status"] == Status.VERSION.value
    fields, _ = await tb.exchange(_with_length(Command.HELLO, 201, b"\x01\x02", 5))
    assert fields["status"] == Status.LEN.value
    assert await tb.checksums() == before


async def replayed_seq_returns_the_cached_reply_without_executing(tb):
    await tb.ok(Command.RESET)
    levels = tb.random_levels()
    await tb.program(*levels)
    payload = tb.access(0, 0, 1) + b"\x01\x00"
    first = await tb.command(Command.WRITE, payload, seq=77)
    again = await tb.command(Command.WRITE, payload, seq=77)  # the reference checks equal bytes
    assert first == again
    # two requests in flight, the first reply lost: its retry is answered from the cache,
    # so nothing executes twice (the reference device checks the reply bytes)
    run = tb.run_payload(1)
    first = await tb.command(Command.RUN, run, seq=80)
    await tb.command(Command.WRITE, payload, seq=81)
    assert await tb.command(Command.RUN, run, seq=80) == first
    fields = struct_fields(Counters, await tb.ok(Command.COUNTERS))
    assert fields["cell_writes"] == tb.cfg.lanes * tb.cfg.words_per_lane + 2
    assert fields["mvms"] == 1


async def garbage_and_cut_frames_are_dropped(tb):
    for n in range(tb.garbage):
        garbage = tb.rng.integers(0, 256, int(tb.rng.integers(1, 40)), dtype=np.uint8).tobytes()
        await tb.exchange(garbage + b"\x00")
        good = encode_frame(Command.HELLO, n, b"")
        await tb.exchange(good[: int(tb.rng.integers(1, len(good) - 1))] + b"\x00")
        fields, _ = await tb.command(Command.HELLO)
        assert fields["status"] == Status.OK.value


class SocketBench(FrameBench):
    """The checks over the TCP port of a simulated device (``memxbar.sim.device``).

    The device answers requests in order, so a reply where the reference stays silent shows
    up as the wrong frame at the next reply; :meth:`close` waits a moment for stray bytes.
    """

    def __init__(self, device, config, max_payload, timeout=10.0, **sizes):
        super().__init__(config, max_payload, **sizes)
        self.timeout = timeout
        self._socket = socket.create_connection(("127.0.0.1", device.tcp_port), timeout=timeout)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()

    async def send(self, wire):
        self._socket.sendall(wire)

    async def silent(self):
        pass  # checked by the next reply, and by close()

    async def reply(self):
        deadline = time.monotonic() + self.timeout
        while (end := self._buffer.find(0)) < 0:
            self._socket.settimeout(max(1e-3, deadline - time.monotonic()))
            try:
                chunk = self._socket.recv(65536)
            except TimeoutError:
                chunk = None
            assert chunk, f"no reply from the RTL within {self.timeout:g} s (got {bytes(self._buffer)!r})"
            self._buffer += chunk
        frame = bytes(self._buffer[:end + 1])
        del self._buffer[:end + 1]
        return frame

    def close(self, linger=0.2):
        """Disconnect; with ``linger`` seconds, first assert nothing arrived unasked in that time."""
        stray = b""
        if linger:
            self._socket.settimeout(linger)
            with contextlib.suppress(TimeoutError):
                stray = self._socket.recv(65536)
        self._socket.close()
        unasked = bytes(self._buffer) + stray
        assert not linger or not unasked, f"the RTL sent {unasked!r} unasked"


#: The checks :func:`run_checks` runs, by name (the cocotb tests of ``memxbar.sim.tb_top`` too).
CHECKS = {check.__name__: check for check in (
    commands_match_the_reference_device, device_physics_commands_match_the_reference_device,
    bad_requests_get_status_and_leave_memory_untouched,
    replayed_seq_returns_the_cached_reply_without_executing, garbage_and_cut_frames_are_dropped)}


def run_checks(config, max_payload, names=None, **sizes):
    """Run the checks ``names`` (default all) on ``sim://``'s byte-level top, each on a fresh device."""
    from .device import SimulatedDevice

    for name in names or CHECKS:
        with SimulatedDevice(config, max_payload=max_payload) as device:
            bench = SocketBench(device, config, max_payload, **sizes)
            try:
                asyncio.run(CHECKS[name](bench))
            except BaseException:
                bench.close(linger=0)
                raise
            bench.close()
