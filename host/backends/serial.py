"""A device behind a byte link: a board's UART, ``socket://`` to the simulator, any pyserial URL.

On connect the backend asks HELLO, checks the magic, the protocol version and that the build
id matches the configuration the device reports, then drives the tile with WRITE and RUN.
"""

import time

import numpy as np
import serial

from ..errors import LinkError, UnsupportedURL, VersionMismatch
from ..link import Link
from ..protocol import PROTOCOL_VERSION, lane_memory, memory_cells
from ..protocol.frames import (
    MAGIC,
    Access,
    Command,
    Config,
    Counters,
    Hello,
    Region,
    Run,
    config_of_hello,
    struct_bytes,
    struct_fields,
    table_payloads,
)
from ..protocol.physics import EngineOp, default_read_noise, ideal_tables, params_fields
from . import Backend

__all__ = ["SerialBackend"]

ACCESS_BYTES = len(struct_bytes(Access))
RUN_BYTES = len(struct_bytes(Run))


class SerialBackend(Backend):
    """Parameters: ``url`` for ``serial.serial_for_url``; ``baudrate``; ``timeout`` per reply in
    seconds; ``retries``; ``expect_build_id`` to insist on one build (``None``: any); ``port``
    an already open port instead of ``url`` and ``clock`` its time source (tests)."""

    name = "serial"

    def __init__(self, url, baudrate=3_000_000, timeout=1.0, retries=3, expect_build_id=None,
                 port=None, clock=time.monotonic):
        if port is None:
            try:
                port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout,
                                             write_timeout=timeout)
            except serial.SerialException as error:
                raise LinkError(f"cannot open {url!r}: {error}") from None
            except ValueError as error:  # pyserial's word for a URL scheme it does not know
                raise UnsupportedURL(f"cannot open {url!r}: {error}") from None
        self.link = Link(port, timeout=timeout, retries=retries, clock=clock)
        self._device = {}     # tile -> (seed, read_noise, ProgramTables) of the last configure
        self._mvm_noise = {}  # tile -> whether its MVMs draw noise
        try:
            self._connect(expect_build_id)
        except BaseException:
            self.link.close()
            raise

    def _connect(self, expect_build_id):
        hello = struct_fields(Hello, self.link.transact(Command.HELLO))
        if hello["magic"] != MAGIC:
            raise LinkError("the port answers, but not as a memxbar device (wrong HELLO magic)")
        if hello["protocol"] != PROTOCOL_VERSION:
            raise VersionMismatch(
                f"the device speaks protocol {hello['protocol']}, this memxbar speaks "
                f"{PROTOCOL_VERSION}: rebuild and reflash the device with this version "
                f"(memxbar build / memxbar flash), or install the matching memxbar")
        self.config = config_of_hello(hello)
        self.tiles = hello["tiles"]
        self.max_payload = hello["max_payload"]
        self.build_id = hello["build_id"]
        if self.build_id != self.config.build_id:
            raise VersionMismatch(
                f"the device's build id {self.build_id:08x} does not match the configuration it "
                f"reports ({self.config.build_id:08x} expected): it was built by another memxbar "
                f"version; rebuild and reflash it")
        if expect_build_id is not None and self.build_id != expect_build_id:
            raise VersionMismatch(f"the device runs build {self.build_id:08x}, not the expected "
                                  f"{expect_build_id:08x}: flash the bitstream you built")

    def program_levels(self, tile, g_plus, g_minus):
        # Programming draws noise keyed on the device's count of cell writes: one frame in
        # flight, so a retry is always of the last frame and the device replays, never
        # re-executes (its replay cache holds one reply).
        if not self.config.physics:  # an ideal build: levels are written as they are
            self.write_levels(tile, g_plus, g_minus)
            return
        memory = lane_memory(self.config, g_plus, g_minus)
        self.link.transact_many(self._lane_writes(tile, Region.TARGETS, memory), window=1)

    def write_levels(self, tile, g_plus, g_minus):
        """Write levels ``(cols, rows)`` directly (WRITE LEVELS: no physics, idempotent)."""
        memory = lane_memory(self.config, g_plus, g_minus)
        self.link.transact_many(self._lane_writes(tile, Region.LEVELS, memory))

    def checksums(self, tile):
        """The device's CRC-32 of each lane's levels (CHECKSUM), the end-to-end check of a write."""
        requests = [(Command.CHECKSUM, struct_bytes(Access, region=Region.LEVELS.value, tile=tile, lane=lane,
                                                     word=0, count=self.config.words_per_lane))
                    for lane in range(self.config.lanes)]
        return [int.from_bytes(reply, "little") for reply in self.link.transact_many(requests)]

    def configure(self, tile, seed, read_noise, program, drift, stuck):
        self._device[tile] = (seed, read_noise, program)
        self._load(tile, EngineOp.CONFIGURE, drift, tables_of_program=True)
        if stuck is not None:  # (2, lanes, words) codes, one byte per cell; idempotent
            codes = (stuck[0] | stuck[1] << 2).astype(np.uint8)
            self.link.transact_many(self._lane_writes(tile, Region.STUCK, codes[..., None]))

    def drift(self, tile, tables):
        self._load(tile, EngineOp.DRIFT, tables, tables_of_program=False)

    def _lane_writes(self, tile, region, memory):
        """WRITE requests carrying a lane-memory image ``(lanes, words, bytes per cell)``."""
        chunk = (self.max_payload - ACCESS_BYTES) // memory.shape[-1]
        writes = []
        for lane in range(self.config.lanes):
            for word in range(0, self.config.words_per_lane, chunk):
                cells = memory[lane, word:word + chunk]
                access = struct_bytes(Access, region=region.value, tile=tile, lane=lane, word=word,
                                      count=len(cells))
                writes.append((Command.WRITE, access + cells.tobytes()))
        return writes

    def _load(self, tile, op, drift, tables_of_program):
        """Tables by WRITE TABLE, then CONFIG with the scalars and ``op``.

        The scalars come from the tile's last configure (a perfect device before any).
        """
        seed, read_noise, program = self._device.get(
            tile, (0, default_read_noise(self.config), ideal_tables(self.config)[0]))
        payloads = table_payloads(program if tables_of_program else None, drift, self.max_payload, tile)
        self.link.transact_many([(Command.WRITE, payload) for payload in payloads])  # idempotent
        params = params_fields(seed, read_noise, program, drift)
        self._mvm_noise[tile] = bool(params["mvm_noise"])
        self.link.transact(Command.CONFIG, struct_bytes(Config, tile=tile, op=op.value, params=params))

    def levels(self, tile):
        cfg = self.config
        chunk = self.max_payload // 2
        reads = [(Command.READ, struct_bytes(Access, region=Region.LEVELS.value, tile=tile, lane=lane,
                                             word=word, count=min(chunk, cfg.words_per_lane - word)))
                 for lane in range(cfg.lanes) for word in range(0, cfg.words_per_lane, chunk)]
        data = b"".join(self.link.transact_many(reads))
        memory = np.frombuffer(data, dtype=np.uint8).reshape(cfg.lanes, cfg.words_per_lane, 2)
        g_plus, g_minus = memory_cells(cfg, memory)
        return g_plus, g_minus

    def run_codes(self, tile, x_codes, window):
        per_frame = max(1, min(self.max_payload // (2 * window.cols),
                               (self.max_payload - RUN_BYTES) // window.rows))
        batches = [x_codes[start:start + per_frame] for start in range(0, len(x_codes), per_frame)]
        head = window._asdict()
        # with MVM noise a re-executed RUN would draw the next read's noise: one frame in flight
        replies = self.link.transact_many(
            ((Command.RUN, struct_bytes(Run, tile=tile, batch=len(b), **head) + b.astype(np.int8).tobytes())
             for b in batches), window=1 if self._mvm_noise.get(tile) else 2)
        out = [np.frombuffer(r, dtype="<i2").astype(np.int64).reshape(-1, window.cols) for r in replies]
        return np.concatenate(out) if out else np.zeros((0, window.cols), dtype=np.int64)

    def counters(self):
        """The device's event counters (``memxbar.protocol.frames.Counters``) as a dict."""
        return struct_fields(Counters, self.link.transact(Command.COUNTERS))

    def close(self):
        self.link.close()
