"""Helpers for cocotb testbenches: signals as ints, stream drivers, and a driver of the tile.

Public for your own cocotb tests against memxbar's RTL (README, "Your own cocotb test"):
:class:`StreamSource`/:class:`StreamSink` drive any ``amaranth.lib.stream`` port of a design
Amaranth exported (``<name>__payload/valid/ready``), and :class:`TileDriver` programs a
:class:`memxbar.hdl.Tile` and streams MVMs through it, for comparison with
:func:`memxbar.model.mvm_codes`, the golden model.
"""

import itertools

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

__all__ = ["StreamSink", "StreamSource", "TileDriver", "field_packer", "from_bits", "pause_cycle", "to_bits"]


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


def field_packer(layout):
    """``(pack, unpack)`` for an ``amaranth.lib.data`` layout, at the layout's own offsets.

    ``pack(**{"a": 1, "b.c": 2})`` is the integer a port of that layout carries (nested fields
    dotted); ``unpack(word)`` gives the dict back (fields unsigned).
    """
    fields = []

    def walk(layout, base, prefix):
        for name, field in layout:
            if isinstance(field.shape, data.Layout):
                walk(field.shape, base + field.offset, f"{prefix}{name}.")
            else:
                fields.append((f"{prefix}{name}", base + field.offset, field.width))

    walk(layout, 0, "")

    def pack(**values):
        word = 0
        for name, offset, width in fields:
            word |= to_bits(values.get(name, 0), width) << offset
        return word

    def unpack(word):
        return {name: (word >> offset) & ((1 << width) - 1) for name, offset, width in fields}

    return pack, unpack


def _pauses(pause):
    return pause_cycle(pause) if isinstance(pause, list | tuple) else pause


class TileDriver:
    """Drives a Verilated :class:`memxbar.hdl.Tile` of ``config`` from a cocotb test.

    Starts a clock on ``dut.clk`` (``period_ns``) unless ``clock=False``. The physics ports stay
    idle (no CONFIG, parameters 0), so MVMs are ideal and equal :func:`memxbar.model.mvm_codes`.
    A ``pause`` is a pattern (``[0, 1]``: idle every other cycle) or a pause generator.
    """

    def __init__(self, dut, config, period_ns=10, clock=True):
        from memxbar.hdl import cell_layout, prog_layout

        self.dut, self.config = dut, config
        self._pack_prog, _ = field_packer(prog_layout(config))
        _, self._unpack_cell = field_packer(cell_layout(config))
        self.prog = StreamSource(dut, "prog", dut.clk)
        self.readback = StreamSink(dut, "readback", dut.clk)
        self.x = StreamSource(dut, "x", dut.clk)
        self.y = StreamSink(dut, "y", dut.clk)
        if clock:
            cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())

    async def reset(self, cycles=3):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def program(self, g_plus, g_minus, pause=None):
        """Write levels ``(cols, rows)`` into every cell through the ``prog`` port."""
        from memxbar.protocol import cell_address

        g_plus, g_minus = np.asarray(g_plus), np.asarray(g_minus)
        cols, rows = np.indices(g_plus.shape)
        lanes, words = cell_address(self.config, rows, cols)
        await self.prog.send([
            self._pack_prog(**{"write": 1, "lane": lane, "word": word, "cell.g_plus": gp, "cell.g_minus": gm})
            for lane, word, gp, gm in zip(lanes.ravel().tolist(), words.ravel().tolist(),
                                          g_plus.ravel().tolist(), g_minus.ravel().tolist(), strict=True)
        ], _pauses(pause))

    async def read_cell(self, row, col):
        """``(g_plus, g_minus)`` of one cell, read back through ``prog``/``readback``."""
        from memxbar.protocol import cell_address

        lane, word = cell_address(self.config, row, col)
        receiving = cocotb.start_soon(self.readback.recv(1))
        await self.prog.send([self._pack_prog(write=0, lane=lane, word=word)])
        cell = self._unpack_cell((await receiving)[0])
        return cell["g_plus"], cell["g_minus"]

    async def mvm(self, x_codes, in_pause=None, out_pause=None):
        """Stream input vectors ``(batch, rows)`` in; returns the signed ADC codes ``(batch, cols)``."""
        cfg = self.config
        x_codes = np.atleast_2d(x_codes)
        receiving = cocotb.start_soon(self.y.recv(len(x_codes) * cfg.cols, _pauses(out_pause)))
        await self.x.send([to_bits(v, cfg.dac_bits) for v in x_codes.ravel().tolist()], _pauses(in_pause))
        return from_bits(await receiving, cfg.adc_bits).reshape(len(x_codes), cfg.cols)
