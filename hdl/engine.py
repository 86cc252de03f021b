"""The command engine: executes one checked frame at a time against the tile, writes the reply.

Commands and payloads: :mod:`memxbar.protocol.frames`. Every frame gets exactly one reply;
a frame repeating the SEQ and command of one of the last two gets that reply again without
executing (the host retries after a lost reply, with two requests in flight). A request
whose epoch is not the device's is refused (STATE). Checks happen before any effect, so a
rejected command leaves memory untouched.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.crc.catalog import CRC32_ISO_HDLC
from amaranth.lib.wiring import In, Out

from ..protocol import PROTOCOL_VERSION
from ..protocol.frames import (
    HEADER_BYTES,
    REPLY,
    Access,
    Command,
    Config,
    Counters,
    Header,
    Hello,
    Region,
    Run,
    Status,
    hello_fields,
)
from ..protocol.physics import NU_CODES, TABLE_BITS, EngineOp, Params, ReadNoise, Table
from .arith import times
from .cells import stuck_layout, table_write_layout, target_layout
from .counters import CounterBank
from .tile import cell_layout, prog_layout

__all__ = ["CommandEngine"]


def next_epoch_of(epoch):
    """:func:`memxbar.protocol.frames.next_epoch` in gateware (the top testbench holds the two
    equal through the reference device): the next non-zero 16-bit value."""
    return Mux(epoch == 0xFFFF, 1, epoch + 1)[:16]


def at_most(value, bound, bits=None):
    """``value <= bound`` built in ``bound``'s width, not ``value``'s: the bits of ``value``
    above ``bits`` must be 0 and the rest at most ``bound``.

    ``bound`` is a non-negative constant (``bits`` defaults to its width) or a value known to
    be below ``2**bits``. A 16-bit field checked against a bound of 64 then costs a 7-bit
    comparator and a zero test, where ``value <= bound`` builds a full-width one: yosys
    (``alumacc``) maps a comparison onto a carry chain as wide as its wider operand, a
    constant one too, and does not narrow it by the constant's value.
    """
    if bits is None:
        bits = max(bound.bit_length(), 1)
        if bound == (1 << bits) - 1:  # every value of that width (and no constant comparison)
            return (value >> bits) == 0
        return ((value >> bits) == 0) & (value[:bits] <= bound)
    return ((value >> bits) == 0) & (value[:bits] <= bound[:bits])


def fits(first, second, total, bits):
    """``first <= total`` and ``second <= total - first``, the overflow-safe form of
    ``first + second <= total``, in ``bits`` bits (``total`` is below ``2**bits``; once
    ``first <= total``, ``total - first`` is too)."""
    if isinstance(total, int):
        return at_most(first, total) & at_most(second, (total - first[:bits])[:bits], bits)
    return at_most(first, total, bits) & at_most(second, (total[:bits] - first[:bits])[:bits], bits)


def window_next(position, inside, start, size, bits):
    """Whether ``position`` lies in the window ``start, size`` (already checked to fit in
    ``bits`` bits), given ``inside`` for the position before it; not for position 0.

    A flag kept this way takes two equality tests and one adder, where ``start <= position
    < start + size`` took two comparators and a subtractor."""
    start = start[:bits]
    return (position == start) | (inside & (position != (start + size[:bits])[:bits]))


ACCESS_BYTES = Access.as_shape().size // 8
RUN_BYTES = Run.as_shape().size // 8
HELLO_BYTES = Hello.as_shape().size // 8
COUNTER_BYTES = Counters.as_shape().size // 8
CONFIG_BYTES = Config.as_shape().size // 8
# Bytes of the frame loaded into registers before dispatch: the header and the longest
# fixed payload.
HEAD_BYTES = HEADER_BYTES + max(ACCESS_BYTES, CONFIG_BYTES, RUN_BYTES)
ACCESS_START = HEADER_BYTES + ACCESS_BYTES  # first data byte of WRITE
RUN_START = HEADER_BYTES + RUN_BYTES  # first input code of a RUN frame


class CommandEngine(wiring.Component):
    """Between the frame receiver/transmitter and one tile.

    Parameters
    ----------
    config : TileConfig
    max_payload : int
        Largest request or reply payload, reported by HELLO.
    """

    def __init__(self, config, max_payload):
        if config.g_bits > 8 or config.dac_bits > 8 or config.adc_bits > 16:
            raise ValueError(f"the link carries levels and inputs as bytes and outputs as int16; "
                             f"{config!r} does not fit")
        self.config = config
        self.max_payload = max_payload
        self.rx_depth = rx_depth = max_payload + HEADER_BYTES + 4
        tx_depth = max_payload + HEADER_BYTES
        super().__init__({
            "frame_valid": In(1),
            "frame_length": In(range(rx_depth + 1)),
            "frame_release": Out(1),
            "frame_dropped": In(1),
            "read_addr": Out(range(rx_depth)),
            "read_data": In(8),
            "write_addr": Out(range(tx_depth)),
            "write_data": Out(8),
            "write_en": Out(1),
            "send": Out(1),
            "resend": Out(1),
            "resend_previous": Out(1),
            "send_length": Out(range(tx_depth + 1)),
            "sending": In(1),
            "prog": Out(stream.Signature(prog_layout(config))),
            "readback": In(stream.Signature(cell_layout(config))),
            "x": Out(stream.Signature(signed(config.dac_bits))),
            "y": In(stream.Signature(signed(config.adc_bits))),
            "program": Out(stream.Signature(target_layout(config))),
            "stuck": Out(stream.Signature(stuck_layout(config))),
            "table": Out(stream.Signature(table_write_layout(config))),
            "op": Out(stream.Signature(EngineOp)),
            "drift_index": Out(32),
            "params": Out(Params),
            "read_index": Out(32),
            "read_load": Out(1),
            "tile_busy": In(1),
            "pulse": In(1),
            "verify_read": In(1),
            "uart_overrun": In(1),
            "uart_framing_error": In(1),
        })

    def elaborate(self, platform):
        cfg = self.config
        m = Module()

        head = Signal(HEAD_BYTES * 8)
        header = data.View(Header, head[:HEADER_BYTES * 8])
        access = data.View(Access, head[HEADER_BYTES * 8:ACCESS_START * 8])
        config_cmd = data.View(Config, head[HEADER_BYTES * 8:(HEADER_BYTES + CONFIG_BYTES) * 8])
        params = Signal(Params)
        m.d.comb += [self.params.eq(params), self.drift_index.eq(config_cmd.index)]
        run = data.View(Run, head[HEADER_BYTES * 8:RUN_START * 8])
        m.d.comb += self.read_index.eq(run.index)
        claim = head[HEADER_BYTES * 8:(HEADER_BYTES + 2) * 8]  # HELLO's optional payload: an epoch
        epoch = Signal(16)  # 0 at power-up and reset: unclaimed
        # a build without per-read noise lanes refuses that mode rather than ignore it
        per_read_missing = Const(0) if cfg.per_read_noise else (
            config_cmd.params.read_noise == ReadNoise.PER_READ)
        frame_payload = Signal(16)
        m.d.comb += frame_payload.eq(self.frame_length - HEADER_BYTES)
        # the payload after Access (one subtractor for every length check of WRITE and READ);
        # its sign is a length shorter than Access
        body = Signal(signed(17))
        m.d.comb += body.eq(header.length - ACCESS_BYTES)
        short = body[-1]

        status = Signal(8)
        reply_len = Signal(16)
        # bytes of a reply, or of a CHECKSUM walk over a whole lane
        index = Signal(range(max(self.max_payload, 2 * cfg.words_per_lane, HEAD_BYTES) + 2))
        # the replay cache: (seq, command) of the last two replies, which the transmitter's two
        # buffers still hold (the last one sent and the one before, in the buffer filled next)
        last_seq, previous_seq = Signal(8), Signal(8)
        last_command, previous_command = Signal(8), Signal(8)
        last_valid, previous_valid = Signal(), Signal()

        # increments in the widths of what passed the checks: a RUN's batch, a WRITE's count
        m.submodules.counters = counters = CounterBank({
            "mvms": (self.max_payload // 2).bit_length(),
            "cell_writes": cfg.words_per_lane.bit_length(),
            "write_pulses": 1, "verify_reads": 1, "frames_ok": 1,
            "frames_dropped": 1, "uart_overruns": 1, "uart_framing_errors": 1})
        m.d.comb += [counters.add_uart_overruns.eq(self.uart_overrun),
                     counters.add_uart_framing_errors.eq(self.uart_framing_error),
                     counters.add_frames_dropped.eq(self.frame_dropped),
                     counters.add_write_pulses.eq(self.pulse),
                     counters.add_verify_reads.eq(self.verify_read)]

        # Range checks of WRITE/READ/CHECKSUM, all before any effect. The word check is
        # overflow-safe: word <= words and count <= words - word, never word + count.
        # Every check is built in the width of its bound (at_most): words - word is at most
        # words once word <= words, so it and count compare in words' width.
        words = cfg.words_per_lane
        word_bits = words.bit_length()
        cells_ok = ((access.tile == 0) & at_most(access.lane, cfg.lanes - 1)
                    & fits(access.word, access.count, words, word_bits))
        read_ok = (access.region == Region.LEVELS) & cells_ok
        physics = Const(cfg.physics)  # an ideal build has no device engine to program or configure
        writable = (access.region == Region.LEVELS) | ((access.region == Region.TARGETS) & physics)
        write_ok = writable & cells_ok
        # TABLE: lane names the table, word its first entry; 3 bytes per entry
        table_ok = Signal()
        depths = {NU_CODES if table == Table.DRIFT else 1 << cfg.g_bits for table in Table}
        if len(depths) == 1:  # one depth for every table: no multiplexer
            table_depth = depths.pop()
            depth_bits = table_depth.bit_length()
        else:
            depth_bits = max(depths).bit_length()
            table_depth = Mux(access.lane == Table.DRIFT.value, NU_CODES, 1 << cfg.g_bits)
        m.d.comb += table_ok.eq((access.tile == 0) & at_most(access.lane, len(Table) - 1)
                                & fits(access.word, access.count, table_depth, depth_bits))
        # Past those checks count fits the wider of the two bounds: the byte counts and index
        # comparisons that follow them are built in that width.
        count = access.count[:max(word_bits, depth_bits)]
        cell_bytes = Cat(Const(0, 1), count)  # 2 * count
        table_bytes = times(count, 3)
        # a READ reply longer than max_payload (none can be in a build whose lanes are short)
        too_long = Const(0)
        if (1 << len(cell_bytes)) - 1 > self.max_payload:
            too_long = cell_bytes > self.max_payload
        # an entry fits its table when no bit at or above the table's width is set (a mask
        # per table; `entry >> table_bits != 0` made yosys build a 24-bit barrel shifter)
        high_bits = Signal(24)
        with m.Switch(access.lane):
            for table in Table:
                with m.Case(table.value):
                    m.d.comb += high_bits.eq(((1 << 24) - 1) ^ ((1 << TABLE_BITS[table]) - 1))

        m.submodules.checksum = checksum = CRC32_ISO_HDLC().create()

        value = Signal(24)  # TABLE: the entry being assembled
        byte_of_entry = Signal(2)
        half = Signal()  # which byte of a 2-byte item is being handled
        saved = Signal(8)
        # The payload is walked with one pointer (read_data follows read_addr by a cycle):
        # `step` reads the byte at `ptr` and moves on, `ahead` moves on and reads the next
        # byte at once. One adder, where addresses computed as `start + k * index` took one
        # each.
        ptr = Signal(range(self.rx_depth + 2))
        step, ahead = Signal(), Signal()
        m.d.comb += self.read_addr.eq(Mux(ahead, ptr + 1, ptr))
        with m.If(step | ahead):
            m.d.sync += ptr.eq(ptr + 1)
        primed = Signal()  # RUN: read_data holds the code at `ptr`
        # RUN: batch * window rows and batch * 2 * window cols, summed one vector per cycle
        # (no multiplier: the DSPs are the MAC lanes); a sum past its bound stops the count
        # in_sum counts from RUN_BYTES, so it meets header.length itself (the receiver's frames
        # are at least a header long: header.length <= rx_depth - HEADER_BYTES here)
        in_sum = Signal(range(self.rx_depth + cfg.rows + 1))
        out_sum = Signal(range(self.max_payload + 2 * cfg.cols + 1))
        # a batch that passes RUN_CHECK is at most max_payload // 2 (2 * cols bytes a vector),
        # and RUN_CHECK stops one vector past that
        batch_bits = (self.max_payload // 2).bit_length()
        x_row = Signal(range(cfg.rows))  # RUN: array row of the input offered
        x_vector = Signal(range(self.max_payload // 2 + 2))  # RUN_CHECK: vectors summed; RUN: fed
        y_col = Signal(range(cfg.cols))  # RUN: array column of the output offered
        y_vector = Signal.like(x_vector)
        out_of_range = Signal()
        # a window that passed its check fits the array: its fields fit these widths
        row_bits, col_bits = cfg.rows.bit_length(), cfg.cols.bit_length()
        x_inside, y_inside = Signal(), Signal()  # RUN: x_row, y_col inside the window
        x_first, y_first = run.row0[:row_bits] == 0, run.col0[:col_bits] == 0

        def write_reply_byte(offset, value):
            m.d.comb += [self.write_addr.eq(HEADER_BYTES + offset), self.write_data.eq(value),
                         self.write_en.eq(1)]

        def reply(code, length=0):
            m.d.sync += [status.eq(code), reply_len.eq(length), index.eq(0)]
            m.next = "HEADER"

        with m.FSM():
            with m.State("IDLE"), m.If(self.frame_valid & ~self.sending):
                m.d.sync += ptr.eq(0)
                m.next = "LOAD"

            with m.State("LOAD"):  # read_data follows read_addr by one cycle
                # a shift register: byte k arrives at cycle k + 1, and the byte shifted in at
                # cycle 0 falls out at the last one (head.word_select(index - 1, 8) made yosys
                # build a 1-of-34 byte write decoder and a multiplexer on each of head's bits)
                m.d.comb += step.eq(1)
                m.d.sync += head.eq(Cat(head[8:], self.read_data))
                with m.If(ptr == HEAD_BYTES):
                    m.next = "DISPATCH"

            with m.State("DISPATCH"):
                m.d.comb += counters.add_frames_ok.eq(1)
                with m.If(last_valid & (header.seq == last_seq) & (header.command == last_command)):
                    m.next = "REPLAY"
                with m.Elif(previous_valid & (header.seq == previous_seq)
                            & (header.command == previous_command)):
                    m.next = "REPLAY_PREVIOUS"
                with m.Else():
                    # this reply overwrites the buffer holding the one before the last
                    m.d.sync += previous_valid.eq(0)
                    with m.If(header.version != PROTOCOL_VERSION):
                        reply(Status.VERSION)
                    with m.Elif(header.length != frame_payload):
                        reply(Status.LEN)
                    with m.Elif((header.command != Command.HELLO) & (header.epoch != epoch)):
                        reply(Status.STATE)
                    with m.Else():
                        m.next = "EXECUTE"

            with m.State("EXECUTE"):
                m.d.sync += ptr.eq(ACCESS_START)
                with m.Switch(header.command):
                    with m.Case(Command.HELLO):
                        with m.If((header.length != 0) & (header.length != 2)):
                            reply(Status.LEN)
                        with m.Else():
                            with m.If(header.length == 2):
                                m.d.sync += epoch.eq(claim)
                            reply(Status.OK, HELLO_BYTES)
                            m.next = "HELLO"
                    with m.Case(Command.WRITE):
                        with m.If(short):
                            reply(Status.LEN)
                        with m.Elif((access.region == Region.TABLE) & physics):
                            with m.If(~table_ok):
                                reply(Status.RANGE)
                            with m.Elif(body != table_bytes):
                                reply(Status.LEN)
                            with m.Else():
                                m.d.sync += [index.eq(0), byte_of_entry.eq(0)]
                                m.next = "TABLE_CHECK"
                        with m.Elif((access.region == Region.STUCK) & physics):
                            with m.If(~cells_ok):
                                reply(Status.RANGE)
                            with m.Elif(body != count):
                                reply(Status.LEN)
                            with m.Else():
                                m.d.sync += index.eq(0)
                                m.next = "STUCK_CHECK"
                        with m.Elif(~write_ok):
                            reply(Status.RANGE)
                        with m.Elif(body != cell_bytes):
                            reply(Status.LEN)
                        with m.Else():
                            m.d.sync += index.eq(0)
                            m.next = "WRITE_CHECK" if cfg.g_bits < 8 else "WRITE"
                    with m.Case(Command.READ, Command.CHECKSUM):
                        with m.If(short):
                            reply(Status.LEN)
                        with m.Elif(~read_ok):
                            reply(Status.RANGE)
                        with m.Elif(body != 0):
                            reply(Status.LEN)
                        with m.Elif((header.command == Command.READ) & too_long):
                            reply(Status.LEN)
                        with m.Else():
                            m.d.comb += checksum.start.eq(1)
                            m.d.sync += [index.eq(0), half.eq(0)]
                            m.next = "READ"
                    with m.Case(Command.RUN):
                        # overflow-safe: rows <= R and row0 <= R - rows, never row0 + rows
                        window_ok = ((run.rows != 0) & fits(run.rows, run.row0, cfg.rows, row_bits)
                                     & (run.cols != 0) & fits(run.cols, run.col0, cfg.cols, col_bits))
                        with m.If(at_most(header.length, RUN_BYTES - 1)):
                            reply(Status.LEN)
                        with m.Elif((run.tile != 0) | ~window_ok):
                            reply(Status.RANGE)
                        with m.Elif(run.batch == 0):
                            reply(Status.LEN)
                        with m.Else():
                            m.d.sync += [in_sum.eq(RUN_BYTES), out_sum.eq(0), x_vector.eq(0)]
                            m.next = "RUN_CHECK"
                    with m.Case(Command.CONFIG):
                        with m.If(~physics):
                            reply(Status.UNKNOWN_CMD)
                        with m.Elif(header.length != CONFIG_BYTES):
                            reply(Status.LEN)
                        with m.Elif((config_cmd.tile != 0) | (config_cmd.op > 1) | per_read_missing):
                            reply(Status.RANGE)
                        with m.Elif(config_cmd.op == EngineOp.CONFIGURE):
                            m.d.sync += [params.eq(config_cmd.params), epoch.eq(next_epoch_of(epoch))]
                            m.next = "CONFIG"
                        with m.Else():  # DRIFT: the seed, the mode and programming stay CONFIGURE's
                            m.d.sync += [params.out_var.eq(config_cmd.params.out_var),
                                         params.var_shift.eq(config_cmd.params.var_shift),
                                         params.mvm_noise.eq(config_cmd.params.mvm_noise)]
                            m.next = "CONFIG"
                    with m.Case(Command.COUNTERS):
                        reply(Status.OK, COUNTER_BYTES)
                        m.d.sync += ptr.eq(0)
                        m.next = "COUNTERS"
                    with m.Case(Command.RESET):
                        m.d.comb += counters.clear.eq(1)
                        reply(Status.OK)
                    with m.Default():
                        reply(Status.UNKNOWN_CMD)

            with m.State("HELLO"):
                hello = Hello.const(hello_fields(cfg, self.max_payload)).as_value()
                write_reply_byte(index, hello.word_select(index[:HELLO_BYTES.bit_length()], 8))
                m.d.sync += index.eq(index + 1)
                with m.If(index == HELLO_BYTES - 1):
                    m.d.sync += index.eq(0)
                    m.next = "HEADER"

            with m.State("COUNTERS"):  # a snapshot of the bank, one byte a cycle (its words lag by one)
                # ptr addresses the bank and index, a cycle behind it, the reply byte whose
                # word has arrived: a delayed copy, not an index - 1 adder
                m.d.comb += [counters.freeze.eq(1), counters.read_addr.eq(ptr >> 1)]
                with m.If(counters.frozen):
                    m.d.comb += step.eq(1)
                    m.d.sync += index.eq(ptr)
                    with m.If(ptr != 0):
                        write_reply_byte(index, counters.read_data.word_select(index[0], 8))
                    with m.If(ptr == COUNTER_BYTES):
                        m.d.sync += index.eq(0)
                        m.next = "HEADER"

            with m.State("CONFIG"):  # the operation, then the reply once the tile has finished
                m.d.comb += [self.op.valid.eq(1), self.op.payload.eq(config_cmd.op[0])]
                with m.If(self.op.ready):
                    m.next = "ENGINE_DRAIN"
            with m.State("ENGINE_DRAIN"):  # the tile raises busy the cycle after it accepts
                m.next = "ENGINE_WAIT"
            with m.State("ENGINE_WAIT"):
                with m.If(~self.tile_busy):
                    reply(Status.OK)

            with m.State("STUCK_CHECK"):  # two codes <= 2 per byte, nothing else, before any write
                m.d.comb += step.eq(1)
                m.d.sync += index.eq(index + 1)
                bad_code = ((self.read_data[:2] == 3) | (self.read_data[2:4] == 3)
                            | (self.read_data[4:] != 0))
                with m.If((index != 0) & bad_code):
                    reply(Status.RANGE)
                with m.Elif(index == count):
                    m.d.sync += [index.eq(0), ptr.eq(ACCESS_START)]
                    m.next = "STUCK"
            with m.State("STUCK"):  # cell `index`: its byte, then one mark
                with m.If(index == count):
                    m.next = "ENGINE_DRAIN"
                with m.Else():
                    m.next = "STUCK_PUSH"
            with m.State("STUCK_PUSH"):
                mark = self.stuck.payload
                m.d.comb += [self.stuck.valid.eq(1), mark.lane.eq(access.lane),
                             mark.word.eq(access.word + index),
                             mark.codes[0].eq(self.read_data[:2]), mark.codes[1].eq(self.read_data[2:4])]
                with m.If(self.stuck.ready):
                    m.d.comb += step.eq(1)
                    m.d.sync += index.eq(index + 1)
                    m.next = "STUCK"

            with m.State("TABLE_CHECK"):  # every entry fits its table, before any write
                m.d.comb += step.eq(1)
                m.d.sync += index.eq(index + 1)
                too_wide = Signal()
                with m.If(index != 0):  # value shifts each byte in: the entry's first two are its top
                    m.d.sync += [value.eq(Cat(value[8:], self.read_data)),
                                 byte_of_entry.eq(Mux(byte_of_entry == 2, 0, byte_of_entry + 1))]
                    m.d.comb += too_wide.eq((byte_of_entry == 2)
                                            & ((Cat(value[8:], self.read_data) & high_bits) != 0))
                with m.If(too_wide):
                    reply(Status.RANGE)
                with m.Elif(index == table_bytes):
                    m.d.sync += [index.eq(0), byte_of_entry.eq(0), ptr.eq(ACCESS_START)]
                    m.next = "TABLE"
            with m.State("TABLE"):  # entry `index`: three bytes, then one table write
                with m.If(index == count):
                    reply(Status.OK)
                with m.Else():
                    m.next = "TABLE_READ"
            with m.State("TABLE_READ"):
                m.d.comb += ahead.eq(1)
                m.d.sync += [value.eq(Cat(value[8:], self.read_data)), byte_of_entry.eq(byte_of_entry + 1)]
                with m.If(byte_of_entry == 2):
                    m.d.sync += byte_of_entry.eq(0)
                    m.next = "TABLE_PUSH"
            with m.State("TABLE_PUSH"):
                m.d.comb += [self.table.valid.eq(1), self.table.payload.table.eq(access.lane),
                             self.table.payload.index.eq(access.word + index),
                             self.table.payload.value.eq(value)]
                with m.If(self.table.ready):
                    m.d.sync += index.eq(index + 1)
                    m.next = "TABLE"

            with m.State("WRITE_CHECK"):  # every level byte below 2**g_bits, before any write
                m.d.comb += step.eq(1)
                m.d.sync += index.eq(index + 1)
                with m.If((index != 0) & (self.read_data >> cfg.g_bits != 0)):
                    reply(Status.RANGE)
                with m.Elif(index == cell_bytes):
                    m.d.sync += [index.eq(0), ptr.eq(ACCESS_START)]
                    m.next = "WRITE"

            with m.State("WRITE"):  # cell `index`: two levels, then a direct write or a program
                with m.If(index == count):
                    m.d.comb += counters.add_cell_writes.eq(count)
                    with m.If(access.region == Region.TARGETS):
                        m.next = "ENGINE_DRAIN"  # reply once the last cell is programmed
                    with m.Else():
                        reply(Status.OK)
                with m.Else():
                    m.next = "WRITE_G_PLUS"
            with m.State("WRITE_G_PLUS"):
                m.d.comb += ahead.eq(1)
                m.d.sync += saved.eq(self.read_data)
                m.next = "WRITE_PUSH"
            with m.State("WRITE_PUSH"):  # ptr stays on g_minus until the cell is taken
                cmd = self.prog.payload
                target = self.program.payload
                m.d.comb += [cmd.write.eq(1), cmd.lane.eq(access.lane), cmd.word.eq(access.word + index),
                             cmd.cell.g_plus.eq(saved), cmd.cell.g_minus.eq(self.read_data),
                             target.lane.eq(access.lane), target.word.eq(access.word + index),
                             target.t_plus.eq(saved), target.t_minus.eq(self.read_data),
                             target.index.eq(access.index + index)]
                with m.If(access.region == Region.TARGETS):
                    m.d.comb += self.program.valid.eq(1)
                    with m.If(self.program.ready):
                        m.d.comb += step.eq(1)
                        m.d.sync += index.eq(index + 1)
                        m.next = "WRITE"
                with m.Else():
                    m.d.comb += self.prog.valid.eq(1)
                    with m.If(self.prog.ready):
                        m.d.comb += step.eq(1)
                        m.d.sync += index.eq(index + 1)
                        m.next = "WRITE"

            with m.State("READ"):  # one read-back per cell; READ stores it, CHECKSUM hashes it
                with m.If(index == cell_bytes):
                    with m.If(header.command == Command.READ):
                        reply(Status.OK, cell_bytes)
                    with m.Else():
                        m.d.sync += index.eq(0)
                        m.next = "CHECKSUM_OUT"
                with m.Else():
                    cmd = self.prog.payload
                    m.d.comb += [self.prog.valid.eq(1), cmd.write.eq(0), cmd.lane.eq(access.lane),
                                 cmd.word.eq(access.word + (index >> 1))]
                    with m.If(self.prog.ready):
                        m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                m.d.comb += self.readback.ready.eq(1)
                with m.If(self.readback.valid):
                    m.d.sync += saved.eq(self.readback.payload.g_minus)
                    value = self.readback.payload.g_plus
                    with m.If(header.command == Command.READ):
                        write_reply_byte(index, value)
                    m.d.comb += [checksum.data.eq(value), checksum.valid.eq(1)]
                    m.d.sync += index.eq(index + 1)
                    m.next = "READ_SECOND"
            with m.State("READ_SECOND"):
                with m.If(header.command == Command.READ):
                    write_reply_byte(index, saved)
                m.d.comb += [checksum.data.eq(saved), checksum.valid.eq(1)]
                m.d.sync += index.eq(index + 1)
                m.next = "READ"
            with m.State("CHECKSUM_OUT"):
                write_reply_byte(index, checksum.crc.word_select(index[:2], 8))
                m.d.sync += index.eq(index + 1)
                with m.If(index == 3):
                    reply(Status.OK, 4)

            with m.State("RUN_CHECK"):  # in_sum - RUN_BYTES against the input bytes after Run
                in_bits = len(in_sum)
                with m.If(~at_most(in_sum, header.length, in_bits) | (out_sum > self.max_payload)):
                    reply(Status.LEN)
                with m.Elif(x_vector == run.batch):
                    with m.If(in_sum != header.length):
                        reply(Status.LEN)
                    with m.Else():
                        m.d.comb += self.read_load.eq(1)
                        m.d.sync += [index.eq(0), half.eq(0), ptr.eq(RUN_START), primed.eq(0),
                                     x_row.eq(0), x_vector.eq(0), out_of_range.eq(0),
                                     y_col.eq(0), y_vector.eq(0), x_inside.eq(x_first), y_inside.eq(y_first)]
                        m.next = "RUN"
                with m.Else():
                    m.d.sync += [in_sum.eq(in_sum + run.rows[:row_bits]), x_vector.eq(x_vector + 1),
                                 out_sum.eq(out_sum + Cat(Const(0, 1), run.cols[:col_bits]))]

            with m.State("RUN"):
                # Feed inputs: every array row, the frame's code inside the window and 0 outside;
                # read_addr runs one ahead so read_data holds the code at `ptr`.
                # Each code is range-checked as it is fed, not in a pass before: a code outside
                # +-x_max feeds zeros to the end of its vector, stops the feed, drains the
                # outputs of the vectors fed and answers RANGE. The MVMs it ran leave nothing
                # the host can see: no reply data, no count, and their noise streams are the
                # tile's own (it seeds one per MVM from the read index, which every RUN loads).
                batch = run.batch[:batch_bits]  # RUN_CHECK bounded it
                fire = self.x.valid & self.x.ready
                # a code was out of range and its vector is complete (the feed wrapped to row 0):
                # no more are fed
                x_stopped = out_of_range & (x_row == 0)
                code_in = self.read_data.as_signed()
                bad_code = x_inside & ((code_in > cfg.x_max) | (code_in < -cfg.x_max))
                m.d.comb += [
                    self.x.valid.eq(primed & (x_vector != batch) & ~x_stopped),
                    self.x.payload.eq(Mux(x_inside & ~out_of_range & ~bad_code, self.read_data, 0)),
                    ahead.eq(fire & x_inside & ~out_of_range),
                ]
                m.d.sync += primed.eq(1)
                with m.If(fire & bad_code):
                    m.d.sync += out_of_range.eq(1)
                with m.If(fire):
                    with m.If(x_row == cfg.rows - 1):
                        m.d.sync += [x_row.eq(0), x_inside.eq(x_first), x_vector.eq(x_vector + 1)]
                    with m.Else():
                        m.d.sync += [x_row.eq(x_row + 1),
                                     x_inside.eq(window_next(x_row + 1, x_inside, run.row0, run.rows,
                                                            row_bits))]
                # Collect the window's outputs as little-endian int16, one byte per cycle.
                code = Signal(16)
                m.d.comb += [code.eq(self.y.payload.as_signed()), self.y.ready.eq(~half)]
                with m.If(self.y.valid & self.y.ready):
                    with m.If(y_col == cfg.cols - 1):
                        m.d.sync += [y_col.eq(0), y_inside.eq(y_first)]
                    with m.Else():
                        m.d.sync += [y_col.eq(y_col + 1),
                                     y_inside.eq(window_next(y_col + 1, y_inside, run.col0, run.cols,
                                                            col_bits))]
                    with m.If(y_inside):
                        write_reply_byte(index, code[:8])
                        m.d.sync += [saved.eq(code[8:]), half.eq(1), index.eq(index + 1)]
                    with m.If(y_col == cfg.cols - 1):
                        m.d.sync += y_vector.eq(y_vector + 1)
                with m.If(half):
                    write_reply_byte(index, saved)
                    m.d.sync += [half.eq(0), index.eq(index + 1)]
                # every vector fed has had all its outputs taken
                fed_all = (x_vector == batch) | x_stopped
                with m.If(fed_all & (y_vector == x_vector) & ~half):
                    with m.If(out_of_range):
                        reply(Status.RANGE)
                    with m.Else():
                        # the array reads every cell whatever the window: count full MVMs
                        m.d.comb += counters.add_mvms.eq(batch)
                        reply(Status.OK, index)

            with m.State("HEADER"):  # the reply header, then send and remember it for replays
                reply_header = Cat(Const(PROTOCOL_VERSION, 8), (header.command | REPLY)[:8], header.seq,
                                   status, epoch, reply_len)
                m.d.comb += [self.write_addr.eq(index), self.write_en.eq(1),
                             self.write_data.eq(reply_header.word_select(index[:3], 8))]
                m.d.sync += index.eq(index + 1)
                with m.If(index == HEADER_BYTES - 1):
                    m.d.sync += [last_seq.eq(header.seq), last_command.eq(header.command),
                                 last_valid.eq(1), previous_seq.eq(last_seq),
                                 previous_command.eq(last_command), previous_valid.eq(last_valid)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.send.eq(1), self.send_length.eq(HEADER_BYTES + reply_len),
                             self.frame_release.eq(1)]
                m.next = "IDLE"
            with m.State("REPLAY"):  # the transmitter still holds the last reply
                m.d.comb += [self.resend.eq(1), self.frame_release.eq(1)]
                m.next = "IDLE"
            with m.State("REPLAY_PREVIOUS"):  # ... and the one before, in the buffer it fills next
                m.d.comb += [self.resend_previous.eq(1), self.frame_release.eq(1)]
                m.next = "IDLE"
        return m

