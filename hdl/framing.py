"""Link framing in gateware: COBS decode + CRC check into a frame buffer, and the reverse.

Both ends keep the whole frame in block RAM: a command executes only after its CRC has been
checked, and a reply's COBS code bytes need to look up to 254 bytes ahead. The frame layout
is :mod:`memxbar.protocol.frames`; CRC-32/ISO-HDLC comes from ``amaranth.lib.crc``.
"""

from amaranth import Array, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.crc.catalog import CRC32_ISO_HDLC
from amaranth.lib.wiring import In, Out

from ..protocol.frames import HEADER_BYTES

__all__ = ["FrameReceiver", "FrameTransmitter"]

CRC_BYTES = 4
MIN_FRAME = HEADER_BYTES + CRC_BYTES
COBS_MAX_BLOCK = 254


class FrameReceiver(wiring.Component):
    """COBS-decodes ``bytes_in`` into one of two frame buffers and checks the trailing CRC.

    A frame whose CRC matches, that is at least header + CRC long and that fits its buffer is
    handed to the consumer: ``frame_valid`` with ``frame_length`` (header and payload, CRC
    excluded) until the consumer pulses ``frame_release``. Two buffers let the next frame
    arrive while the consumer works on one; ``bytes_in`` is not ready only when both hold
    frames. The consumer reads the oldest frame through ``read_addr``; ``read_data`` follows one
    cycle later (block RAM). Anything else up to the next ``0x00`` is dropped and pulses
    ``frame_dropped``; so is a frame cut by a gap of ``gap_cycles`` without a byte.

    Parameters
    ----------
    depth : int
        Bytes of each buffer: the largest header + payload + CRC accepted.
    gap_cycles : int
        Inter-byte timeout inside a frame.
    """

    def __init__(self, depth, gap_cycles):
        self.depth = depth
        self.gap_cycles = gap_cycles
        super().__init__({
            "bytes_in": In(stream.Signature(8)),
            "frame_valid": Out(1),
            "frame_length": Out(range(depth + 1)),
            "frame_release": In(1),
            "frame_dropped": Out(1),
            "read_addr": In(range(depth)),
            "read_data": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = memory.Memory(shape=8, depth=2 * self.depth, init=[])
        write, read = buffer.write_port(), buffer.read_port()
        m.submodules.crc = crc = CRC32_ISO_HDLC().create()

        full = Signal(2)  # buffer b holds a checked frame
        full_set, full_clr = Signal(2), Signal(2)
        m.d.sync += full.eq((full & ~full_clr) | full_set)
        lengths = Array(Signal(range(self.depth + 1), name=f"length{b}") for b in range(2))
        filling = Signal()  # the buffer being received into
        oldest = Signal()  # the buffer handed to the consumer
        m.d.comb += [
            read.addr.eq(Mux(oldest, self.depth, 0) + self.read_addr),
            self.read_data.eq(read.data),
            self.frame_valid.eq(full.bit_select(oldest, 1)),
            self.frame_length.eq(lengths[oldest]),
        ]
        with m.If(self.frame_release):
            m.d.comb += full_clr.eq(Mux(oldest, 0b10, 0b01))
            m.d.sync += oldest.eq(~oldest)

        count = Signal(range(self.depth + 1))
        code_left = Signal(8)  # data bytes left in the current COBS block
        pending_zero = Signal()  # the block ended below 254 bytes: a 0x00 follows unless the frame ends
        overflow = Signal()
        gap = Signal(range(self.gap_cycles + 1))
        in_frame = Signal()
        m.d.comb += in_frame.eq((count != 0) | (code_left != 0) | pending_zero)

        emit = Signal()
        emitted = Signal(8)
        m.d.comb += [
            write.addr.eq(Mux(filling, self.depth, 0) + count), write.data.eq(emitted),
            write.en.eq(emit & (count < self.depth)),
            crc.data.eq(emitted), crc.valid.eq(emit & (count < self.depth)),
        ]
        with m.If(emit):
            with m.If(count < self.depth):
                m.d.sync += count.eq(count + 1)
            with m.Else():
                m.d.sync += overflow.eq(1)

        def restart():
            m.d.comb += crc.start.eq(1)
            m.d.sync += [count.eq(0), code_left.eq(0), pending_zero.eq(0), overflow.eq(0)]

        m.d.sync += self.frame_dropped.eq(0)
        m.d.comb += self.bytes_in.ready.eq(~full.bit_select(filling, 1))
        byte = self.bytes_in.payload
        with m.If(self.bytes_in.valid & self.bytes_in.ready):
            m.d.sync += gap.eq(0)
            with m.If(byte == 0):
                good = (count >= MIN_FRAME) & (code_left == 0) & ~overflow & crc.match_detected
                with m.If(good):
                    m.d.comb += full_set.eq(Mux(filling, 0b10, 0b01))
                    m.d.sync += [lengths[filling].eq(count - CRC_BYTES), filling.eq(~filling)]
                with m.Elif(in_frame):
                    m.d.sync += self.frame_dropped.eq(1)
                restart()
            with m.Elif(code_left == 0):
                m.d.comb += [emit.eq(pending_zero), emitted.eq(0)]
                m.d.sync += [code_left.eq(byte - 1), pending_zero.eq(byte != 0xFF)]
            with m.Else():
                m.d.comb += [emit.eq(1), emitted.eq(byte)]
                m.d.sync += code_left.eq(code_left - 1)
        with m.Elif(in_frame):
            m.d.sync += gap.eq(gap + 1)
            with m.If(gap == self.gap_cycles):
                m.d.sync += [gap.eq(0), self.frame_dropped.eq(1)]
                restart()
        return m


class FrameTransmitter(wiring.Component):
    """Sends replies from two buffers: CRC appended, COBS-encoded, ``0x00`` after each.

    The producer writes a reply through ``write_*`` into the buffer being filled, then pulses
    ``start`` with its ``length``; the next reply goes into the other buffer while this one is
    sent. ``resend`` sends the last started reply again (a replay), ``resend_previous`` the one
    started before it, which the buffer to fill next still holds. ``busy`` is high while the
    buffer to fill next is still in use or a send is queued: wait for it to fall before writing.

    Parameters
    ----------
    depth : int
        Bytes of each buffer: the largest header + payload sent.
    """

    def __init__(self, depth):
        self.depth = depth
        super().__init__({
            "write_addr": In(range(depth)),
            "write_data": In(8),
            "write_en": In(1),
            "start": In(1),
            "resend": In(1),
            "resend_previous": In(1),
            "length": In(range(depth + 1)),
            "busy": Out(1),
            "bytes_out": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = memory.Memory(shape=8, depth=2 * self.depth, init=[])
        write, read = buffer.write_port(), buffer.read_port()
        m.submodules.crc = crc = CRC32_ISO_HDLC().create()

        filling = Signal()  # buffer the producer writes
        lengths = Array(Signal(range(self.depth + 1), name=f"length{b}") for b in range(2))
        queued, queued_bank = Signal(), Signal()  # a buffer waiting to be sent
        sending, sending_bank = Signal(), Signal()
        m.d.comb += [write.addr.eq(Mux(filling, self.depth, 0) + self.write_addr),
                     write.data.eq(self.write_data), write.en.eq(self.write_en)]
        with m.If(self.start):
            m.d.sync += [lengths[filling].eq(self.length), filling.eq(~filling), queued.eq(1),
                         queued_bank.eq(filling)]
        with m.Elif(self.resend):
            m.d.sync += [queued.eq(1), queued_bank.eq(~filling)]
        with m.Elif(self.resend_previous):
            m.d.sync += [queued.eq(1), queued_bank.eq(filling)]
        m.d.comb += self.busy.eq(queued | (sending & (sending_bank == filling)))

        length = Signal(range(self.depth + 1))
        total = Signal(range(self.depth + CRC_BYTES + 1))  # bytes to encode: frame plus CRC
        # Two passes over each COBS block with the buffer's one read port: SCAN finds where it
        # ends (a zero, 254 bytes or the end), then CODE and DATA send its code byte and its
        # bytes. Both passes fetch a byte every cycle: `pending` says the read port holds the
        # byte fetched last (it keeps it while `fetch` is low), so a byte costs two cycles and a
        # block about three more. The CRC is fed as SCAN consumes the frame's bytes in order,
        # so it is complete before SCAN reaches the CRC bytes that follow them.
        index = Signal(range(self.depth + CRC_BYTES + 1))  # the next byte to fetch
        block_start = Signal.like(index)
        block_len = Signal(range(COBS_MAX_BLOCK + 1))
        ended_on_zero = Signal()
        fetch = Signal()
        pending = Signal()
        fetched_crc = Signal()
        fetched_crc_byte = Signal(2)
        m.d.comb += [read.addr.eq(Mux(sending_bank, self.depth, 0) + index), read.en.eq(fetch)]
        with m.If(fetch):
            m.d.sync += [fetched_crc.eq(index >= length), fetched_crc_byte.eq(index - length),
                         index.eq(index + 1)]
        crc_bytes = Array(crc.crc.word_select(i, 8) for i in range(CRC_BYTES))
        fetched = Mux(fetched_crc, crc_bytes[fetched_crc_byte], read.data)
        m.d.comb += crc.data.eq(read.data)

        out = self.bytes_out
        with m.If(out.ready):
            m.d.sync += out.valid.eq(0)

        def send(value):
            m.d.sync += [out.payload.eq(value), out.valid.eq(1)]

        can_send = ~out.valid | out.ready

        with m.FSM():
            with m.State("IDLE"), m.If(queued & ~self.start & ~self.resend & ~self.resend_previous):
                bank_length = lengths[queued_bank]
                m.d.comb += crc.start.eq(1)
                m.d.sync += [length.eq(bank_length), total.eq(bank_length + CRC_BYTES), index.eq(0),
                             block_start.eq(0), block_len.eq(0), pending.eq(0),
                             queued.eq(0), sending.eq(1), sending_bank.eq(queued_bank)]
                m.next = "SCAN"
            with m.State("SCAN"):
                # the byte fetched last cycle ends the block or joins it; the next is fetched
                # meanwhile (if the block ends, that fetch is simply repeated later)
                zero = pending & (fetched == 0)
                full = pending & (fetched != 0) & (block_len == COBS_MAX_BLOCK - 1)
                m.d.comb += [fetch.eq(index != total), crc.valid.eq(pending & ~fetched_crc)]
                m.d.sync += pending.eq(index != total)
                with m.If(pending & (fetched != 0)):
                    m.d.sync += block_len.eq(block_len + 1)
                with m.If(zero | full | (~pending & (index == total))):
                    m.d.sync += [ended_on_zero.eq(zero), pending.eq(0), index.eq(block_start)]
                    m.next = "CODE"
            with m.State("CODE"), m.If(can_send):
                send(block_len + 1)
                m.next = "DATA"
            with m.State("DATA"):
                block_end = block_start + block_len
                with m.If(pending & can_send):
                    send(fetched)
                free = ~pending | can_send  # the read port's byte is gone by the next cycle
                m.d.comb += fetch.eq(free & (index != block_end))
                m.d.sync += pending.eq(fetch | ~free)
                with m.If(free & (index == block_end)):
                    next_start = block_end + ended_on_zero
                    m.d.sync += [block_start.eq(next_start), index.eq(next_start), block_len.eq(0)]
                    # a block cut by a zero is always followed by another, possibly empty, block
                    with m.If(ended_on_zero | (next_start != total)):
                        m.next = "SCAN"
                    with m.Else():
                        m.next = "DELIMITER"
            with m.State("DELIMITER"), m.If(can_send):
                send(0)
                m.d.sync += sending.eq(0)
                m.next = "IDLE"
        return m
