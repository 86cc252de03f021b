"""A device behind a byte link: a board's UART, ``socket://`` to the simulator, any pyserial URL.

On connect the backend asks HELLO, checks the magic, the protocol version and that the build
id matches the configuration the device reports, then drives the tile with WRITE and RUN.
"""

import secrets
import time

import numpy as np
import serial

from ..errors import LinkError, StaleDevice, UnsupportedURL, VersionMismatch
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
    derived_counters,
    struct_bytes,
    struct_fields,
    table_payloads,
)
from ..protocol.physics import EngineOp, default_read_noise, ideal_tables, params_fields
from . import Backend

__all__ = ["SerialBackend"]

ACCESS_BYTES = len(struct_bytes(Access))
RUN_BYTES = len(struct_bytes(Run))
#: A WRITE that keeps failing is split until its data is this short.
MIN_SPLIT = 16


def _split_write(payload):
    """A WRITE payload as two that write the same cells or entries, or ``None`` if too short."""
    access, data = struct_fields(Access, payload), payload[ACCESS_BYTES:]
    count = access["count"]
    if count < 2 or len(data) <= MIN_SPLIT:
        return None
    size = len(data) // count  # bytes per cell or table entry
    half = count // 2
    first = {**access, "count": half}
    targets = access["region"] == Region.TARGETS.value
    second = {**access, "count": count - half, "word": access["word"] + half,
              "index": access["index"] + half * targets}
    return (struct_bytes(Access, **first) + data[:half * size],
            struct_bytes(Access, **second) + data[half * size:])


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
        self.stale = False    # the device's epoch moved behind this host: claim it again
        try:
            self._connect(expect_build_id)
        except BaseException:
            self.link.close()
            raise

    def _connect(self, expect_build_id):
        hello = struct_fields(Hello, self._claim())
        if hello["magic"] != MAGIC:
            raise LinkError("the port answers, but not as a memxbar device (wrong HELLO magic)")
        if hello["protocol"] != PROTOCOL_VERSION:
            raise VersionMismatch(
                f"the device speaks protocol {hello['protocol']}, this memxbar speaks "
                f"{PROTOCOL_VERSION}: rebuild and reflash the device with this version "
                f"(memxbar build / memxbar flash), or install the matching memxbar")
        if hello["g_bits"] > 8 or hello["dac_bits"] > 8 or hello["adc_bits"] > 16:
            raise VersionMismatch(
                f"the device reports {hello['g_bits']}-bit levels, {hello['dac_bits']}-bit inputs and "
                f"{hello['adc_bits']}-bit outputs; the link carries at most 8-bit levels and inputs and "
                f"16-bit outputs: it was built by another memxbar version")
        try:
            self.config = config_of_hello(hello)
        except ValueError as error:
            raise VersionMismatch(f"the device reports a tile this memxbar cannot use ({error}): "
                                  f"it was built by another memxbar version") from None
        self.tiles = hello["tiles"]
        self.max_payload = hello["max_payload"]
        if self.max_payload < 64:
            raise VersionMismatch(f"the device reports a max_payload of {self.max_payload} bytes; "
                                  f"memxbar needs at least 64")
        self._frame_payload = self.max_payload  # shrinks on a wire that loses long frames
        self.build_id = hello["build_id"]
        if self.build_id != self.config.build_id:
            raise VersionMismatch(
                f"the device's build id {self.build_id:08x} does not match the configuration it "
                f"reports ({self.config.build_id:08x} expected): it was built by another memxbar "
                f"version; rebuild and reflash it")
        if expect_build_id is not None and self.build_id != expect_build_id:
            raise VersionMismatch(f"the device runs build {self.build_id:08x}, not the expected "
                                  f"{expect_build_id:08x}: flash the bitstream you built")

    def _claim(self):
        """HELLO with a fresh epoch: from here on this host's view of the device is the one."""
        self.link.epoch = secrets.randbelow(0xFFFF) + 1
        reply = self.link.transact(Command.HELLO, self.link.epoch.to_bytes(2, "little"))
        self.stale = False
        return reply

    def reclaim(self):
        if self.stale:
            self._claim()

    def _transact(self, requests, window=2):
        try:
            return self.link.transact_many(requests, window)
        except StaleDevice:
            self.stale = True
            raise

    def program_levels(self, tile, g_plus, g_minus, write_index):
        # Every TARGETS frame carries the cell-write index of its first cell, so a frame
        # executed twice draws the same noise: frames pipeline like any others.
        region = Region.TARGETS if self.config.physics else Region.LEVELS
        self._write_image(tile, region, lane_memory(self.config, g_plus, g_minus), write_index)

    def write_levels(self, tile, g_plus, g_minus):
        """Write levels ``(cols, rows)`` directly (WRITE LEVELS: no physics, idempotent)."""
        self._write_image(tile, Region.LEVELS, lane_memory(self.config, g_plus, g_minus), 0)

    def _write_image(self, tile, region, memory, write_index):
        """WRITE a lane-memory image (see :meth:`_send_shrinking`)."""
        self._send_shrinking(self._lane_writes(tile, region, memory, write_index))

    def _send_shrinking(self, requests):
        """Send WRITE requests; one that loses every attempt is sent again as two halves.

        A 1 KB frame through a wire that corrupts one byte in 300 rarely arrives intact. Every
        WRITE is idempotent (TARGETS frames carry their noise index), so the request that
        failed is split in two and the rest resumes after it, down to frames of
        ``MIN_SPLIT`` payload bytes, before the error reaches the user; later images are cut
        at the smaller size from the start. Cells the device executed before a reply was lost
        for good count again in ``cell_writes`` when they are sent again.
        """
        requests = list(requests)
        while requests:
            try:
                self._transact(requests)
                return
            except LinkError as error:
                failed, *rest = requests[error.done:]
                halves = _split_write(failed[1])
                if halves is None:
                    raise
                self._frame_payload = max(MIN_SPLIT, len(halves[0]) - ACCESS_BYTES)
                requests = [(Command.WRITE, half) for half in halves] + rest

    def checksums(self, tile):
        """The device's CRC-32 of each lane's levels (CHECKSUM), the end-to-end check of a write."""
        requests = [(Command.CHECKSUM, struct_bytes(Access, region=Region.LEVELS.value, tile=tile, lane=lane,
                                                     word=0, count=self.config.words_per_lane))
                    for lane in range(self.config.lanes)]
        return [int.from_bytes(reply, "little") for reply in self.link.transact_many(requests)]

    def configure(self, tile, seed, read_noise, program, drift, stuck):
        self._device[tile] = (seed, read_noise, program)
        self._load(tile, EngineOp.CONFIGURE, drift, tables_of_program=True, index=0)
        if stuck is not None:  # (2, lanes, words) codes, one byte per cell; idempotent
            codes = (stuck[0] | stuck[1] << 2).astype(np.uint8)
            self._write_image(tile, Region.STUCK, codes[..., None], 0)

    def drift(self, tile, tables, drift_index):
        self._load(tile, EngineOp.DRIFT, tables, tables_of_program=False, index=drift_index)

    def _lane_writes(self, tile, region, memory, write_index):
        """WRITE requests carrying a lane-memory image ``(lanes, words, bytes per cell)``; the
        image's first cell has noise index ``write_index``, the others follow in memory order."""
        chunk = (self._frame_payload - ACCESS_BYTES) // memory.shape[-1]
        words = self.config.words_per_lane
        writes = []
        for lane in range(self.config.lanes):
            for word in range(0, words, chunk):
                cells = memory[lane, word:word + chunk]
                access = struct_bytes(Access, region=region.value, tile=tile, lane=lane, word=word,
                                      count=len(cells), index=write_index + lane * words + word)
                writes.append((Command.WRITE, access + cells.tobytes()))
        return writes

    def _load(self, tile, op, drift, tables_of_program, index):
        """Tables by WRITE TABLE, then CONFIG with the scalars and ``op``.

        The scalars come from the tile's last configure (a perfect device before any).
        """
        seed, read_noise, program = self._device.get(
            tile, (0, default_read_noise(self.config), ideal_tables(self.config)[0]))
        tables = program if tables_of_program else None
        self._send_shrinking([(Command.WRITE, payload)
                              for payload in table_payloads(tables, drift, self._frame_payload, tile)])
        params = params_fields(seed, read_noise, program, drift)
        config = struct_bytes(Config, tile=tile, op=op.value, params=params, index=index)
        try:
            self._transact([(Command.CONFIG, config)])
        except LinkError:
            # a CONFIGURE the device may have executed has moved its epoch on: claim it again
            # before the next configuration
            self.stale = self.stale or op == EngineOp.CONFIGURE
            raise

    def levels(self, tile):
        cfg = self.config
        while True:  # READ is idempotent: on a wire that loses long replies, read in shorter ones
            chunk = self._frame_payload // 2
            reads = [(Command.READ, struct_bytes(Access, region=Region.LEVELS.value, tile=tile, lane=lane,
                                                 word=word, count=min(chunk, cfg.words_per_lane - word)))
                     for lane in range(cfg.lanes) for word in range(0, cfg.words_per_lane, chunk)]
            try:
                data = b"".join(self._transact(reads))
                break
            except LinkError:
                if self._frame_payload <= 2 * MIN_SPLIT:
                    raise
                self._frame_payload = max(2 * MIN_SPLIT, self._frame_payload // 2)
        memory = np.frombuffer(data, dtype=np.uint8).reshape(cfg.lanes, cfg.words_per_lane, 2)
        g_plus, g_minus = memory_cells(cfg, memory)
        return g_plus, g_minus

    def run_codes(self, tile, x_codes, window, read_index):
        per_frame = max(1, min(self.max_payload // (2 * window.cols),
                               (self.max_payload - RUN_BYTES) // window.rows))
        head = window._asdict()
        # every frame carries the read index of its first MVM: noisy RUNs pipeline too
        replies = self._transact(
            (Command.RUN, struct_bytes(Run, tile=tile, batch=len(x_codes[start:start + per_frame]),
                                       index=read_index + start, **head)
             + x_codes[start:start + per_frame].astype(np.int8).tobytes())
            for start in range(0, len(x_codes), per_frame))
        out = [np.frombuffer(r, dtype="<i2").astype(np.int64).reshape(-1, window.cols) for r in replies]
        return np.concatenate(out) if out else np.zeros((0, window.cols), dtype=np.int64)

    def counters(self):
        """The device's event counters (``memxbar.protocol.frames.Counters``) as a dict, with
        the counts that follow from ``mvms`` (:func:`~memxbar.protocol.frames.derived_counters`)."""
        counts = struct_fields(Counters, self._transact([(Command.COUNTERS, b"")])[0])
        return {**counts, **derived_counters(self.config, counts["mvms"])}

    def close(self):
        self.link.close()
