"""Frames of the host <-> device link, defined once for the gateware and the host.

On the wire a frame is COBS-encoded and ends in one ``0x00`` delimiter::

    +---------+---------+---------+----------+----------------+--------------+-------------+-----------------+
    | VER (1) | CMD (1) | SEQ (1) | STATUS(1)| EPOCH (u16 LE) | LEN (u16 LE) | payload LEN | CRC-32 (u32 LE) |
    +---------+---------+---------+----------+----------------+--------------+-------------+-----------------+

The CRC is CRC-32/ISO-HDLC (``zlib.crc32``; ``amaranth.lib.crc.catalog.CRC32_ISO_HDLC``)
over header and payload. A reply carries ``CMD | 0x80`` and echoes ``SEQ``.

The device epoch names the device state a host is working with. It is 0 at power-up and
after a reset or a reflash; a HELLO whose payload is a non-zero ``u16`` claims the device
with that epoch, and CONFIG CONFIGURE moves it to the next non-zero value. Every reply
carries the device's epoch; every request but HELLO carries the host's, and one that
differs is refused with STATE before any effect: a device that was reset, reflashed,
configured or claimed by another client behind the host's back says so.

The host owns the noise indices (see :mod:`memxbar.protocol.physics`): RUN carries the read
index of its first MVM, WRITE TARGETS the cell-write index of its first cell, CONFIG DRIFT
the drift-call index. A request executed twice draws the same noise; the device keeps the
replies of the last two requests, so a retry of either is answered from them without
executing again, and counters count each request once.
"""

import struct
import zlib

from amaranth.lib import data, enum
from cobs import cobs

from .geometry import PROTOCOL_VERSION
from .physics import Params, table_entries

__all__ = [
    "HEADER_BYTES",
    "MAGIC",
    "REPLY",
    "Access",
    "Command",
    "Config",
    "Counters",
    "FrameError",
    "Header",
    "Hello",
    "Region",
    "Run",
    "Status",
    "config_of_hello",
    "decode_frame",
    "derived_counters",
    "encode_frame",
    "hello_fields",
    "next_epoch",
    "struct_bytes",
    "struct_fields",
    "table_payloads",
]

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


class Region(enum.Enum, shape=8):
    """Memory regions WRITE/READ/CHECKSUM address.

    LEVELS: the conductance pairs MVMs use, 2 bytes (g_plus, g_minus) per cell, lane-major
    words; WRITE sets them as they are (no device physics). TARGETS (WRITE only): 2 bytes
    (t_plus, t_minus) per cell, programmed through the device engine. TABLE (WRITE only):
    ``lane`` names a :class:`~memxbar.protocol.physics.Table`, ``word`` its first entry,
    3 bytes (little-endian) per entry. STUCK (WRITE only, after CONFIG CONFIGURE): 1 byte per
    cell, bits 0-1 the stuck code of G+ and bits 2-3 of G- (0 healthy, 1 stuck on, 2 stuck
    off); the cell is erased with these codes.
    """

    LEVELS = 0x00
    TARGETS = 0x01
    TABLE = 0x02
    STUCK = 0x03


class Header(data.Struct):
    """The first eight bytes of a frame; fields are little-endian, in wire order from bit 0."""

    version: 8
    command: 8
    seq: 8
    status: 8
    epoch: 16
    length: 16


class Access(data.Struct):
    """Payload start of WRITE, READ and CHECKSUM: ``count`` words of one lane from ``word`` on.

    WRITE follows it with ``count`` cells of 2 bytes; READ replies with them; CHECKSUM replies
    with the CRC-32 of what READ would return. Lanes and words are those of
    :func:`memxbar.protocol.cell_address`.
    """

    region: 8
    tile: 8
    lane: 16
    word: 16
    count: 16
    #: TARGETS: the cell-write noise index of the first cell (the PROGRAM domain's counter);
    #: the others ignore it.
    index: 32


class Run(data.Struct):
    """Payload start of RUN, followed by ``batch * rows`` input codes of one byte each.

    ``row0, rows, col0, cols`` is the :class:`~memxbar.protocol.Window` the MVMs run on (the
    whole array: ``0, config.rows, 0, config.cols``); inputs are the window's rows only. The
    reply carries ``batch * cols`` ADC codes, the window's columns, as little-endian int16.
    A window outside the array is RANGE; a length other than ``batch * rows`` or a reply
    longer than ``max_payload`` is LEN; an input byte outside ``+-x_max`` is RANGE.
    ``index`` is the read index of the first MVM (the READ domain's counter); MVM ``b`` of
    the batch draws the noise of read ``index + b``.
    """

    tile: 8
    batch: 16
    row0: 16
    rows: 16
    col0: 16
    cols: 16
    index: 32


class Config(data.Struct):
    """Payload of CONFIG: the device's scalars, then one engine operation over every cell.

    ``op`` is a :class:`~memxbar.protocol.physics.EngineOp` (CONFIGURE erases the array,
    takes every scalar of ``params`` and moves the epoch on; DRIFT moves the cells to the
    loaded drift tables with the frozen read noise of drift call ``index``, and takes only the
    drift scalars of ``params``: ``out_var``, ``var_shift``, ``mvm_noise``; the seed, the
    programming scalars and the read-noise mode stay those of CONFIGURE). The reply comes
    once the engine has finished.
    """

    tile: 8
    op: 8
    params: Params
    pad: 2
    index: 32


class Hello(data.Struct):
    """Payload of the HELLO reply: what the device is."""

    magic: 32
    protocol: 8
    build_id: 32
    rows: 16
    cols: 16
    lanes: 16
    tiles: 8
    g_bits: 8
    dac_bits: 8
    adc_bits: 8
    adc_shift: 8
    acc_width: 8
    max_payload: 16
    features: 8


#: Bits of ``Hello.features``: build options a host must know to use the device.
FEATURE_PER_READ_NOISE = 0x01
FEATURE_PHYSICS = 0x02

#: The TileConfig fields HELLO carries by name.
_HELLO_CONFIG = ("rows", "cols", "lanes", "g_bits", "dac_bits", "adc_bits", "adc_shift", "acc_width")


def hello_fields(config, max_payload):
    """The HELLO reply of a device built with ``config`` (gateware and reference device alike)."""
    return {"magic": MAGIC, "protocol": PROTOCOL_VERSION, "build_id": config.build_id, "tiles": 1,
            "max_payload": max_payload,
            "features": (FEATURE_PER_READ_NOISE if config.per_read_noise else 0)
                        | (FEATURE_PHYSICS if config.physics else 0),
            **{name: getattr(config, name) for name in _HELLO_CONFIG}}


def config_of_hello(hello):
    """The TileConfig a HELLO reply (its fields, as :func:`struct_fields` gives) describes."""
    from .geometry import TileConfig

    return TileConfig(per_read_noise=bool(hello["features"] & FEATURE_PER_READ_NOISE),
                      physics=bool(hello["features"] & FEATURE_PHYSICS),
                      **{name: hello[name] for name in _HELLO_CONFIG})


class Counters(data.Struct):
    """Payload of the COUNTERS reply; every count since power-up or RESET.

    ``clock`` counts clock cycles (device time; the reference device reports 0). The MAC-array
    cycles, MACs and ADC conversions are functions of ``mvms`` and the geometry
    (:func:`derived_counters`): the host computes them, the device does not count them.
    ``uart_overruns`` and ``uart_framing_errors`` count bytes the UART dropped.
    """

    clock: 48
    mvms: 48
    cell_writes: 48
    write_pulses: 48
    verify_reads: 48
    frames_ok: 32
    frames_dropped: 32
    uart_overruns: 16
    uart_framing_errors: 16


def derived_counters(config, mvms):
    """The event counts that follow from ``mvms`` full-array MVMs of a tile built with ``config``."""
    return {"cycles": mvms * config.rows * config.groups, "macs": mvms * config.rows * config.cols,
            "adc_conversions": mvms * config.cols}


#: First four bytes of every HELLO reply, b"MXB1".
MAGIC = int.from_bytes(b"MXB1", "little")


def struct_bytes(layout, **fields):
    """A ``lib.data.Struct`` constant as the little-endian bytes the link carries."""
    size = layout.as_shape().size // 8
    return layout.const(fields).as_value().value.to_bytes(size, "little")


def struct_fields(layout, raw):
    """The fields of a ``lib.data.Struct`` from the bytes the link carried."""
    size = layout.as_shape().size // 8
    if len(raw) < size:
        raise FrameError(f"{layout.__name__} needs {size} bytes, got {len(raw)}")
    view = data.Const(layout.as_shape(), int.from_bytes(raw[:size], "little"))
    return {name: view[name] for name, _ in layout.as_shape()}


HEADER_BYTES = Header.as_shape().size // 8
_HEADER = struct.Struct("<BBBBHH")
assert _HEADER.size == HEADER_BYTES


class FrameError(ValueError):
    """Bytes between two delimiters that are not a valid frame; the reason says why."""


def encode_frame(command, seq, payload=b"", status=Status.OK, version=PROTOCOL_VERSION, reply=False,
                 epoch=0):
    """Header, payload and CRC, COBS-encoded, with the trailing ``0x00`` delimiter.

    ``command`` is a :class:`Command` or a raw opcode (a device echoes unknown ones);
    ``reply`` sets the reply bit; ``epoch`` is the device epoch the sender holds.
    """
    opcode = command.value if isinstance(command, Command) else command
    if not isinstance(opcode, int) or not 0 <= opcode < REPLY:
        raise ValueError(f"command must be a Command or an opcode in [0, 127], not {command!r}")
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"seq must be in [0, 255], not {seq!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the 65535 a frame can carry")
    if not 0 <= epoch <= 0xFFFF:
        raise ValueError(f"epoch must be in [0, 65535], not {epoch!r}")
    body = (_HEADER.pack(version, opcode | (REPLY if reply else 0), seq, Status(status).value, epoch,
                         len(payload))
            + bytes(payload))
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


def decode_frame(encoded, check_length=True):
    """Undo :func:`encode_frame` for the bytes of one frame (without the delimiter).

    Returns ``(header fields as a dict, payload)``; raises :class:`FrameError` otherwise.
    A device passes ``check_length=False``: a LEN field that disagrees with the frame is
    answered with status LEN, not dropped.
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
    version, command, seq, status, epoch, length = _HEADER.unpack(body[:HEADER_BYTES])
    payload = body[HEADER_BYTES:]
    if check_length and length != len(payload):
        raise FrameError(f"LEN says {length} bytes, the frame carries {len(payload)}")
    return {"version": version, "command": command, "seq": seq, "status": status, "epoch": epoch,
            "length": length}, payload


def next_epoch(epoch):
    """The epoch after ``epoch`` (CONFIG CONFIGURE): 16 bits, never 0 (0 means unclaimed)."""
    return epoch % 0xFFFF + 1


def table_payloads(program, drift, max_payload, tile=0):
    """WRITE TABLE payloads carrying every entry of the given tables, each fitting max_payload."""
    per_frame = (max_payload - Access.as_shape().size // 8) // 3
    grouped = {}
    for table, index, value in table_entries(program, drift):
        grouped.setdefault(table, []).append((index, value))
    payloads = []
    for table, entries in grouped.items():
        for start in range(0, len(entries), per_frame):
            part = entries[start:start + per_frame]
            access = struct_bytes(Access, region=Region.TABLE.value, tile=tile, lane=table.value,
                                  word=part[0][0], count=len(part))
            payloads.append(access + b"".join(value.to_bytes(3, "little") for _, value in part))
    return payloads
