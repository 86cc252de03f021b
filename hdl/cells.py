"""The tile's device engine: programs, drifts and erases cells one at a time, from tables.

What it computes is specified in :mod:`memxbar.protocol.physics` (and mirrored by the golden
model); this is a sequential machine with one shift-and-add multiplier, because cells are
programmed and drifted rarely and the iCE40's DSPs belong to the MAC lanes. A cell costs
roughly 100-300 cycles, so a 64x64 tile reprograms or drifts in about a tenth of a second at
12 MHz, faster than the link can deliver its weights.

The engine keeps each cell's programmed state (``g_prog``, drift code, stuck code) in its own
memory and hands finished cells (the conductances MVMs see, and the per-read noise variance)
to the tile on ``cell``.
"""

from amaranth import Array, Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol import TileConfig, physics
from ..protocol.physics import (
    NU_CODES,
    TABLE_BITS,
    V_MAX,
    Domain,
    EngineOp,
    Params,
    ReadNoise,
    Table,
    round_shift,
    table_max,
)
from .arith import multiplier_signature
from .noise import gaussian_source_signature
from .shapes import index_shape
from .spram import WideSPRAM

__all__ = ["CellEngine", "cell_update_layout", "stuck_layout", "table_write_layout", "target_layout"]



def target_layout(config):
    """Program cell ``(lane, word)`` to target levels ``(t_plus, t_minus)``, drawing the noise
    of cell write ``index`` (the host's count, carried by the request)."""
    return data.StructLayout({"lane": index_shape(config.lanes), "word": index_shape(config.words_per_lane),
                              "t_plus": unsigned(config.g_bits), "t_minus": unsigned(config.g_bits),
                              "index": 32})


def cell_update_layout(config):
    """A finished cell: the levels MVMs use and the read-noise variance code."""
    return data.StructLayout({"lane": index_shape(config.lanes), "word": index_shape(config.words_per_lane),
                              "g_plus": unsigned(config.g_bits), "g_minus": unsigned(config.g_bits),
                              "var": range(V_MAX + 1)})


def stuck_layout(config):
    """An explicit stuck code per device of cell ``(lane, word)``: 0 healthy, 1 on, 2 off."""
    return data.StructLayout({"lane": index_shape(config.lanes), "word": index_shape(config.words_per_lane),
                              "codes": data.ArrayLayout(2, 2)})


def table_write_layout(config):
    index = max(TABLE_BITS[Table.LEVEL], (NU_CODES - 1).bit_length())  # levels or nu codes
    return data.StructLayout({"table": Table, "index": index, "value": max(TABLE_BITS.values())})


def _state_layout(config):
    g = unsigned(config.g_bits)
    return data.StructLayout({"g_prog": data.ArrayLayout(g, 2), "nu": data.ArrayLayout(range(NU_CODES), 2),
                              "stuck": data.ArrayLayout(2, 2)})


def _holding(low, high):
    """The shape of a value known to lie in ``low..high``."""
    return Shape.cast(range(low, high + 1))


class _Widths:
    """Every intermediate of the engine's arithmetic, sized from the contract's bounds.

    Bounds come from the largest table entries and ``|z| <= Z_MAX``, so no width is written
    by hand and a change of a constant in :mod:`memxbar.protocol.physics` resizes them.
    """

    def __init__(self, config):
        g_max = config.g_max

        def gauss_max(sigma_max):  # |round_shift(s z, GAUSS_SHIFT)| for s <= sigma_max
            return round_shift(sigma_max * physics.Z_MAX, physics.GAUSS_SHIFT) + 1

        self.sigma_max = round_shift(g_max * table_max(Table.READ_SIGMA), physics.READ_SIGMA_SHIFT)
        self.sigma = _holding(0, self.sigma_max)
        prog, nu, read = (gauss_max(table_max(Table.PROG_SIGMA)), gauss_max(table_max(Table.NU_SIGMA)),
                          gauss_max(self.sigma_max))
        self.programmed = _holding(-prog, g_max + prog)     # LEVEL + gauss(PROG_SIGMA, z)
        self.nu16 = _holding(-nu, table_max(Table.NU_MEAN) + nu)
        self.read = _holding(-read, g_max + read)           # g_drift + gauss(s, z)
        self.drifted = _holding(0, round_shift(g_max * table_max(Table.DRIFT), physics.DRIFT_SHIFT))
        self.var_sum = _holding(0, 2 * self.sigma_max**2 + (1 << 2 * physics.VAR_SHIFT_MAX))
        # the multiplier's operands: sigma-like values times z, g times a table entry, s * s
        a_operands = (table_max(Table.PROG_SIGMA), table_max(Table.NU_SIGMA), g_max, self.sigma_max)
        b_operands = (physics.Z_MAX, table_max(Table.DRIFT), table_max(Table.READ_SIGMA), self.sigma_max)
        self.mul_a = max(value.bit_length() for value in a_operands) + 1  # signed
        self.mul_b = max(value.bit_length() for value in b_operands) + 1


class CellEngine(wiring.Component):
    """Programming, drift and erase of one tile's cells (see the module docstring).

    Parameters
    ----------
    config : TileConfig
    tile : int
        The tile's index, part of every noise key.

    Attributes
    ----------
    params : In(Params)
        Held steady by the owner while the engine works.
    table : In(stream.Signature(table_write_layout(config)))
        Table entries; accepted only while idle.
    op : In(stream.Signature(EngineOp))
        CONFIGURE or DRIFT over every cell; accepted only while idle.
    program : In(stream.Signature(target_layout(config)))
        Cells to program, in the order the host sends them (that order keys the noise).
    stuck : In(stream.Signature(stuck_layout(config)))
        Explicit stuck codes (after CONFIGURE): the cell is erased with them and settles.
    cell : Out(stream.Signature(cell_update_layout(config)))
        Finished cells for the tile's MVM memory.
    restart : Out(1)
        Pulses when CONFIGURE begins: the tile restarts its read index.
    pulse, verify_read : Out(1)
        One programming pulse / one verify read this cycle (event counters).
    busy : Out(1)
    noise : In(gaussian_source_signature())
        The tile's Gaussian source, the engine's while ``busy`` (MVMs never run then).
    mul : In(multiplier_signature(...))
        The tile's serial multiplier, shared the same way (:attr:`mul_widths` its operands).
    """

    def __init__(self, config, tile=0):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        if config.g_bits > 8:
            raise ValueError(f"the device engine's tables take g_bits <= 8, not {config.g_bits}")
        self.config = config
        self.tile = tile
        self._widths = _Widths(config)
        #: The operand widths the engine needs of the multiplier it is given.
        self.mul_widths = (self._widths.mul_a, self._widths.mul_b)
        super().__init__({
            "params": In(Params),
            "table": In(stream.Signature(table_write_layout(config))),
            "op": In(stream.Signature(EngineOp)),
            "drift_index": In(32),
            "program": In(stream.Signature(target_layout(config))),
            "stuck": In(stream.Signature(stuck_layout(config))),
            "cell": Out(stream.Signature(cell_update_layout(config))),
            "restart": Out(1),
            "pulse": Out(1),
            "verify_read": Out(1),
            "busy": Out(1),
            "noise": In(gaussian_source_signature()),
            "mul": In(multiplier_signature(*self.mul_widths)),
        })

    def elaborate(self, platform):
        cfg = self.config
        p = self.params
        m = Module()
        levels = 1 << cfg.g_bits

        # -- tables: written by the host while idle, read by the engine one cycle later -----
        # power-up contents: a perfect device (memxbar.protocol.physics.ideal_tables)
        depth = {Table.DRIFT: NU_CODES}
        init = {Table.LEVEL: range(levels), Table.DRIFT: [physics.DRIFT_ONE] * NU_CODES}
        tables = {}
        for table in Table:
            mem = memory.Memory(shape=TABLE_BITS[table], depth=depth.get(table, levels),
                                init=init.get(table, []))
            m.submodules[f"table_{table.name.lower()}"] = mem
            write, read = mem.write_port(), mem.read_port()
            entry = self.table.payload
            m.d.comb += [write.addr.eq(entry.index), write.data.eq(entry.value),
                         write.en.eq(self.table.valid & self.table.ready & (entry.table == table))]
            tables[table] = read

        state_layout = _state_layout(cfg)
        cells = cfg.lanes * cfg.words_per_lane
        # the programmed state, touched one cell at a time: SPRAM on an iCE40UP (cleared at reset,
        # it has no power-up contents), a block RAM elsewhere
        m.submodules.state = state = WideSPRAM(state_layout, cells)

        widths = self._widths
        gauss = self.noise
        mul = self.mul

        def seed(domain, counter0, counter1):  # the source takes key and counter with the pulse
            m.d.comb += [gauss.seed.eq(1), gauss.key0.eq(p.seed),
                         gauss.key1.eq((self.tile << 8) | domain.value),
                         gauss.counter0.eq(counter0), gauss.counter1.eq(counter1)]

        # -- the cell being worked on ------------------------------------------------------------
        lane = Signal(index_shape(cfg.lanes))
        word = Signal(index_shape(cfg.words_per_lane))
        addr = Signal(range(max(cells, 2)))
        m.d.comb += addr.eq(lane * cfg.words_per_lane + word)
        job = Signal(2)  # PROGRAM, CONFIGURE, DRIFT
        PROGRAM, CONFIGURE, DRIFT, MARK = 0, 1, 2, 3
        target = Array(Signal(cfg.g_bits, name=f"target{d}") for d in range(2))
        stuck = Array(Signal(2, name=f"stuck{d}") for d in range(2))
        g_prog = Array(Signal(cfg.g_bits, name=f"g_prog{d}") for d in range(2))
        nu = Array(Signal(range(NU_CODES), name=f"nu{d}") for d in range(2))
        g_drift = Array(Signal(cfg.g_bits, name=f"g_drift{d}") for d in range(2))
        sigma = Array(Signal(widths.sigma, name=f"sigma{d}") for d in range(2))
        g_now = Array(Signal(cfg.g_bits, name=f"g_now{d}") for d in range(2))
        var = Signal(range(V_MAX + 1))
        var_acc = Signal(widths.var_sum)
        var_shifts = Signal(range(2 * physics.VAR_SHIFT_MAX + 1))  # V_SHIFT: shifts still to make
        var_round = Signal()  # V_SHIFT: the last bit shifted out of var_acc
        dev = Signal()
        attempt = Signal.like(p.verify_max)
        writes = Signal(32)   # the cell's write index: the PROGRAM noise counter, from the request
        drifts = Signal(32)   # the last drift call's index (0 after CONFIGURE): part of the DRIFT counter

        level = Signal(TABLE_BITS[Table.LEVEL])
        prog_sigma = Signal(TABLE_BITS[Table.PROG_SIGMA])
        nu_mean = Signal(TABLE_BITS[Table.NU_MEAN])
        nu_sigma = Signal(TABLE_BITS[Table.NU_SIGMA])
        drift_factor = Signal(TABLE_BITS[Table.DRIFT])
        read_sigma = Signal(TABLE_BITS[Table.READ_SIGMA])

        def clip_level(value):
            return Mux(value < 0, 0, Mux(value > cfg.g_max, cfg.g_max, value))

        def gauss_of(product):
            return round_shift(product, physics.GAUSS_SHIFT)

        def start_mul(a, b):
            return [mul.start.eq(1), mul.a.eq(a), mul.b.eq(b)]

        seeded = Signal()  # the cell's stream is seeded: only once a draw needs it

        def draw(sigma, domain, counter0, counter1, next_state):
            """``sigma * z`` into the multiplier; no draw at all when ``sigma`` is 0."""
            with m.If(sigma == 0):
                m.d.comb += start_mul(0, 0)
                m.next = next_state
            with m.Elif(~seeded):
                seed(domain, counter0, counter1)
                m.d.sync += seeded.eq(1)
            with m.Elif(gauss.z.valid):
                m.d.comb += [gauss.z.ready.eq(1), *start_mul(sigma, gauss.z.payload)]
                m.next = next_state

        def erase(d, code):
            """Device ``d`` erased with stuck ``code``: at the top level if stuck on, else 0."""
            m.d.sync += [stuck[d].eq(code), g_prog[d].eq(Mux(code == 1, p.g_on, 0)), nu[d].eq(0)]

        def stuck_code(u):
            on = u < p.p_on
            off = u < (p.p_on + p.p_off)  # 33-bit sum: rates add up to at most 1
            return Mux(on, 1, Mux(off, 2, 0))

        m.d.comb += [
            state.addr.eq(addr),
            state.write_data.g_prog[0].eq(g_prog[0]), state.write_data.g_prog[1].eq(g_prog[1]),
            state.write_data.nu[0].eq(nu[0]), state.write_data.nu[1].eq(nu[1]),
            state.write_data.stuck[0].eq(stuck[0]), state.write_data.stuck[1].eq(stuck[1]),
            self.cell.payload.lane.eq(lane), self.cell.payload.word.eq(word),
            self.cell.payload.g_plus.eq(g_now[0]), self.cell.payload.g_minus.eq(g_now[1]),
            self.cell.payload.var.eq(var),
        ]
        for table in (Table.LEVEL, Table.PROG_SIGMA, Table.NU_MEAN, Table.NU_SIGMA):
            m.d.comb += [tables[table].addr.eq(target[dev]), tables[table].en.eq(1)]
        m.d.comb += [tables[Table.DRIFT].addr.eq(nu[dev]), tables[Table.DRIFT].en.eq(1),
                     tables[Table.READ_SIGMA].addr.eq(g_prog[dev]), tables[Table.READ_SIGMA].en.eq(1)]

        def next_cell_or_idle():
            last_word = word == cfg.words_per_lane - 1
            with m.If((job == PROGRAM) | (job == MARK)):
                m.next = "IDLE"
            with m.Elif(last_word & (lane == cfg.lanes - 1)):
                m.d.sync += [lane.eq(0), word.eq(0)]
                m.next = "IDLE"
            with m.Else():
                m.d.sync += [word.eq(Mux(last_word, 0, word + 1)), lane.eq(lane + last_word)]
                m.next = "NEXT"

        # Once after power-up (not after a reset: the state survives one, like the tile's levels)
        # every cell's state is erased to g_prog, nu, stuck = 0, the perfect device the tile's
        # zeroed level memories show, as CONFIGURE with ideal tables would: an SPRAM has no
        # power-up contents. ``cleared`` is reset-less, so only configuration sets it to 0.
        cleared = Signal(reset_less=True)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(~cleared):
                    m.next = "CLEAR"
                with m.Else():
                    m.d.comb += [self.table.ready.eq(1), self.op.ready.eq(1),
                                 self.program.ready.eq(~self.op.valid),
                                 self.stuck.ready.eq(~self.op.valid & ~self.program.valid)]
                    with m.If(self.op.valid):
                        m.d.sync += [lane.eq(0), word.eq(0)]
                        with m.If(self.op.payload == EngineOp.CONFIGURE):
                            m.d.comb += self.restart.eq(1)
                            m.d.sync += [job.eq(CONFIGURE), drifts.eq(0)]
                            m.next = "ERASE"
                        with m.Else():
                            m.d.sync += [job.eq(DRIFT), drifts.eq(self.drift_index)]
                            m.next = "LOAD"
                    with m.Elif(self.program.valid):
                        cmd = self.program.payload
                        m.d.sync += [job.eq(PROGRAM), lane.eq(cmd.lane), word.eq(cmd.word),
                                     target[0].eq(cmd.t_plus), target[1].eq(cmd.t_minus),
                                     writes.eq(cmd.index)]
                        m.next = "P_SEED"
                    with m.Elif(self.stuck.valid):
                        mark = self.stuck.payload
                        m.d.sync += [job.eq(MARK), lane.eq(mark.lane), word.eq(mark.word)]
                        for d in range(2):
                            erase(d, mark.codes[d])
                        m.next = "STORE"

            with m.State("CLEAR"):
                m.d.comb += state.write_en.eq(1)  # the state registers are still at reset: 0
                last_word = word == cfg.words_per_lane - 1
                m.d.sync += [word.eq(Mux(last_word, 0, word + 1)), lane.eq(lane + last_word)]
                with m.If(last_word & (lane == cfg.lanes - 1)):
                    m.d.sync += [lane.eq(0), cleared.eq(1)]
                    m.next = "IDLE"

            with m.State("NEXT"):
                with m.If(job == CONFIGURE):
                    m.next = "ERASE"
                with m.Else():
                    m.next = "LOAD"

            # -- CONFIGURE: stuck codes keyed on the cell, programmed state erased ----------
            with m.State("ERASE"):
                seed(Domain.STUCK, addr, 0)  # the first Threefry block of the seed is the draw
                m.next = "ERASE_WAIT"
            with m.State("ERASE_WAIT"), m.If(gauss.block_valid):
                for d, u in enumerate((gauss.block0, gauss.block1)):
                    erase(d, stuck_code(u))
                m.next = "STORE"

            # -- DRIFT: the programmed state of the cell, then settle ------------------------
            with m.State("LOAD"):
                m.next = "LOAD_WAIT"  # the read port shows addr's word one cycle later
            with m.State("LOAD_WAIT"):
                for d in range(2):
                    m.d.sync += [g_prog[d].eq(state.read_data.g_prog[d]), nu[d].eq(state.read_data.nu[d]),
                                 stuck[d].eq(state.read_data.stuck[d])]
                m.d.sync += dev.eq(0)
                m.next = "S_TABLE"

            # -- PROGRAM one cell --------------------------------------------------------------
            with m.State("P_SEED"):
                m.d.sync += [dev.eq(0), seeded.eq(0)]
                m.next = "P_STUCK"
            with m.State("P_STUCK"):
                m.d.sync += [stuck[0].eq(state.read_data.stuck[0]), stuck[1].eq(state.read_data.stuck[1])]
                m.next = "P_TABLE"
            with m.State("P_TABLE"):
                m.next = "P_DEVICE"
            with m.State("P_DEVICE"):
                m.d.sync += [level.eq(tables[Table.LEVEL].data), prog_sigma.eq(tables[Table.PROG_SIGMA].data),
                             nu_mean.eq(tables[Table.NU_MEAN].data), nu_sigma.eq(tables[Table.NU_SIGMA].data),
                             attempt.eq(0)]
                with m.If(stuck[dev] != 0):
                    m.d.comb += self.pulse.eq(1)
                    m.d.sync += [g_prog[dev].eq(Mux(stuck[dev] == 1, p.g_on, 0)), nu[dev].eq(0)]
                    m.next = "P_NEXT_DEVICE"
                with m.Else():
                    m.next = "P_Z"
            with m.State("P_Z"):
                draw(prog_sigma, Domain.PROGRAM, writes, 0, "P_MUL")
            with m.State("P_MUL"), m.If(~mul.busy):
                g = Signal(widths.programmed)
                m.d.comb += [g.eq(level + gauss_of(mul.product)), self.pulse.eq(1)]
                clipped = clip_level(g)
                m.d.sync += [g_prog[dev].eq(clipped), attempt.eq(attempt + 1)]
                close = abs(clipped - level) <= p.verify_tol
                with m.If(p.verify_max == 0):
                    m.next = "P_NU_Z"
                with m.Else():
                    m.d.comb += self.verify_read.eq(1)
                    with m.If(close | (attempt + 1 >= p.verify_max)):
                        m.next = "P_NU_Z"
                    with m.Else():
                        m.next = "P_Z"
            with m.State("P_NU_Z"):
                draw(nu_sigma, Domain.PROGRAM, writes, 0, "P_NU_MUL")
            with m.State("P_NU_MUL"), m.If(~mul.busy):
                nu16 = Signal(widths.nu16)
                m.d.comb += nu16.eq(nu_mean + gauss_of(mul.product))
                code = round_shift(abs(nu16), physics.NU_FRACTION_BITS)
                m.d.sync += nu[dev].eq(Mux(code > NU_CODES - 1, NU_CODES - 1, code))
                m.next = "P_NEXT_DEVICE"
            with m.State("P_NEXT_DEVICE"):
                with m.If(dev == 0):
                    m.d.sync += dev.eq(1)
                    m.next = "P_TABLE"
                with m.Else():
                    m.next = "STORE"

            with m.State("STORE"):
                m.d.comb += state.write_en.eq(1)
                m.d.sync += dev.eq(0)
                m.next = "S_TABLE"

            # -- settle: drift, then frozen read noise or the per-read variance ---------------
            with m.State("S_TABLE"):
                m.next = "S_DRIFT"
            with m.State("S_DRIFT"):
                m.d.sync += [drift_factor.eq(tables[Table.DRIFT].data),
                             read_sigma.eq(tables[Table.READ_SIGMA].data)]
                m.d.comb += start_mul(g_prog[dev], tables[Table.DRIFT].data)
                m.next = "S_DRIFT_MUL"
            with m.State("S_DRIFT_MUL"), m.If(~mul.busy):
                drifted = Signal(widths.drifted)
                m.d.comb += drifted.eq(round_shift(mul.product, physics.DRIFT_SHIFT))
                clipped = Mux(drifted > cfg.g_max, cfg.g_max, drifted)
                m.d.sync += g_drift[dev].eq(clipped)
                m.d.comb += start_mul(clipped, read_sigma)
                m.next = "S_SIGMA_MUL"
            with m.State("S_SIGMA_MUL"), m.If(~mul.busy):
                m.d.sync += sigma[dev].eq(round_shift(mul.product, physics.READ_SIGMA_SHIFT))
                with m.If(dev == 0):
                    m.d.sync += dev.eq(1)
                    m.next = "S_TABLE"
                with m.Elif((p.read_noise == ReadNoise.FROZEN) & (job == DRIFT)):
                    m.next = "F_SEED"  # frozen read noise: drawn by drift calls only
                # a build without per-read lanes never runs in that mode (CONFIG refuses it), and
                # has no variance states
                with m.Elif((p.read_noise == ReadNoise.FROZEN) | (not cfg.per_read_noise)):
                    m.d.sync += [g_now[0].eq(g_drift[0]), g_now[1].eq(g_drift[1]), var.eq(0)]
                    m.next = "WRITE"
                if cfg.per_read_noise:
                    with m.Else():
                        m.next = "V_SQUARE0"

            with m.State("F_SEED"):
                m.d.sync += [dev.eq(0), seeded.eq(0)]
                m.next = "F_Z"
            with m.State("F_Z"):
                draw(sigma[dev], Domain.DRIFT, addr, drifts, "F_MUL")
            with m.State("F_MUL"), m.If(~mul.busy):
                g = Signal(widths.read)
                m.d.comb += g.eq(g_drift[dev] + gauss_of(mul.product))
                m.d.sync += g_now[dev].eq(clip_level(g))
                with m.If(dev == 0):
                    m.d.sync += dev.eq(1)
                    m.next = "F_Z"
                with m.Else():
                    m.d.sync += var.eq(0)
                    m.next = "WRITE"

            if cfg.per_read_noise:
                with m.State("V_SQUARE0"):
                    m.d.sync += [g_now[0].eq(g_drift[0]), g_now[1].eq(g_drift[1])]
                    m.d.comb += start_mul(sigma[0], sigma[0])
                    m.next = "V_SQUARE1"
                with m.State("V_SQUARE1"), m.If(~mul.busy):
                    m.d.sync += var_acc.eq(mul.product)
                    m.d.comb += start_mul(sigma[1], sigma[1])
                    m.next = "V_SUM"
                with m.State("V_SUM"), m.If(~mul.busy):
                    m.d.sync += [var_acc.eq(var_acc + mul.product), var_shifts.eq(Cat(0, p.var_shift)),
                                 var_round.eq(0)]
                    m.next = "V_SHIFT"
                with m.State("V_SHIFT"):
                    # round_shift(sum, 2 var_shift) a bit per cycle: (t + 2**(k-1)) >> k is
                    # (t >> k) plus bit k-1 of t, the last bit shifted out (a barrel shifter
                    # over the sum cost about 200 LUT4)
                    with m.If(var_shifts != 0):
                        m.d.sync += [var_acc.eq(var_acc >> 1), var_round.eq(var_acc[0]),
                                     var_shifts.eq(var_shifts - 1)]
                    with m.Else():
                        saturated = (var_acc > V_MAX) | ((var_acc == V_MAX) & var_round)
                        m.d.sync += var.eq(Mux(saturated, V_MAX, var_acc[:len(var)] + var_round))
                        m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += self.cell.valid.eq(1)
                with m.If(self.cell.ready):
                    next_cell_or_idle()

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | ~cleared)
        return m
