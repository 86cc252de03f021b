"""Frames of the host <-> device link, defined once for the gateware and the host.

On the wire a frame is COBS-encoded and ends in one ``0x00`` delimiter::

    +---------+---------+---------+----------+--------------+-------------+------------------+
    | VER (1) | CMD (1) | SEQ (1) | STATUS(1)| LEN (u16 LE) | payload LEN | CRC-32 (u32 LE)  |
    +---------+---------+---------+----------+--------------+-------------+------------------+

The CRC is CRC-32/ISO-HDLC (``zlib.crc32``; ``amaranth.lib.crc.catalog.CRC32_ISO_HDLC``)
over header and payload. A reply carries ``CMD | 0x80`` and echoes ``SEQ``.
"""

import struct
import zlib

from amaranth.lib import data, enum
from cobs import cobs

from .geometry import PROTOCOL_VERSION

__all__ = ["HEADER_BYTES", "REPLY", "Command", "FrameError", "Header", "Status",
           "decode_frame", "encode_frame"]

#: Set in CMD of every reply.
REPLY = 0x80
#: CRC-32/ISO-HDLC of b"123456789": both sides pin this check value in their tests.
CRC_CHECK = 0xCBF43926


class Command(enum.Enum, shape=8):
    HELLO = 0x01
    WRITE = 0x02
    READ = 0x03
    RUN = 0x04
    CONFIG = 0x05
    COUNTERS = 0x06
    CHECKSUM = 0x07
    RESET = 0x08


class Status(enum.Enum, shape=8):
    OK = 0x00
    VERSION = 0x01
    UNKNOWN_CMD = 0x02
    LEN = 0x03
    RANGE = 0x04
    BUSY = 0x05
    STATE = 0x06
    CRC = 0x07
    OVERFLOW = 0x08


class Header(data.Struct):
    """The first six bytes of a frame; fields are little-endian, in wire order from bit 0."""

    version: 8
    command: 8
    seq: 8
    status: 8
    length: 16


HEADER_BYTES = Header.as_shape().size // 8
_HEADER = struct.Struct("<BBBBH")
assert _HEADER.size == HEADER_BYTES


class FrameError(ValueError):
    """Bytes between two delimiters that are not a valid frame; the reason says why."""


def encode_frame(command, seq, payload=b"", status=Status.OK, version=PROTOCOL_VERSION):
    """Header, payload and CRC, COBS-encoded, with the trailing ``0x00`` delimiter."""
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"seq must be in [0, 255], not {seq!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the 65535 a frame can carry")
    body = (_HEADER.pack(version, Command(command).value, seq, Status(status).value, len(payload))
            + bytes(payload))
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


def decode_frame(encoded):
    """Undo :func:`encode_frame` for the bytes of one frame (without the delimiter).

    Returns ``(header fields as a dict, payload)``; raises :class:`FrameError` otherwise.
    """
    try:
        raw = cobs.decode(bytes(encoded))
    except cobs.DecodeError as error:
        raise FrameError(f"bad COBS encoding: {error}") from None
    if len(raw) < HEADER_BYTES + 4:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than header and CRC")
    body, (crc,) = raw[:-4], struct.unpack("<I", raw[-4:])
    if zlib.crc32(body) != crc:
        raise FrameError("CRC mismatch")
    version, command, seq, status, length = _HEADER.unpack(body[:HEADER_BYTES])
    payload = body[HEADER_BYTES:]
    if length != len(payload):
        raise FrameError(f"LEN says {length} bytes, the frame carries {len(payload)}")
    return {"version": version, "command": command, "seq": seq, "status": status,
            "length": length}, payload
