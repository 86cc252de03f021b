"""cocotb testbench of the device top through its UART pins, against the Python reference device.

The frame-level checks (:mod:`memxbar.sim.frame_checks`) run here through cocotbext-uart on
``rx``/``tx``, and so do the checks only pins or a reset can make: a claimed device after a
reset, framing errors and overruns of the UART.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Timer
from cocotbext.uart import UartSink, UartSource

from memxbar.protocol import TileConfig
from memxbar.protocol.frames import Command, Counters, Status, decode_frame, encode_frame, struct_fields
from memxbar.protocol.physics import EngineOp

from .frame_checks import CHECKS, FrameBench, config_payload

CLOCK_NS = 10
TIMEOUT_MS = 100  # simulated ms; a pass needs under 10


class TopTB(FrameBench):
    """The frame-level checks' bench on the UART pins of a cocotb-driven top."""

    def __init__(self, dut):
        super().__init__(TileConfig(**json.loads(os.environ["MEMXBAR_TILE_CONFIG"])),
                         int(os.environ["MEMXBAR_MAX_PAYLOAD"]),
                         programs=int(os.environ.get("MEMXBAR_TB_PROGRAMS", "4")),
                         modes=os.environ.get("MEMXBAR_TB_MODES", "PER_READ,FROZEN").split(","),
                         garbage=int(os.environ.get("MEMXBAR_TB_GARBAGE", "30")))
        self.dut = dut
        self.divisor = int(os.environ["MEMXBAR_DIVISOR"])
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

    async def send(self, wire):
        await self.source.write(wire)

    async def silent(self):
        await self.source.wait()
        await Timer(self.byte_ns * 4, unit="ns")
        assert self.sink.empty(), "the RTL replied where the reference device stays silent"

    async def reply(self):
        data = bytearray()
        while not data or data[-1] != 0:
            data += await self.sink.read(1)
        return bytes(data)


def _through_the_pins(check):
    async def test(dut):
        tb = TopTB(dut)
        await tb.reset()
        await check(tb)

    test.__name__ = test.__qualname__ = check.__name__
    test.__doc__ = check.__doc__
    return cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")(test)


for _name, _check in CHECKS.items():
    globals()[_name] = _through_the_pins(_check)


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
