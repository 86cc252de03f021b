"""The device's command engine in Python: the protocol's reference, on top of the golden model.

It answers the bytes the gateware answers (``memxbar.hdl.engine``), which the RTL tests check
frame by frame, and it stands in for a device in the link's fault-injection tests. Only
``Counters.cycles`` differs: the reference has no clock and reports 0.
"""

import struct
import zlib

import numpy as np

from .model import mvm_codes
from .protocol import PROTOCOL_VERSION, TileConfig, memory_cells
from .protocol.frames import (
    MAGIC,
    Access,
    Command,
    Counters,
    FrameError,
    Hello,
    Region,
    Run,
    Status,
    decode_frame,
    encode_frame,
    struct_bytes,
    struct_fields,
)

__all__ = ["ReferenceDevice"]

ACCESS_BYTES = len(struct_bytes(Access))
RUN_BYTES = len(struct_bytes(Run))


class ReferenceDevice:
    """Bytes in, bytes out, like the pins of a board running the top with one tile.

    ``memory[lane, word] = (g_plus, g_minus)`` is the tile's block RAM, padding words included.
    """

    def __init__(self, config: TileConfig, max_payload=1024):
        self.config = config
        self.max_payload = max_payload
        self.memory = np.zeros((config.lanes, config.words_per_lane, 2), dtype=np.uint8)
        self.counters = dict.fromkeys(Counters.as_shape().members, 0)
        self._last = None  # (seq, command, reply frame) for replays
        self._partial = bytearray()

    def receive(self, data):
        """Feed bytes from the wire; returns the bytes the device sends back."""
        out = bytearray()
        for byte in bytes(data):
            if byte:
                self._partial.append(byte)
                continue
            frame, self._partial = bytes(self._partial), bytearray()
            if frame:
                out += self._frame(frame)
        return bytes(out)

    def levels(self):
        """``(g_plus, g_minus)`` shaped ``(cols, rows)``, as the MVM sees them."""
        g_plus, g_minus = memory_cells(self.config, self.memory)
        return g_plus, g_minus

    def _frame(self, encoded):
        try:
            fields, payload = decode_frame(encoded, check_length=False)
        except FrameError:
            self.counters["frames_dropped"] += 1
            return b""
        if len(payload) > self.max_payload:  # the gateware's buffer would overflow: dropped
            self.counters["frames_dropped"] += 1
            return b""
        self.counters["frames_ok"] += 1
        seq, command = fields["seq"], fields["command"]
        if self._last is not None and self._last[:2] == (seq, command):
            return self._last[2]
        status, reply = self._execute(fields, payload)
        frame = encode_frame(command & 0x7F, seq, reply, status=status, reply=True)
        self._last = (seq, command, frame)
        return frame

    def _execute(self, fields, payload):
        if fields["version"] != PROTOCOL_VERSION:
            return Status.VERSION, b""
        if fields["length"] != len(payload):
            return Status.LEN, b""
        command = fields["command"]
        if command == Command.HELLO.value:
            return Status.OK, self.hello()
        if command in (Command.WRITE.value, Command.READ.value, Command.CHECKSUM.value):
            return self._access(command, payload)
        if command == Command.RUN.value:
            return self._run(payload)
        if command == Command.COUNTERS.value:
            return Status.OK, struct_bytes(Counters, **self.counters)
        if command == Command.RESET.value:
            self.counters = dict.fromkeys(self.counters, 0)
            return Status.OK, b""
        return Status.UNKNOWN_CMD, b""

    def hello(self):
        cfg = self.config
        return struct_bytes(
            Hello, magic=MAGIC, protocol=PROTOCOL_VERSION, build_id=cfg.build_id, rows=cfg.rows,
            cols=cfg.cols, lanes=cfg.lanes, tiles=1, g_bits=cfg.g_bits, dac_bits=cfg.dac_bits,
            adc_bits=cfg.adc_bits, adc_shift=cfg.adc_shift, acc_width=cfg.acc_width,
            max_payload=self.max_payload)

    def _access(self, command, payload):
        cfg = self.config
        if len(payload) < ACCESS_BYTES:
            return Status.LEN, b""
        a = struct_fields(Access, payload)
        words = cfg.words_per_lane
        if not (a["region"] == Region.LEVELS.value and a["tile"] == 0 and a["lane"] < cfg.lanes
                and a["word"] <= words and a["count"] <= words - a["word"]):
            return Status.RANGE, b""
        span = slice(a["word"], a["word"] + a["count"])
        data = payload[ACCESS_BYTES:]
        if command == Command.WRITE.value:
            if len(payload) != ACCESS_BYTES + 2 * a["count"]:
                return Status.LEN, b""
            if any(byte >> cfg.g_bits for byte in data):
                return Status.RANGE, b""
            self.memory[a["lane"], span] = np.frombuffer(data, dtype=np.uint8).reshape(-1, 2)
            self.counters["cell_writes"] += a["count"]
            return Status.OK, b""
        if len(payload) != ACCESS_BYTES:
            return Status.LEN, b""
        if command == Command.READ.value and 2 * a["count"] > self.max_payload:
            return Status.LEN, b""
        cells = self.memory[a["lane"], span].tobytes()
        if command == Command.READ.value:
            return Status.OK, cells
        return Status.OK, struct.pack("<I", zlib.crc32(cells))

    def _run(self, payload):
        cfg = self.config
        if len(payload) < RUN_BYTES:
            return Status.LEN, b""
        r = struct_fields(Run, payload)
        if r["tile"] != 0:
            return Status.RANGE, b""
        batch = r["batch"]
        if (batch == 0 or len(payload) != RUN_BYTES + batch * cfg.rows
                or batch * 2 * cfg.cols > self.max_payload):
            return Status.LEN, b""
        raw = np.frombuffer(payload[RUN_BYTES:], dtype=np.uint8).astype(np.int64)
        # the DAC takes the low dac_bits of each byte as two's complement
        half = 1 << (cfg.dac_bits - 1)
        x = ((raw + half) % (2 * half) - half).reshape(batch, cfg.rows)
        codes = mvm_codes(cfg, *self.levels(), x)
        self.counters["mvms"] += batch
        self.counters["macs"] += batch * cfg.rows * cfg.cols
        self.counters["adc_conversions"] += batch * cfg.cols
        return Status.OK, codes.astype("<i2").tobytes()
