"""The device top: UART pins <-> framer <-> command engine <-> tile.

This is what a board's bitstream contains and what ``sim://`` simulates, pins included.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..protocol import TileConfig
from ..protocol.frames import HEADER_BYTES
from .engine import CommandEngine
from .framing import CRC_BYTES, FrameReceiver, FrameTransmitter
from .tile import Tile
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["Top"]


class Top(wiring.Component):
    """A memxbar device with one tile behind an 8N1 UART.

    Parameters
    ----------
    config : TileConfig
    divisor : int
        Clock cycles per UART bit (clock / baud).
    max_payload : int
        Largest request or reply payload in bytes; sets the two frame buffers.
    gap_bytes : int
        A frame idle for this many byte times is dropped (the host has given up on it).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, config, divisor, max_payload=1024, gap_bytes=64):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        if not isinstance(max_payload, int) or not 64 <= max_payload <= 0xFFFF:
            raise ValueError(f"max_payload must be an integer in [64, 65535], not {max_payload!r}")
        self.config = config
        self.divisor = divisor
        self.max_payload = max_payload
        self.gap_cycles = gap_bytes * 10 * divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTransmitter(self.divisor)
        m.submodules.receiver = receiver = FrameReceiver(
            self.max_payload + HEADER_BYTES + CRC_BYTES, self.gap_cycles)
        m.submodules.transmitter = transmitter = FrameTransmitter(self.max_payload + HEADER_BYTES)
        m.submodules.engine = engine = CommandEngine(self.config, self.max_payload)
        m.submodules.tile = tile = Tile(self.config)

        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.bytes_out, receiver.bytes_in)
        wiring.connect(m, transmitter.bytes_out, uart_tx.bytes_in)
        m.d.comb += [
            engine.frame_valid.eq(receiver.frame_valid),
            engine.frame_length.eq(receiver.frame_length),
            receiver.frame_release.eq(engine.frame_release),
            engine.frame_dropped.eq(receiver.frame_dropped),
            receiver.read_addr.eq(engine.read_addr),
            engine.read_data.eq(receiver.read_data),
            transmitter.write_addr.eq(engine.write_addr),
            transmitter.write_data.eq(engine.write_data),
            transmitter.write_en.eq(engine.write_en),
            transmitter.start.eq(engine.send),
            transmitter.resend.eq(engine.resend),
            transmitter.resend_previous.eq(engine.resend_previous),
            transmitter.length.eq(engine.send_length),
            engine.sending.eq(transmitter.busy),
        ]
        wiring.connect(m, engine.prog, tile.prog)
        wiring.connect(m, tile.readback, engine.readback)
        wiring.connect(m, engine.x, tile.x)
        wiring.connect(m, tile.y, engine.y)
        wiring.connect(m, engine.program, tile.program)
        wiring.connect(m, engine.stuck, tile.stuck)
        wiring.connect(m, engine.table, tile.table)
        wiring.connect(m, engine.op, tile.op)
        m.d.comb += [tile.params.eq(engine.params), engine.tile_busy.eq(tile.busy),
                     engine.pulse.eq(tile.pulse), engine.verify_read.eq(tile.verify_read),
                     tile.drift_index.eq(engine.drift_index), tile.read_index.eq(engine.read_index),
                     tile.read_load.eq(engine.read_load),
                     engine.uart_overrun.eq(uart_rx.overrun),
                     engine.uart_framing_error.eq(uart_rx.framing_error)]
        return m
