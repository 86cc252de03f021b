"""Helpers for cocotb testbenches: signals as ints, stream drivers with pause generators."""

import itertools

import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly

__all__ = ["StreamSink", "StreamSource", "from_bits", "pause_cycle", "to_bits"]


def to_bits(value, width):
    """Two's-complement encoding of a Python int in ``width`` bits."""
    return value & ((1 << width) - 1)


def from_bits(words, width):
    """Two's-complement ``width``-bit words (ints or an array) as a signed int64 array."""
    words = np.asarray(words, dtype=np.int64)
    return np.where(words >= 1 << (width - 1), words - (1 << width), words)


def pause_cycle(pattern):
    """An endless pause generator: ``1`` means idle this cycle (cocotbext-axi convention)."""
    return itertools.cycle(pattern) if pattern else itertools.repeat(0)


class StreamSource:
    """Drives an ``amaranth.lib.stream`` sink (``<name>__payload/valid/ready``).

    Inputs change at the falling edge and are sampled by the design at the rising edge, so a
    transfer is decided from settled values, never from a race at the edge.
    """

    def __init__(self, dut, name, clk):
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.clk = clk
        self.valid.value = 0

    async def send(self, words, pause=None):
        """Transfer every word of ``words`` (already encoded as unsigned ints)."""
        pause = pause or pause_cycle(None)
        words = list(words)
        index = 0
        while index < len(words):
            await FallingEdge(self.clk)
            if next(pause):
                self.valid.value = 0
                continue
            self.payload.value = words[index]
            self.valid.value = 1
            await ReadOnly()
            if self.ready.value:
                index += 1
        await FallingEdge(self.clk)
        self.valid.value = 0


class StreamSink:
    """Consumes an ``amaranth.lib.stream`` source, recording payloads as unsigned ints."""

    def __init__(self, dut, name, clk):
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.clk = clk
        self.ready.value = 0

    async def recv(self, count, pause=None, on_word=None):
        pause = pause or pause_cycle(None)
        words = []
        while len(words) < count:
            await FallingEdge(self.clk)
            ready = not next(pause)
            self.ready.value = int(ready)
            await ReadOnly()
            if ready and self.valid.value:
                words.append(self.payload.value.to_unsigned())
                if on_word is not None:
                    on_word()
        await FallingEdge(self.clk)
        self.ready.value = 0
        return words
