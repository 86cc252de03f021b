"""cocotb testbench of the UART against cocotbext-uart's UartSource/UartSink, an independent peer.

``UARTPair`` puts receiver and transmitter side by side so one Verilator build tests both.
"""

import os

import cocotb
import numpy as np
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, Timer
from cocotbext.uart import UartSink, UartSource

from memxbar.hdl.uart import UARTReceiver, UARTTransmitter

from .rtl import StreamSink, StreamSource, pause_cycle

CLOCK_NS = 10
TIMEOUT_MS = 50  # simulated ms; a pass needs under 10


class UARTPair(wiring.Component):
    """Receiver on ``rx`` -> ``rx_bytes``; ``tx_bytes`` -> transmitter on ``tx``."""

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1), "framing_error": Out(1), "overrun": Out(1),
            "rx_bytes": Out(stream.Signature(8)), "tx_bytes": In(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = UARTReceiver(self.divisor)
        m.submodules.transmitter = transmitter = UARTTransmitter(self.divisor)
        m.d.comb += [receiver.rx.eq(self.rx), self.tx.eq(transmitter.tx),
                     self.framing_error.eq(receiver.framing_error), self.overrun.eq(receiver.overrun)]
        wiring.connect(m, wiring.flipped(self.rx_bytes), receiver.bytes_out)
        wiring.connect(m, transmitter.bytes_in, wiring.flipped(self.tx_bytes))
        return m


class UartTB:
    def __init__(self, dut):
        self.dut = dut
        self.divisor = int(os.environ["MEMXBAR_UART_DIVISOR"])
        self.rng = np.random.default_rng(self.divisor)
        self.bit_ns = self.divisor * CLOCK_NS
        dut.rx.value = 1
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 3)

    def payload(self):
        """Every byte value and random ones; slow baud rates get fewer to bound the run time."""
        if self.divisor > 16:
            return self.rng.integers(0, 256, max(32, 6000 // self.divisor), dtype=np.uint8).tobytes()
        return bytes(range(256)) + self.rng.integers(0, 256, 200, dtype=np.uint8).tobytes()

    def peer_baud(self, mismatch):
        return 1e9 / self.bit_ns * (1 + mismatch)


MISMATCHES = (0.0, +0.02, -0.02)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def receives_every_byte_value_with_baud_mismatch(dut):
    tb = UartTB(dut)
    await tb.reset()
    for mismatch in MISMATCHES:
        source = UartSource(dut.rx, baud=tb.peer_baud(mismatch))
        data = tb.payload()
        receiving = cocotb.start_soon(StreamSink(dut, "rx_bytes", dut.clk).recv(len(data)))
        await source.write(data)
        got = bytes(await receiving)
        assert got == data, f"mismatch {mismatch:+.0%}: first difference at byte " \
            f"{next(i for i, (a, b) in enumerate(zip(got, data, strict=True)) if a != b)}"
        await source.wait()
        source._run_cr.cancel()  # cocotbext-uart has no stop(): free the rx pin for the next peer


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def transmits_back_to_back_and_with_gaps(dut):
    tb = UartTB(dut)
    await tb.reset()
    source = StreamSource(dut, "tx_bytes", dut.clk)
    for mismatch, pause in zip(MISMATCHES, (None, [0, 1, 1], [1] * 40 + [0]), strict=True):
        sink = UartSink(dut.tx, baud=tb.peer_baud(mismatch))
        data = tb.payload()
        await source.send(list(data), pause_cycle(pause))
        await Timer(tb.bit_ns * 12, unit="ns")
        got = sink.read_nowait()
        assert bytes(got) == data, f"mismatch {mismatch:+.0%}: {len(got)} of {len(data)} bytes"
        sink._run_cr.cancel()  # likewise: one sink per baud rate


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def framing_error_drops_the_byte_and_recovers(dut):
    tb = UartTB(dut)
    await tb.reset()
    errors = 0

    async def count_errors():
        nonlocal errors
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()
            errors += int(dut.framing_error.value)

    counter = cocotb.start_soon(count_errors())
    sink = StreamSink(dut, "rx_bytes", dut.clk)
    receiving = cocotb.start_soon(sink.recv(1))
    for level in [0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0]:  # start, 0x55, a low stop bit, low line
        await FallingEdge(dut.clk)
        dut.rx.value = level
        await Timer(tb.bit_ns, unit="ns")
    await FallingEdge(dut.clk)
    dut.rx.value = 1
    await Timer(tb.bit_ns * 3, unit="ns")
    assert errors == 1 and not receiving.done()
    source = UartSource(dut.rx, baud=tb.peer_baud(0))
    await source.write(b"\xa7")
    assert await receiving == [0xA7]
    counter.cancel()
