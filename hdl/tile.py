"""The crossbar tile: differential conductance pairs in block RAM, lane-parallel MACs, ADC.

Lane ``l`` is the bit line of columns ``l, l + lanes, l + 2*lanes, ...``: during one MVM the
sequencer walks column group ``g`` over all rows ``i``, every lane multiplying the same input
``x_i`` by its own cell, so a lane needs one memory read and one multiply per cycle and no
adder tree. Integer semantics and memory layout: :mod:`memxbar.protocol.geometry`.

Pipeline (all stages advance together; a full result register stalls them)::

    S0 sequencer -> S1 memory read -> S2 G+ - G- -> S3 product (DSP) -> S4 accumulate
    -> result regs -> ADC -> y

Device physics (:mod:`memxbar.protocol.physics`): :class:`~memxbar.hdl.cells.CellEngine`
programs and drifts cells into the same memories; each lane also accumulates the per-read
noise variance ``sum_i x_i**2 v_ji`` beside its MAC, and when MVM noise is on the output
stage draws one Gaussian per column (a bit-serial square root overlapped with the serial
multiply of the column before: about 23 cycles a column, which a 3 Mbaud link never notices).
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol import TileConfig, physics
from ..protocol.physics import OUT_VAR_BITS, V_MAX, Domain, EngineOp, Params, round_shift
from .arith import ISqrt, SerialMultiplier, multiplier_signature, shift_add_product
from .cells import CellEngine, cell_update_layout, stuck_layout, table_write_layout, target_layout
from .noise import GaussianSource, gaussian_source_signature
from .shapes import index_shape

__all__ = ["Tile", "cell_layout", "prog_layout"]



def cell_layout(config):
    """One differential pair as stored: ``g_plus`` and ``g_minus`` levels."""
    return data.StructLayout({"g_plus": unsigned(config.g_bits), "g_minus": unsigned(config.g_bits)})


def _stored_layout(config):
    """A memory word: the pair MVMs use and, where built, the per-read noise variance code."""
    fields = {"g_plus": unsigned(config.g_bits), "g_minus": unsigned(config.g_bits)}
    if config.per_read_noise:
        fields["var"] = range(V_MAX + 1)
    return data.StructLayout(fields)


def variance_width(config):
    """Bits of a column's noise variance ``sum_i x_i**2 v_ji + out_var``."""
    column = 2 * config.dac_bits + (V_MAX + 1).bit_length() + (config.rows - 1).bit_length()
    return max(column, OUT_VAR_BITS) + 1


def prog_layout(config):
    """A direct access: write levels ``cell`` at ``(lane, word)`` as they are (no device
    physics, read-noise variance 0), or read them back (``write=0``)."""
    return data.StructLayout({
        "write": 1,
        "lane": index_shape(config.lanes),
        "word": index_shape(config.words_per_lane),
        "cell": cell_layout(config),
    })


class Tile(wiring.Component):
    """One crossbar tile.

    Parameters
    ----------
    config : TileConfig

    Attributes
    ----------
    prog : In(stream.Signature(prog_layout(config)))
        Direct writes and read-backs of levels; accepted only while no MVM is in flight
        (``busy`` low) and no read-back is pending. Conductances survive a reset.
    program : In(stream.Signature(target_layout(config)))
        Cells to program through the device engine (noise, drift exponent, faults).
    stuck : In(stream.Signature(stuck_layout(config)))
        Explicit stuck codes of cells, after a CONFIGURE.
    table, op : In
        Device tables and engine operations (CONFIGURE, DRIFT), see :class:`CellEngine`.
    drift_index : In(32)
        A DRIFT operation's drift-call index (its frozen read noise), held with ``op``.
    read_index, read_load : In(32), In(1)
        ``read_load`` sets the read index of the next MVM to ``read_index`` (the RUN's, from
        the host); the following MVMs count on from it.
    params : In(Params)
        The device's scalars, held steady by the owner.
    pulse, verify_read : Out(1)
        Event strobes of programming.
    mac_cycle : Out(1)
        The sequencer issued one step of MACs this cycle (the ``cycles`` counter).
    readback : Out(stream.Signature(cell_layout(config)))
        One cell per read command.
    x : In(stream.Signature(signed(dac_bits)))
        Input DAC codes, ``rows`` per vector, back to back; two vectors are buffered.
    y : Out(stream.Signature(signed(adc_bits)))
        Output ADC codes, ``cols`` per vector, in column order.
    busy : Out(1)
        An input vector is buffered or an MVM is in flight.
    """

    def __init__(self, config, tile=0):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.config = config
        self.tile = tile
        super().__init__({
            "prog": In(stream.Signature(prog_layout(config))),
            "readback": Out(stream.Signature(cell_layout(config))),
            "program": In(stream.Signature(target_layout(config))),
            "stuck": In(stream.Signature(stuck_layout(config))),
            "table": In(stream.Signature(table_write_layout(config))),
            "op": In(stream.Signature(EngineOp)),
            "drift_index": In(32),
            "params": In(Params),
            "read_index": In(32),
            "read_load": In(1),
            "x": In(stream.Signature(signed(config.dac_bits))),
            "y": Out(stream.Signature(signed(config.adc_bits))),
            "busy": Out(1),
            "pulse": Out(1),
            "verify_read": Out(1),
            "mac_cycle": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.config
        m = Module()

        # Input double buffer: the writer fills one bank while the sequencer reads the other.
        m.submodules.x_mem = x_mem = memory.Memory(shape=signed(cfg.dac_bits), depth=2 * cfg.rows, init=[])
        x_wr = x_mem.write_port()
        x_rd = x_mem.read_port()
        full = Signal(2)
        full_set = Signal(2)
        full_clr = Signal(2)
        m.d.sync += full.eq((full & ~full_clr) | full_set)

        w_bank = Signal()
        w_row = Signal(index_shape(cfg.rows))
        m.d.comb += [
            self.x.ready.eq(~Mux(w_bank, full[1], full[0])),
            x_wr.addr.eq(Mux(w_bank, cfg.rows, 0) + w_row),
            x_wr.data.eq(self.x.payload),
            x_wr.en.eq(self.x.valid & self.x.ready),
        ]
        with m.If(self.x.valid & self.x.ready):
            m.d.sync += w_row.eq(w_row + 1)
            with m.If(w_row == cfg.rows - 1):
                m.d.sync += [w_row.eq(0), w_bank.eq(~w_bank)]
                m.d.comb += full_set.eq(Mux(w_bank, 0b10, 0b01))

        # One memory per lane, each word a (G+, G-) pair and its read-noise variance code.
        cell = cell_layout(cfg)
        g_wr, g_rd = [], []
        for lane in range(cfg.lanes):
            g_mem = memory.Memory(shape=_stored_layout(cfg), depth=cfg.words_per_lane, init=[])
            m.submodules[f"g_mem{lane}"] = g_mem
            g_wr.append(g_mem.write_port())
            g_rd.append(g_mem.read_port())

        advance = Signal()

        # S0: the sequencer walks (group, row) over the bank being read.
        r_bank = Signal()
        group = Signal(index_shape(cfg.groups))
        row = Signal(index_shape(cfg.rows))
        word = Signal(index_shape(cfg.words_per_lane))
        if cfg.physics:
            m.submodules.engine = engine = CellEngine(cfg, self.tile)
            engine_busy, finished = engine.busy, engine.cell
        else:  # an ideal tile: levels are only written directly, nothing draws noise
            engine_busy, finished = Const(0), stream.Signature(cell_update_layout(cfg)).create()
        issue = Signal()
        m.d.comb += issue.eq(Mux(r_bank, full[1], full[0]) & ~engine_busy)
        m.d.comb += self.mac_cycle.eq(advance & issue)
        with m.If(advance & issue):
            m.d.sync += [row.eq(row + 1), word.eq(word + 1)]
            with m.If(row == cfg.rows - 1):
                m.d.sync += [row.eq(0), group.eq(group + 1)]
                with m.If(group == cfg.groups - 1):
                    m.d.sync += [group.eq(0), word.eq(0), r_bank.eq(~r_bank)]
                    m.d.comb += full_clr.eq(Mux(r_bank, 0b10, 0b01))

        # S1: memories are read with the same enable, so a stall holds their outputs.
        v1, first1, last1, tail1 = Signal(), Signal(), Signal(), Signal()
        with m.If(advance):
            m.d.sync += [
                v1.eq(issue), first1.eq(row == 0), last1.eq(row == cfg.rows - 1),
                tail1.eq(group == cfg.groups - 1),
            ]
        m.d.comb += [x_rd.addr.eq(Mux(r_bank, cfg.rows, 0) + row), x_rd.en.eq(advance)]

        # S2: the differential pair is subtracted into a register beside x, so a block RAM read
        # and a multiply never share a clock cycle (on a large ECP5 the lanes' RAMs and DSPs sit
        # far apart, and routing between them is most of that path).
        vd, firstd, lastd, taild = Signal(), Signal(), Signal(), Signal()
        x_held = Signal(signed(cfg.dac_bits))
        diffs = [Signal(signed(cfg.g_bits + 1), name=f"diff{lane}") for lane in range(cfg.lanes)]
        x_square = Signal(2 * cfg.dac_bits)
        var_codes = [Signal(range(V_MAX + 1), name=f"var_code{lane}") for lane in range(cfg.lanes)]
        with m.If(advance):
            m.d.sync += [vd.eq(v1), firstd.eq(first1), lastd.eq(last1), taild.eq(tail1), x_held.eq(x_rd.data)]
            for lane in range(cfg.lanes):
                pair = g_rd[lane].data
                m.d.sync += diffs[lane].eq(pair.g_plus - pair.g_minus)
                if cfg.per_read_noise:
                    m.d.sync += var_codes[lane].eq(pair.var)
            if cfg.per_read_noise:
                m.d.sync += x_square.eq(shift_add_product(abs(x_rd.data), abs(x_rd.data)))

        # S3: one product per lane. Beside it, x**2 times the cell's variance code, in logic:
        # the DSPs are the MACs'.
        v2, first2, last2, tail2 = Signal(), Signal(), Signal(), Signal()
        prod_shape = signed(cfg.dac_bits + cfg.g_bits + 1)
        products = [Signal(prod_shape, name=f"product{lane}") for lane in range(cfg.lanes)]
        var_products = [Signal(2 * cfg.dac_bits + physics.VAR_BITS, name=f"var_product{lane}")
                        for lane in range(cfg.lanes)]
        with m.If(advance):
            m.d.sync += [v2.eq(vd), first2.eq(firstd), last2.eq(lastd), tail2.eq(taild)]
            for lane in range(cfg.lanes):
                m.d.sync += products[lane].eq(x_held * diffs[lane])
                if cfg.per_read_noise:  # else the products stay 0 and yosys drops the path
                    m.d.sync += var_products[lane].eq(shift_add_product(x_square, var_codes[lane]))

        # S4: accumulate; the last row of a group lands the column sums in the result registers.
        accs = [Signal(signed(cfg.acc_width), name=f"acc{lane}") for lane in range(cfg.lanes)]
        results = Array(Signal(signed(cfg.acc_width), name=f"result{lane}") for lane in range(cfg.lanes))
        v_width = variance_width(cfg)
        var_accs = [Signal(v_width, name=f"var_acc{lane}") for lane in range(cfg.lanes)]
        var_results = Array(Signal(v_width, name=f"var_result{lane}") for lane in range(cfg.lanes))
        result_valid = Signal()
        result_last = Signal(index_shape(cfg.lanes))
        out_index = Signal(index_shape(cfg.lanes))
        draining_last = Signal()
        m.d.comb += [
            draining_last.eq(self.y.valid & self.y.ready & (out_index == result_last)),
            advance.eq(~(v2 & last2 & result_valid & ~draining_last)),
        ]

        # Output: one column per transfer, the ADC applied at the multiplexer.
        out_group = Signal(index_shape(cfg.groups))
        read_index = Signal(32)   # MVMs since CONFIGURE: the READ noise counter
        need_seed = Signal(init=1)
        with m.If(self.y.valid & self.y.ready):
            m.d.sync += out_index.eq(out_index + 1)
            with m.If(draining_last):
                m.d.sync += [out_index.eq(0), result_valid.eq(0), out_group.eq(out_group + 1)]
                with m.If(out_group == cfg.groups - 1):
                    m.d.sync += [out_group.eq(0), read_index.eq(read_index + 1), need_seed.eq(1)]
        if cfg.physics:
            with m.If(engine.restart):
                m.d.sync += [read_index.eq(0), need_seed.eq(1)]
            # the host's read index; a stream already seeded for it is kept
            with m.If(self.read_load & (self.read_index != read_index)):
                m.d.sync += [read_index.eq(self.read_index), need_seed.eq(1)]

        if cfg.physics:
            selected, noisy_ready = self._mvm_noise(m, engine, results[out_index], var_results, out_index,
                                                    result_last, draining_last, read_index, need_seed,
                                                    result_valid)
        else:
            selected, noisy_ready = results[out_index], Const(1)
        half = (1 << cfg.adc_shift) >> 1  # 0 when there is no shift
        rounded = (selected + half) >> cfg.adc_shift
        m.d.comb += [
            self.y.valid.eq(result_valid & noisy_ready),
            self.y.payload.eq(Mux(rounded > cfg.y_max, cfg.y_max,
                                  Mux(rounded < -cfg.y_max, -cfg.y_max, rounded))),
        ]

        tail_count = cfg.cols - (cfg.groups - 1) * cfg.lanes
        with m.If(advance & v2):
            for lane in range(cfg.lanes):
                column_sum = Mux(first2, 0, accs[lane]) + products[lane]
                m.d.sync += accs[lane].eq(column_sum)
                with m.If(last2):
                    m.d.sync += results[lane].eq(column_sum)
                if cfg.per_read_noise:  # else the variances stay 0: output noise only
                    var_sum = Mux(first2, 0, var_accs[lane]) + var_products[lane]
                    m.d.sync += var_accs[lane].eq(var_sum)
                    with m.If(last2):
                        m.d.sync += var_results[lane].eq(var_sum)
            with m.If(last2):
                m.d.sync += [
                    result_valid.eq(1),
                    result_last.eq(Mux(tail2, tail_count - 1, cfg.lanes - 1)),
                ]

        busy = Signal()
        m.d.comb += [busy.eq(full.any() | v1 | vd | v2 | result_valid), self.busy.eq(busy | engine_busy)]

        # The engine works only while no MVM is in flight, and MVMs wait for it (see issue).
        if cfg.physics:
            self._connect_engine(m, engine, busy)

        # Direct writes and read-backs share each lane's ports with the sequencer and engine.
        rb_lane = Signal(index_shape(cfg.lanes))
        rb_inflight = Signal()
        rb_valid = Signal()
        rb_data = Signal(cell)
        cmd = self.prog.payload
        accept = self.prog.valid & self.prog.ready
        m.d.comb += self.prog.ready.eq(~busy & ~engine_busy & ~rb_inflight & ~rb_valid)
        # One address and data for every lane's write port, chosen by who writes (the engine
        # hands out cells only while busy, and direct writes wait for it to be idle); only the
        # enables are per lane. A per-lane choice cost a 25-bit multiplexer per lane.
        cell_word = finished.payload
        variance = cell_word.var if cfg.per_read_noise else []
        write_addr = Mux(finished.valid, cell_word.word, cmd.word)
        write_data = Mux(finished.valid, Cat(cell_word.g_plus, cell_word.g_minus, variance),
                         Cat(cmd.cell.g_plus, cmd.cell.g_minus, 0))
        for lane in range(cfg.lanes):
            direct = accept & cmd.write & (cmd.lane == lane)
            from_engine = finished.valid & (cell_word.lane == lane)
            m.d.comb += [
                g_wr[lane].addr.eq(write_addr),
                g_wr[lane].data.eq(write_data),
                g_wr[lane].en.eq(direct | from_engine),
                g_rd[lane].addr.eq(Mux(busy, word, cmd.word)),
                g_rd[lane].en.eq(Mux(busy, advance, accept)),
            ]
        m.d.sync += rb_inflight.eq(accept & ~cmd.write)
        with m.If(accept & ~cmd.write):
            m.d.sync += rb_lane.eq(cmd.lane)
        with m.If(rb_inflight):
            stored = Array(port.data for port in g_rd)[rb_lane]
            m.d.sync += [rb_data.g_plus.eq(stored.g_plus), rb_data.g_minus.eq(stored.g_minus), rb_valid.eq(1)]
        with m.If(self.readback.valid & self.readback.ready):
            m.d.sync += rb_valid.eq(0)
        m.d.comb += [self.readback.valid.eq(rb_valid), self.readback.payload.eq(rb_data)]

        return m

    def _connect_engine(self, m, engine, busy):
        wiring.connect(m, wiring.flipped(self.table), engine.table)
        m.d.comb += [
            engine.params.eq(self.params), engine.drift_index.eq(self.drift_index),
            engine.op.payload.eq(self.op.payload), engine.op.valid.eq(self.op.valid & ~busy),
            self.op.ready.eq(engine.op.ready & ~busy),
            engine.program.payload.eq(self.program.payload),
            engine.program.valid.eq(self.program.valid & ~busy),
            self.program.ready.eq(engine.program.ready & ~busy),
            engine.stuck.payload.eq(self.stuck.payload),
            engine.stuck.valid.eq(self.stuck.valid & ~busy),
            self.stuck.ready.eq(engine.stuck.ready & ~busy),
            engine.cell.ready.eq(1),
            self.pulse.eq(engine.pulse), self.verify_read.eq(engine.verify_read),
        ]

    def _mvm_noise(self, m, engine, result, variances, out_index, result_last, draining_last,
                   read_index, need_seed, result_valid):
        """The column's Gaussian noise: ``(noisy result, ready)`` for the output multiplexer.

        The tile has one Gaussian source: the device engine's while it is busy, the MVM noise
        stage's otherwise (the engine works only while no MVM is in flight). Whatever the
        engine did to the stream, the next noisy MVM seeds its own again.
        """
        cfg = self.config
        # MVM noise: q = isqrt(V << SQRT_SHIFT), acc += round_shift(q z, noise_shift(var_shift))
        m.submodules.gauss = source = GaussianSource()
        gauss = gaussian_source_signature().flip().create(path=("mvm_noise",))  # this stage's port
        owner_is_engine = engine.busy
        for name in ("seed", "key0", "key1", "counter0", "counter1"):
            m.d.comb += getattr(source, name).eq(Mux(owner_is_engine, getattr(engine.noise, name),
                                                     getattr(gauss, name)))
        m.d.comb += source.z.ready.eq(Mux(owner_is_engine, engine.noise.z.ready, gauss.z.ready))
        for user, owns in ((engine.noise, owner_is_engine), (gauss, ~owner_is_engine)):
            m.d.comb += [user.seeding.eq(source.seeding), user.block_valid.eq(source.block_valid & owns),
                         user.block0.eq(source.block0), user.block1.eq(source.block1),
                         user.z.valid.eq(source.z.valid & owns), user.z.payload.eq(source.z.payload)]
        m.submodules.isqrt = isqrt = ISqrt(variance_width(cfg) + physics.SQRT_SHIFT)
        # One serial multiplier too, shared the same way: z times the square root here, the
        # engine's sigma and drift products there.
        engine_a, engine_b = engine.mul_widths
        # round_shift(q z, noise_shift(var_shift)) is computed as round_shift((q z) << var_shift,
        # noise_shift(0)), equal for every var_shift <= noise_shift(0): a constant final shift,
        # the variable one made by the multiplier a bit per cycle.
        assert physics.noise_shift(physics.VAR_SHIFT_MAX) >= 0
        m.submodules.mul = shared = SerialMultiplier(max(physics.Z_BITS, engine_a),
                                                     max(len(isqrt.root) + 1, engine_b),
                                                     physics.VAR_SHIFT_MAX)
        noise_mul = multiplier_signature(physics.Z_BITS, len(isqrt.root) + 1, physics.VAR_SHIFT_MAX).flip(
            ).create(path=("noise_mul",))  # this stage's port
        for name in ("start", "a", "b"):
            m.d.comb += getattr(shared, name).eq(Mux(owner_is_engine, getattr(engine.mul, name),
                                                     getattr(noise_mul, name)))
        m.d.comb += shared.shift.eq(Mux(owner_is_engine, 0, noise_mul.shift))
        for user in (engine.mul, noise_mul):
            m.d.comb += [user.busy.eq(shared.busy), user.product.eq(shared.product)]
        p = self.params
        m.d.comb += [gauss.key0.eq(p.seed), gauss.key1.eq((self.tile << 8) | Domain.READ.value),
                     gauss.counter0.eq(read_index), gauss.counter1.eq(0)]
        with m.If(p.mvm_noise & need_seed & ~owner_is_engine):
            m.d.comb += gauss.seed.eq(1)
            m.d.sync += need_seed.eq(0)
        with m.If(owner_is_engine):  # the engine's draws move the stream: seed again after it
            m.d.sync += need_seed.eq(1)
        noise = round_shift(noise_mul.product, physics.noise_shift(0))
        noisy = Signal(signed(max(cfg.acc_width, len(noise)) + 1))
        column_done = Signal()  # `noisy` holds the column at out_index
        selected = Mux(p.mvm_noise, noisy, result)
        # Two stages that overlap: the square root of column `rooted` runs while the column
        # before it is multiplied and sent, so a column costs the longer of the two (about 22
        # cycles) rather than their sum. The multiplier latches its operand at `start`, which
        # frees the square root for the next column at once.
        rooted = Signal(range(cfg.lanes + 1))
        sqrt_on, mul_on = Signal(), Signal()
        root_ready = sqrt_on & ~isqrt.busy
        with m.If(p.mvm_noise & result_valid & ~sqrt_on & (rooted <= result_last)):
            m.d.comb += [isqrt.start.eq(1),
                         isqrt.value.eq((variances[rooted] + p.out_var) << physics.SQRT_SHIFT)]
            m.d.sync += sqrt_on.eq(1)
        with m.If(root_ready & (rooted == out_index) & ~mul_on & ~column_done & gauss.z.valid & ~need_seed):
            m.d.comb += [gauss.z.ready.eq(1), noise_mul.start.eq(1), noise_mul.a.eq(gauss.z.payload),
                         noise_mul.b.eq(isqrt.root), noise_mul.shift.eq(p.var_shift)]
            m.d.sync += [mul_on.eq(1), sqrt_on.eq(0), rooted.eq(rooted + 1)]
        with m.If(mul_on & ~noise_mul.busy):
            m.d.sync += [noisy.eq(result + noise), column_done.eq(1), mul_on.eq(0)]
        with m.If(self.y.valid & self.y.ready):
            m.d.sync += column_done.eq(0)
        with m.If(draining_last):
            m.d.sync += rooted.eq(0)
        return selected, ~p.mvm_noise | column_done
