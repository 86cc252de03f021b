"""cocotb testbench of the device top through its UART pins, against the Python reference device.

Every request goes to the RTL (via cocotbext-uart on ``rx``/``tx``) and to
:class:`memxbar.reference.ReferenceDevice`; the reply frames must be identical byte for byte
(COUNTERS: every field but ``clock``, which only the RTL has).
"""

import json
import os
import struct
import zlib

import cocotb
import numpy as np
from cobs import cobs
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Timer
from cocotbext.uart import UartSink, UartSource

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

CLOCK_NS = 10
TIMEOUT_MS = 100  # simulated ms; a pass needs under 10
RUN_BYTES = len(struct_bytes(Run))


class TopTB:
    def __init__(self, dut):
        self.dut = dut
        self.cfg = TileConfig(**json.loads(os.environ["MEMXBAR_TILE_CONFIG"]))
        self.divisor = int(os.environ["MEMXBAR_DIVISOR"])
        self.max_payload = int(os.environ["MEMXBAR_MAX_PAYLOAD"])
        self.rng = np.random.default_rng(11)
        self.ref = ReferenceDevice(self.cfg, self.max_payload)
        self.seq = 0
        self.epoch = 0  # the device's, as its last OK reply said
        baud = 1e9 / (self.divisor * CLOCK_NS)
        dut.rx.value = 1
        self.source = UartSource(dut.rx, baud=baud)
        self.sink = UartSink(dut.tx, baud=baud)
        self.sink.log.setLevel("WARNING")
        self.source.log.setLevel("WARNING")
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())

    @property
    def byte_ns(self):
        return self.divisor * CLOCK_NS * 10

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 3)

    async def reply(self):
        data = bytearray()
        while not data or data[-1] != 0:
            data += await self.sink.read(1)
        return bytes(data)

    async def exchange(self, wire):
        """Send raw bytes to both devices; return the RTL's reply after checking it."""
        want = self.ref.receive(wire)
        await self.source.write(wire)
        if not want:
            await self.source.wait()
            await Timer(self.byte_ns * 4, unit="ns")
            assert self.sink.empty(), "the RTL replied where the reference device stays silent"
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


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def commands_match_the_reference_device(dut):
    tb = TopTB(dut)
    await tb.reset()
    cfg = tb.cfg
    fields, hello = await tb.command(Command.HELLO)
    assert hello[:4] == b"MXB1"
    max_batch = tb.max_payload // (2 * cfg.cols)
    for _ in range(int(os.environ.get("MEMXBAR_TB_PROGRAMS", "4"))):
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


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def device_physics_commands_match_the_reference_device(dut):
    """PCM tables, CONFIG, WRITE TARGETS, noisy RUNs and a drift: byte for byte as the reference."""
    tb = TopTB(dut)
    await tb.reset()
    cfg = tb.cfg
    device = memxbar.PCM(stuck_on=0.05, stuck_off=0.05, verify_tolerance=0.5, verify_max=3)
    program, drift = device.compile_program(cfg), device.compile_drift(cfg, 0.0)
    modes = os.environ.get("MEMXBAR_TB_MODES", "PER_READ,FROZEN").split(",")
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
        later = device.compile_drift(cfg, 86400.0)
        await tb.tables(None, later)
        # a DRIFT carrying another seed keeps CONFIGURE's: RTL and reference alike
        await tb.ok(Command.CONFIG, config_payload(
            op=EngineOp.DRIFT.value, params=params_fields(1234, mode, program, later), index=3))
        await tb.checksums()
        await tb.ok(Command.RUN, tb.run_payload(2, index=42))
        await tb.ok(Command.COUNTERS)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def bad_requests_get_status_and_leave_memory_untouched(dut):
    tb = TopTB(dut)
    await tb.reset()
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


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def replayed_seq_returns_the_cached_reply_without_executing(dut):
    tb = TopTB(dut)
    await tb.reset()
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


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def a_claimed_device_refuses_a_stale_host(dut):
    tb = TopTB(dut)
    await tb.reset()
    await tb.ok(Command.HELLO, (0x1234).to_bytes(2, "little"))
    assert tb.epoch == 0x1234
    await tb.program(*tb.random_levels())
    fields, _ = await tb.command(Command.READ, tb.access(0, 0, 1), epoch=0x4321)  # another client's view
    assert fields["status"] == Status.STATE.value and fields["epoch"] == 0x1234
    await tb.reset()  # a reset device is unclaimed again: the host's epoch is refused
    tb.ref.epoch, tb.ref._replies = 0, []  # what the reset did to the engine's registers
    fields, _ = await tb.command(Command.READ, tb.access(0, 0, 1), epoch=0x1234)
    assert fields["status"] == Status.STATE.value and fields["epoch"] == 0


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def garbage_and_cut_frames_are_dropped(dut):
    tb = TopTB(dut)
    await tb.reset()
    for n in range(int(os.environ.get("MEMXBAR_TB_GARBAGE", "30"))):
        garbage = tb.rng.integers(0, 256, int(tb.rng.integers(1, 40)), dtype=np.uint8).tobytes()
        await tb.exchange(garbage + b"\x00")
        good = encode_frame(Command.HELLO, n, b"")
        await tb.exchange(good[: int(tb.rng.integers(1, len(good) - 1))] + b"\x00")
        fields, _ = await tb.command(Command.HELLO)
        assert fields["status"] == Status.OK.value


def config_payload(op, tile=0, params=None, index=0):
    return struct_bytes(Config, tile=tile, op=op, params=params or {}, index=index)


def _with_length(command, seq, payload, length):
    """A valid frame whose LEN field lies about its payload."""
    body = struct.pack("<BBBBHH", PROTOCOL_VERSION, command.value, seq, 0, 0, length) + payload
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def uart_errors_are_counted(dut):
    """A low stop bit is a framing error; bytes arriving while both frame buffers are full are
    overruns: both dropped, counted in COUNTERS, and the device answers afterwards."""
    tb = TopTB(dut)
    await tb.reset()
    bit = tb.divisor * CLOCK_NS
    for level in [0, 1, 0, 1, 0, 1, 0, 1, 0, 0]:  # start, 0x55, a low stop bit
        dut.rx.value = level
        await Timer(bit, unit="ns")
    dut.rx.value = 1
    await Timer(20 * bit, unit="ns")
    tb.ref.counters["uart_framing_errors"] += 1  # the reference device has no pins
    fields = struct_fields(Counters, await tb.ok(Command.COUNTERS))
    assert fields["uart_framing_errors"] == 1 and fields["uart_overruns"] == 0
    if not tb.cfg.physics:
        return
    # CONFIGURE keeps the engine busy erasing every cell while three more frames arrive: the
    # first waits in the second buffer, the bytes of the others find no room
    flood = encode_frame(Command.CONFIG, 1, config_payload(op=EngineOp.CONFIGURE.value), epoch=tb.epoch)
    flood += b"".join(encode_frame(Command.HELLO, 2 + n) for n in range(3))
    await tb.source.write(flood)
    await tb.source.wait()
    epoch = decode_frame((await tb.reply())[:-1])[0]["epoch"]  # CONFIGURE's, once it has erased
    await Timer(200 * tb.byte_ns, unit="ns")
    while not tb.sink.empty():  # the HELLOs that got through
        await tb.reply()
    tb.seq = 10
    raw = encode_frame(Command.COUNTERS, tb.seq, epoch=epoch)
    await tb.source.write(raw)
    reply_fields, payload = decode_frame((await tb.reply())[:-1])
    assert reply_fields["status"] == Status.OK.value
    counts = struct_fields(Counters, payload)
    assert counts["uart_overruns"] > 0 and counts["uart_framing_errors"] == 1, counts
