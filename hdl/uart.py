"""8N1 UART receiver and transmitter with byte streams.

Written here because amaranth-stdio, whose ``AsyncSerial`` would serve, is not published on
PyPI (the name holds a placeholder), and a dependency on a git checkout cannot be installed
by CI from the package registries.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter"]


def _check_divisor(divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        raise ValueError(f"divisor (clock cycles per bit) must be an integer >= 4, not {divisor!r}")


class UARTReceiver(wiring.Component):
    """Receives 8N1 frames on ``rx`` and emits their bytes on ``bytes_out``.

    The start bit is confirmed at its middle, then every bit is sampled at its middle, which
    tolerates a baud mismatch of about 4% either way. A low stop bit is a framing error: the
    byte is dropped, ``framing_error`` pulses, and reception resumes after the line idles high.
    A byte arriving while the previous one still waits pulses ``overrun`` and is dropped.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.
    """

    rx: In(1, init=1)
    bytes_out: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor))
        bit = Signal(range(8))
        shift = Signal(8)

        with m.If(self.bytes_out.ready):
            m.d.sync += self.bytes_out.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]

        with m.FSM():
            with m.State("IDLE"), m.If(~rx):
                m.d.sync += timer.eq(self.divisor // 2 - 1)
                m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)),  # LSB first
                                 timer.eq(self.divisor - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(self.bytes_out.valid & ~self.bytes_out.ready):
                            m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.bytes_out.payload.eq(shift),
                                         self.bytes_out.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"), m.If(rx):
                m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """Sends the bytes of ``bytes_in`` as 8N1 frames on ``tx``, back to back.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.
    """

    bytes_in: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shift = Signal(10, init=0x3FF)  # stop bit, 8 data bits LSB first, start bit
        remaining = Signal(range(11))

        m.d.comb += self.bytes_in.ready.eq(remaining == 0)
        with m.If(self.bytes_in.valid & self.bytes_in.ready):
            m.d.sync += [shift.eq((1 << 9) | (self.bytes_in.payload << 1)), remaining.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(remaining != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [shift.eq((1 << 9) | (shift >> 1)), remaining.eq(remaining - 1),
                             timer.eq(self.divisor - 1)]
        m.d.comb += self.tx.eq(shift[0])
        return m
