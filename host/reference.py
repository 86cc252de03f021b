"""The device's command engine in Python: the protocol's reference, on top of the golden model.

It answers the bytes the gateware answers (``memxbar.hdl.engine``), which the RTL tests check
frame by frame, and it stands in for a device in the link's fault-injection tests. Only
``Counters.clock`` differs: the reference has no clock and reports 0.
"""

import struct
import zlib

import numpy as np

from .model import TileModel
from .protocol import PROTOCOL_VERSION, TileConfig, Window, memory_cells
from .protocol.frames import (
    Access,
    Command,
    Config,
    Counters,
    FrameError,
    Hello,
    Region,
    Run,
    Status,
    decode_frame,
    encode_frame,
    hello_fields,
    next_epoch,
    struct_bytes,
    struct_fields,
)

__all__ = ["ReferenceDevice"]

from .protocol.physics import (
    NU_CODES,
    TABLE_BITS,
    DriftTables,
    EngineOp,
    ProgramTables,
    ReadNoise,
    Table,
    ideal_tables,
)

ACCESS_BYTES = len(struct_bytes(Access))
RUN_BYTES = len(struct_bytes(Run))
CONFIG_BYTES = len(struct_bytes(Config))


class ReferenceDevice:
    """Bytes in, bytes out, like the pins of a board running the top with one tile.

    ``memory[lane, word] = (g_plus, g_minus)`` is the tile's block RAM, padding words included.
    """

    def __init__(self, config: TileConfig, max_payload=1024):
        self.config = config
        self.max_payload = max_payload
        self.model = TileModel(config)
        program, drift = ideal_tables(config)  # the gateware's tables at power-up
        self.tables = {Table.LEVEL: list(program.level), Table.PROG_SIGMA: list(program.prog_sigma),
                       Table.NU_MEAN: list(program.nu_mean), Table.NU_SIGMA: list(program.nu_sigma),
                       Table.DRIFT: list(drift.drift), Table.READ_SIGMA: list(drift.read_sigma)}
        self.counters = dict.fromkeys(Counters.as_shape().members, 0)
        self.epoch = 0  # power-up: unclaimed
        self._replies = []  # the last two (seq, command, reply frame), oldest first, for replays
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

    @property
    def memory(self):
        """The tile's block RAM as ``(lanes, words, 2)`` uint8 levels, padding words included."""
        return np.moveaxis(self.model.g_now, 0, -1).astype(np.uint8)

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
        for cached in self._replies:
            if cached[:2] == (seq, command):
                return cached[2]
        status, reply = self._execute(fields, payload)
        frame = encode_frame(command & 0x7F, seq, reply, status=status, reply=True, epoch=self.epoch)
        self._replies = [*self._replies[-1:], (seq, command, frame)]
        return frame

    def _execute(self, fields, payload):
        if fields["version"] != PROTOCOL_VERSION:
            return Status.VERSION, b""
        if fields["length"] != len(payload):
            return Status.LEN, b""
        command = fields["command"]
        if command == Command.HELLO.value:
            if len(payload) not in (0, 2):
                return Status.LEN, b""
            if len(payload) == 2:  # a claim: this host's view of the device starts here
                self.epoch = int.from_bytes(payload, "little")
            return Status.OK, self.hello()
        if fields["epoch"] != self.epoch:
            return Status.STATE, b""
        if command in (Command.WRITE.value, Command.READ.value, Command.CHECKSUM.value):
            return self._access(command, payload)
        if command == Command.RUN.value:
            return self._run(payload)
        if command == Command.CONFIG.value:
            return self._config(payload)
        if command == Command.COUNTERS.value:
            for name in ("write_pulses", "verify_reads"):
                self.counters[name] = self.model.counters[name]
            return Status.OK, struct_bytes(Counters, **self.counters)
        if command == Command.RESET.value:
            self.counters = dict.fromkeys(self.counters, 0)
            self.model.counters = dict.fromkeys(self.model.counters, 0)
            return Status.OK, b""
        return Status.UNKNOWN_CMD, b""

    def hello(self):
        return struct_bytes(Hello, **hello_fields(self.config, self.max_payload))

    def _access(self, command, payload):
        cfg = self.config
        if len(payload) < ACCESS_BYTES:
            return Status.LEN, b""
        a = struct_fields(Access, payload)
        region, lane, word, count = a["region"], a["lane"], a["word"], a["count"]
        engine_write = command == Command.WRITE.value and cfg.physics
        if region == Region.TABLE.value and engine_write:
            return self._write_table(lane, word, count, payload)
        if region == Region.STUCK.value and engine_write:
            return self._write_stuck(a, payload)
        words = cfg.words_per_lane
        writable = (Region.LEVELS.value, Region.TARGETS.value) if cfg.physics else (Region.LEVELS.value,)
        if not ((region == Region.LEVELS.value or (command == Command.WRITE.value and region in writable))
                and self._cells_in_range(a)):
            return Status.RANGE, b""
        cells = lane * words + np.arange(word, word + count)
        data = payload[ACCESS_BYTES:]
        if command == Command.WRITE.value:
            if len(payload) != ACCESS_BYTES + 2 * count:
                return Status.LEN, b""
            if any(byte >> cfg.g_bits for byte in data):
                return Status.RANGE, b""
            pairs = np.frombuffer(data, dtype=np.uint8).reshape(-1, 2).T.astype(np.int64)
            if region == Region.LEVELS.value:
                self.model.write_levels(cells, pairs)
            else:
                self.model.program_cells(cells, pairs, a["index"])
            self.counters["cell_writes"] += count
            return Status.OK, b""
        if len(payload) != ACCESS_BYTES:
            return Status.LEN, b""
        if command == Command.READ.value and 2 * count > self.max_payload:
            return Status.LEN, b""
        cells = self.memory[lane, word:word + count].tobytes()
        if command == Command.READ.value:
            return Status.OK, cells
        return Status.OK, struct.pack("<I", zlib.crc32(cells))

    def _write_table(self, table, first, count, payload):
        if not (table < len(Table) and first <= self._table_depth(table)
                and count <= self._table_depth(table) - first):
            return Status.RANGE, b""
        if len(payload) != ACCESS_BYTES + 3 * count:
            return Status.LEN, b""
        raw = np.frombuffer(payload[ACCESS_BYTES:], dtype=np.uint8).reshape(-1, 3).astype(np.int64)
        values = raw[:, 0] | raw[:, 1] << 8 | raw[:, 2] << 16
        if (values >> TABLE_BITS[Table(table)]).any():
            return Status.RANGE, b""
        self.tables[Table(table)][first:first + count] = values.tolist()
        return Status.OK, b""

    def _cells_in_range(self, a):
        """Tile 0, an existing lane, and a word span inside it (no ``word + count`` overflow)."""
        words = self.config.words_per_lane
        return (a["tile"] == 0 and a["lane"] < self.config.lanes and a["word"] <= words
                and a["count"] <= words - a["word"])

    def _write_stuck(self, a, payload):
        words = self.config.words_per_lane
        lane, word, count = a["lane"], a["word"], a["count"]
        if not self._cells_in_range(a):
            return Status.RANGE, b""
        if len(payload) != ACCESS_BYTES + count:
            return Status.LEN, b""
        codes = np.frombuffer(payload[ACCESS_BYTES:], dtype=np.uint8).astype(np.int64)
        pair = np.stack([codes & 3, (codes >> 2) & 3])
        if (pair == 3).any() or (codes >> 4).any():
            return Status.RANGE, b""
        self.model.set_stuck(lane * words + np.arange(word, word + count), pair)
        return Status.OK, b""

    def _table_depth(self, table):
        return NU_CODES if table == Table.DRIFT.value else 1 << self.config.g_bits

    def _config(self, payload):
        if not self.config.physics:
            return Status.UNKNOWN_CMD, b""
        if len(payload) != CONFIG_BYTES:
            return Status.LEN, b""
        c = struct_fields(Config, payload)
        p = c["params"]
        if (c["tile"] != 0 or c["op"] > 1
                or (p.read_noise == ReadNoise.PER_READ.value and not self.config.per_read_noise)):
            return Status.RANGE, b""
        t = self.tables
        program = ProgramTables(level=tuple(t[Table.LEVEL]), prog_sigma=tuple(t[Table.PROG_SIGMA]),
                                nu_mean=tuple(t[Table.NU_MEAN]), nu_sigma=tuple(t[Table.NU_SIGMA]),
                                p_on=p.p_on, p_off=p.p_off, g_on=p.g_on, verify_tol=p.verify_tol,
                                verify_max=p.verify_max)
        drift = DriftTables(drift=tuple(t[Table.DRIFT]), read_sigma=tuple(t[Table.READ_SIGMA]),
                            var_shift=p.var_shift, out_var=p.out_var)
        if c["op"] == EngineOp.CONFIGURE.value:
            self.model.configure(p.seed, ReadNoise(p.read_noise), program, drift)
            self.epoch = next_epoch(self.epoch)
        else:  # DRIFT takes the drift scalars only: seed, mode and programming stay
            self.model.drift(drift, c["index"])
        self.model.mvm_noise = bool(p.mvm_noise)  # as the host sent it, like the gateware
        return Status.OK, b""

    def _run(self, payload):
        cfg = self.config
        if len(payload) < RUN_BYTES:
            return Status.LEN, b""
        r = struct_fields(Run, payload)
        window = Window(r["row0"], r["rows"], r["col0"], r["cols"])
        if r["tile"] != 0:
            return Status.RANGE, b""
        try:
            window.check(cfg)
        except ValueError:
            return Status.RANGE, b""
        batch = r["batch"]
        if (batch == 0 or len(payload) != RUN_BYTES + batch * window.rows
                or batch * 2 * window.cols > self.max_payload):
            return Status.LEN, b""
        x = np.frombuffer(payload[RUN_BYTES:], dtype=np.int8).astype(np.int64).reshape(batch, window.rows)
        if x.size and np.abs(x).max() > cfg.x_max:  # the DAC's range, checked before any effect
            return Status.RANGE, b""
        codes = window.outputs(self.model.run_codes(window.pad(cfg, x), r["index"]))
        self.counters["mvms"] += batch
        return Status.OK, codes.astype("<i2").tobytes()
