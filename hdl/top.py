"""The device tops: framer <-> command engine <-> tile, behind UART pins or a byte stream.

:class:`Top` is what a board's bitstream contains, UART pins included; ``Board.sim_url`` and
the link-timing benchmarks simulate it. :class:`ByteTop` is the same device with the UART
taken out: the simulator feeds the frame receiver and takes the transmitter's bytes directly
(at most one byte per cycle each way), which is what plain ``sim://`` runs. Everything but the
UART is shared, so both compute the same bits.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol import TileConfig
from ..protocol.frames import HEADER_BYTES
from .engine import CommandEngine
from .framing import CRC_BYTES, FrameReceiver, FrameTransmitter
from .tile import Tile
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["ByteTop", "Top"]


def _check_max_payload(max_payload):
    if not isinstance(max_payload, int) or not 64 <= max_payload <= 0xFFFF:
        raise ValueError(f"max_payload must be an integer in [64, 65535], not {max_payload!r}")


def _framed_engine(m, config, max_payload, gap_cycles):
    """Receiver, transmitter, command engine and tile, wired; returns the two link ends.

    Also returns ``idle``: high while no frame is arriving or waiting, the engine and the
    tile have nothing to do and no reply byte is left to hand out. A simulator may stop the
    clock then (nothing changes until a byte arrives); it is derived from the components'
    ports, so the framer needs no extra output for it.
    """
    m.submodules.receiver = receiver = FrameReceiver(max_payload + HEADER_BYTES + CRC_BYTES, gap_cycles)
    m.submodules.transmitter = transmitter = FrameTransmitter(max_payload + HEADER_BYTES)
    m.submodules.engine = engine = CommandEngine(config, max_payload)
    m.submodules.tile = tile = Tile(config)
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
                 tile.read_load.eq(engine.read_load)]

    # A frame is arriving from its first non-zero byte until its 0x00 or a gap drop (every
    # non-zero byte leaves the COBS decoder inside a frame); a reply is out from `start` or
    # `resend`/`resend_previous` until its 0x00 delimiter leaves (COBS puts no other zero on the wire).
    arriving = Signal()
    rx_in, tx_out = receiver.bytes_in, transmitter.bytes_out
    with m.If(receiver.frame_dropped):
        m.d.sync += arriving.eq(0)
    with m.If(rx_in.valid & rx_in.ready):
        m.d.sync += arriving.eq(rx_in.payload != 0)
    replies_out = Signal(range(4))
    delimiter_out = tx_out.valid & tx_out.ready & (tx_out.payload == 0)
    queued = transmitter.start | transmitter.resend | transmitter.resend_previous
    m.d.sync += replies_out.eq(replies_out + queued - delimiter_out)
    idle = Signal()
    m.d.comb += idle.eq(~arriving & ~receiver.frame_valid & ~tile.busy & (replies_out == 0))
    return receiver, transmitter, engine, idle


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

    Attributes
    ----------
    rx, tx : UART pins (8N1, idle high).
    idle : Out(1)
        Nothing to do until the next byte arrives (for simulators; a board leaves it open).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    idle: Out(1)

    def __init__(self, config, divisor, max_payload=1024, gap_bytes=64):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        _check_max_payload(max_payload)
        self.config = config
        self.divisor = divisor
        self.max_payload = max_payload
        self.gap_cycles = gap_bytes * 10 * divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTransmitter(self.divisor)
        receiver, transmitter, engine, idle = _framed_engine(m, self.config, self.max_payload,
                                                             self.gap_cycles)

        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx),
                     engine.uart_overrun.eq(uart_rx.overrun),
                     engine.uart_framing_error.eq(uart_rx.framing_error)]
        wiring.connect(m, uart_rx.bytes_out, receiver.bytes_in)
        wiring.connect(m, transmitter.bytes_out, uart_tx.bytes_in)
        # the UARTs hold no byte: the receiver passed its last one on, the transmitter is done
        m.d.comb += self.idle.eq(idle & ~uart_rx.bytes_out.valid & uart_tx.bytes_in.ready)
        return m


class ByteTop(wiring.Component):
    """The same device as :class:`Top` with its link as byte streams instead of UART pins.

    Parameters
    ----------
    config : TileConfig
    max_payload : int
        Largest request or reply payload in bytes; sets the two frame buffers.
    gap_cycles : int
        A frame with no byte for this many cycles is dropped. Bytes arrive when the host's
        socket delivers them, not at a line rate, so the default is long (about a third of a
        second of simulation); the host's resynchronising 0x00 drops a cut frame sooner.

    Attributes
    ----------
    bytes_in : In(stream.Signature(8))
        Wire bytes from the host (COBS frames, 0x00-delimited).
    bytes_out : Out(stream.Signature(8))
        Wire bytes to the host.
    idle : Out(1)
        Nothing to do until the next byte arrives.
    """

    bytes_in: In(stream.Signature(8))
    bytes_out: Out(stream.Signature(8))
    idle: Out(1)

    def __init__(self, config, max_payload=1024, gap_cycles=1 << 20):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        _check_max_payload(max_payload)
        if not isinstance(gap_cycles, int) or gap_cycles < 1:
            raise ValueError(f"gap_cycles must be a positive integer, not {gap_cycles!r}")
        self.config = config
        self.max_payload = max_payload
        self.gap_cycles = gap_cycles
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        # no UART: its error counters stay 0
        receiver, transmitter, _, idle = _framed_engine(m, self.config, self.max_payload, self.gap_cycles)
        wiring.connect(m, wiring.flipped(self.bytes_in), receiver.bytes_in)
        wiring.connect(m, transmitter.bytes_out, wiring.flipped(self.bytes_out))
        m.d.comb += self.idle.eq(idle)
        return m
