"""Frame layout, COBS and CRC of the link: golden vectors pinned on the host and the gateware side."""

import zlib

import pytest
from amaranth.lib.crc.catalog import CRC32_ISO_HDLC
from amaranth.sim import Simulator
from cobs import cobs
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from memxbar.protocol.frames import (
    CRC_CHECK,
    HEADER_BYTES,
    Command,
    FrameError,
    Header,
    Status,
    decode_frame,
    encode_frame,
    next_epoch,
)

# Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999): the examples of the paper's
# description as reproduced on Wikipedia's COBS page, without the 0x00 delimiter.
COBS_VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
]


def test_crc_check_value_on_host_and_in_the_gateware_model():
    assert zlib.crc32(b"123456789") == CRC_CHECK
    assert CRC32_ISO_HDLC().compute(b"123456789") == CRC_CHECK


def test_gateware_crc_processor_reaches_the_check_value():
    dut = CRC32_ISO_HDLC().create()
    result = []

    async def testbench(ctx):
        ctx.set(dut.start, 1)
        for byte in b"123456789":
            ctx.set(dut.data, byte)
            ctx.set(dut.valid, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
        ctx.set(dut.valid, 0)
        result.append(ctx.get(dut.crc))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert result == [CRC_CHECK]


@pytest.mark.parametrize(("raw", "encoded"), COBS_VECTORS)
def test_cobs_vectors(raw, encoded):
    assert cobs.encode(raw) == encoded
    assert cobs.decode(encoded) == raw


def test_header_layout_is_eight_little_endian_bytes():
    assert HEADER_BYTES == 8
    header = Header.const({"version": 1, "command": Command.RUN.value, "seq": 0x5A,
                           "status": Status.RANGE.value, "epoch": 0xBEEF, "length": 0x1234})
    assert header.as_value().value.to_bytes(8, "little") == bytes([1, 0x04, 0x5A, 0x04, 0xEF, 0xBE,
                                                                   0x34, 0x12])
    frame = encode_frame(Command.RUN, 0x5A, b"\x00" * 0x1234, status=Status.RANGE, version=1, epoch=0xBEEF)
    fields, _ = decode_frame(frame[:-1])
    assert fields == {"version": 1, "command": 0x04, "seq": 0x5A, "status": 0x04, "epoch": 0xBEEF,
                      "length": 0x1234}


def test_epochs_skip_zero():
    assert [next_epoch(e) for e in (0, 1, 0xFFFE, 0xFFFF)] == [1, 2, 0xFFFF, 1]


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.integers(0, 255), st.sampled_from(list(Command)))
@example(b"", 0, Command.HELLO)
@example(b"\x00" * 0xFFFF, 255, Command.WRITE)
@example(b"\xff" * 0xFFFF, 1, Command.READ)
def test_frames_round_trip_and_contain_one_delimiter(payload, seq, command):
    frame = encode_frame(command, seq, payload)
    assert frame.index(b"\x00") == len(frame) - 1
    fields, decoded = decode_frame(frame[:-1])
    assert decoded == payload
    assert (fields["command"], fields["seq"], fields["length"]) == (command.value, seq, len(payload))


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64), st.data())
def test_any_single_byte_corruption_is_refused(payload, draw):
    frame = bytearray(encode_frame(Command.WRITE, 7, payload)[:-1])
    index = draw.draw(st.integers(0, len(frame) - 1))
    frame[index] ^= draw.draw(st.integers(1, 255))
    with pytest.raises(FrameError):
        decode_frame(frame)


@pytest.mark.parametrize(("seq", "payload", "message"), [
    (256, b"", r"seq must be in \[0, 255\], not 256"),
    (0, bytes(0x10000), r"payload of 65536 bytes exceeds the 65535"),
])
def test_encode_refuses_what_a_frame_cannot_carry(seq, payload, message):
    with pytest.raises(ValueError, match=message):
        encode_frame(Command.WRITE, seq, payload)
