"""cocotb testbench of the gateware framer: frames from the host's encoder come back intact.

``FrameEcho`` receives a frame and sends the same header and payload back as a new frame,
so a round trip exercises COBS decode, CRC check, buffering, CRC generation and COBS encode.
"""

import os

import cocotb
import numpy as np
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from memxbar.hdl.framing import CRC_BYTES, FrameReceiver, FrameTransmitter
from memxbar.protocol.frames import HEADER_BYTES, Command, decode_frame, encode_frame

from .rtl import StreamSink, StreamSource, pause_cycle

TIMEOUT_MS = 20  # simulated ms; a pass needs under 2
GAP_CYCLES = 200


class FrameEcho(wiring.Component):
    bytes_in: In(stream.Signature(8))
    bytes_out: Out(stream.Signature(8))
    dropped: Out(1)

    def __init__(self, depth):
        self.depth = depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = FrameReceiver(self.depth, GAP_CYCLES)
        m.submodules.tx = tx = FrameTransmitter(self.depth)
        wiring.connect(m, wiring.flipped(self.bytes_in), rx.bytes_in)
        wiring.connect(m, tx.bytes_out, wiring.flipped(self.bytes_out))
        m.d.comb += self.dropped.eq(rx.frame_dropped)
        index = Signal(range(self.depth + 1))
        copying = Signal()
        m.d.comb += rx.read_addr.eq(index)
        with m.If(rx.frame_valid & ~copying & ~tx.busy & ~rx.frame_release):
            m.d.sync += [copying.eq(1), index.eq(0)]
        with m.If(copying):  # read_data of address index-1 arrives now
            m.d.sync += index.eq(index + 1)
            m.d.comb += [tx.write_addr.eq(index - 1), tx.write_data.eq(rx.read_data),
                         tx.write_en.eq(index != 0)]
            with m.If(index == rx.frame_length):
                m.d.sync += copying.eq(0)
                m.d.comb += [tx.start.eq(1), tx.length.eq(rx.frame_length), rx.frame_release.eq(1)]
        return m


class FramingTB:
    def __init__(self, dut):
        self.dut = dut
        self.depth = int(os.environ["MEMXBAR_FRAME_DEPTH"])
        self.rng = np.random.default_rng(5)
        self.source = StreamSource(dut, "bytes_in", dut.clk)
        self.sink = StreamSink(dut, "bytes_out", dut.clk)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0

    async def receive_frame(self, pause=None):
        """Bytes from the sink up to and including the delimiter, decoded."""
        data = []
        while not data or data[-1] != 0:
            data += await self.sink.recv(1, pause)
        return decode_frame(bytes(data[:-1]))

    def random_payload(self, size):
        kind = self.rng.integers(4)
        if kind == 0:
            return bytes(size)
        if kind == 1:
            return b"\xff" * size
        if kind == 2:  # zeros sprinkled into long non-zero runs: COBS blocks of every length
            data = self.rng.integers(1, 256, size, dtype=np.uint8)
            data[self.rng.random(size) < 0.004] = 0
            return data.tobytes()
        return self.rng.integers(0, 256, size, dtype=np.uint8).tobytes()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def frames_round_trip(dut):
    tb = FramingTB(dut)
    await tb.reset()
    largest = tb.depth - HEADER_BYTES - CRC_BYTES  # the longest payload a buffer holds
    sizes = [0, 1, 247, 248, 249, 250, 253, 254, largest]
    sizes += tb.rng.integers(0, largest + 1, 40).tolist()
    for n, size in enumerate(sizes):
        payload = tb.random_payload(size)
        frame = encode_frame(Command.WRITE, n % 256, payload)
        receiving = cocotb.start_soon(tb.receive_frame(pause_cycle([0, 1] if n % 2 else None)))
        await tb.source.send(list(frame), pause_cycle([1, 0, 0] if n % 3 == 0 else None))
        fields, echoed = await receiving
        assert echoed == payload, f"size {size}: payload differs"
        assert (fields["command"], fields["seq"]) == (Command.WRITE.value, n % 256)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def garbage_is_dropped_and_the_next_frame_accepted(dut):
    tb = FramingTB(dut)
    await tb.reset()
    dropped = 0

    async def count_drops():
        nonlocal dropped
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()
            dropped += int(dut.dropped.value)

    cocotb.start_soon(count_drops())
    cases = int(os.environ.get("MEMXBAR_GARBAGE_CASES", "300"))
    for n in range(cases):
        garbage = tb.rng.integers(0, 256, int(tb.rng.integers(1, 80)), dtype=np.uint8).tobytes()
        good_payload = tb.random_payload(int(tb.rng.integers(0, 30)))
        good = encode_frame(Command.READ, n % 256, good_payload)
        if n % 3 == 0:  # a valid frame cut short, then garbage
            garbage = good[: int(tb.rng.integers(1, len(good) - 1))] + garbage
        receiving = cocotb.start_soon(tb.receive_frame())
        # garbage, a delimiter ending it, then the good frame
        await tb.source.send(list(garbage + b"\x00" + good))
        fields, payload = await receiving
        assert fields["seq"] == n % 256, "a garbage frame was accepted before the valid one"
        assert payload == good_payload
    assert dropped > cases // 2


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def a_gap_inside_a_frame_drops_it(dut):
    tb = FramingTB(dut)
    await tb.reset()
    first = encode_frame(Command.RUN, 1, b"\x01\x02\x03\x04")
    second = encode_frame(Command.RUN, 2, b"\x05")
    await tb.source.send(list(first[:5]))
    await ClockCycles(dut.clk, GAP_CYCLES + 10)
    receiving = cocotb.start_soon(tb.receive_frame())
    await tb.source.send(list(first[5:] + second))
    fields, payload = await receiving
    assert (fields["seq"], payload) == (2, b"\x05")
