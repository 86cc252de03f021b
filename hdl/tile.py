"""The crossbar tile: differential conductance pairs in block RAM, lane-parallel MACs, ADC.

Lane ``l`` is the bit line of columns ``l, l + lanes, l + 2*lanes, ...``: during one MVM the
sequencer walks column group ``g`` over all rows ``i``, every lane multiplying the same input
``x_i`` by its own cell, so a lane needs one memory read and one multiply per cycle and no
adder tree. Integer semantics and memory layout: :mod:`memxbar.protocol.geometry`.

Pipeline (all stages advance together; a full result register stalls them)::

    S0 sequencer -> S1 memory read -> S2 product (DSP) -> S3 accumulate -> result regs -> ADC -> y
"""

from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol import TileConfig

__all__ = ["Tile", "cell_layout", "prog_layout"]


def _index(count):
    """Shape of an index into ``count`` things; never zero bits wide (Verilog cannot say so)."""
    return range(max(count, 2))


def cell_layout(config):
    """One differential pair as stored: ``g_plus`` and ``g_minus`` levels."""
    return data.StructLayout({"g_plus": unsigned(config.g_bits), "g_minus": unsigned(config.g_bits)})


def prog_layout(config):
    """A programming command: write ``cell`` at ``(lane, word)``, or read it back (``write=0``)."""
    return data.StructLayout({
        "write": 1,
        "lane": _index(config.lanes),
        "word": _index(config.words_per_lane),
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
        Programming commands; accepted only while no MVM is in flight (``busy`` low) and no
        read-back is pending. Conductances survive a reset, like a real array.
    readback : Out(stream.Signature(cell_layout(config)))
        One cell per read command.
    x : In(stream.Signature(signed(dac_bits)))
        Input DAC codes, ``rows`` per vector, back to back; two vectors are buffered.
    y : Out(stream.Signature(signed(adc_bits)))
        Output ADC codes, ``cols`` per vector, in column order.
    busy : Out(1)
        An input vector is buffered or an MVM is in flight.
    """

    def __init__(self, config):
        if not isinstance(config, TileConfig):
            raise TypeError(f"config must be a TileConfig, not {config!r}")
        self.config = config
        super().__init__({
            "prog": In(stream.Signature(prog_layout(config))),
            "readback": Out(stream.Signature(cell_layout(config))),
            "x": In(stream.Signature(signed(config.dac_bits))),
            "y": Out(stream.Signature(signed(config.adc_bits))),
            "busy": Out(1),
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
        w_row = Signal(_index(cfg.rows))
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

        # One memory per lane, each word a (G+, G-) pair.
        cell = cell_layout(cfg)
        g_wr, g_rd = [], []
        for lane in range(cfg.lanes):
            g_mem = memory.Memory(shape=cell, depth=cfg.words_per_lane, init=[])
            m.submodules[f"g_mem{lane}"] = g_mem
            g_wr.append(g_mem.write_port())
            g_rd.append(g_mem.read_port())

        advance = Signal()

        # S0: the sequencer walks (group, row) over the bank being read.
        r_bank = Signal()
        group = Signal(_index(cfg.groups))
        row = Signal(_index(cfg.rows))
        word = Signal(_index(cfg.words_per_lane))
        issue = Signal()
        m.d.comb += issue.eq(Mux(r_bank, full[1], full[0]))
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

        # S2: one product per lane; the differential pair is subtracted before the multiply.
        v2, first2, last2, tail2 = Signal(), Signal(), Signal(), Signal()
        prod_shape = signed(cfg.dac_bits + cfg.g_bits + 1)
        products = [Signal(prod_shape, name=f"product{lane}") for lane in range(cfg.lanes)]
        with m.If(advance):
            m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1), tail2.eq(tail1)]
            for lane in range(cfg.lanes):
                pair = g_rd[lane].data
                m.d.sync += products[lane].eq(x_rd.data * (pair.g_plus - pair.g_minus))

        # S3: accumulate; the last row of a group lands the column sums in the result registers.
        accs = [Signal(signed(cfg.acc_width), name=f"acc{lane}") for lane in range(cfg.lanes)]
        results = Array(Signal(signed(cfg.acc_width), name=f"result{lane}") for lane in range(cfg.lanes))
        result_valid = Signal()
        result_last = Signal(_index(cfg.lanes))
        out_index = Signal(_index(cfg.lanes))
        draining_last = Signal()
        m.d.comb += [
            draining_last.eq(self.y.valid & self.y.ready & (out_index == result_last)),
            advance.eq(~(v2 & last2 & result_valid & ~draining_last)),
        ]

        # Output: one column per transfer, the ADC applied at the multiplexer.
        with m.If(self.y.valid & self.y.ready):
            m.d.sync += out_index.eq(out_index + 1)
            with m.If(draining_last):
                m.d.sync += [out_index.eq(0), result_valid.eq(0)]
        selected = results[out_index]
        half = (1 << cfg.adc_shift) >> 1  # 0 when there is no shift
        rounded = (selected + half) >> cfg.adc_shift
        m.d.comb += [
            self.y.valid.eq(result_valid),
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
            with m.If(last2):
                m.d.sync += [
                    result_valid.eq(1),
                    result_last.eq(Mux(tail2, tail_count - 1, cfg.lanes - 1)),
                ]

        busy = Signal()
        m.d.comb += [busy.eq(full.any() | v1 | v2 | result_valid), self.busy.eq(busy)]

        # Programming shares each lane's read port with the sequencer while the tile is idle.
        rb_lane = Signal(_index(cfg.lanes))
        rb_inflight = Signal()
        rb_valid = Signal()
        rb_data = Signal(cell)
        cmd = self.prog.payload
        accept = self.prog.valid & self.prog.ready
        m.d.comb += self.prog.ready.eq(~busy & ~rb_inflight & ~rb_valid)
        for lane in range(cfg.lanes):
            m.d.comb += [
                g_wr[lane].addr.eq(cmd.word),
                g_wr[lane].data.eq(cmd.cell),
                g_wr[lane].en.eq(accept & cmd.write & (cmd.lane == lane)),
                g_rd[lane].addr.eq(Mux(busy, word, cmd.word)),
                g_rd[lane].en.eq(Mux(busy, advance, accept)),
            ]
        m.d.sync += rb_inflight.eq(accept & ~cmd.write)
        with m.If(accept & ~cmd.write):
            m.d.sync += rb_lane.eq(cmd.lane)
        with m.If(rb_inflight):
            m.d.sync += [rb_data.eq(Array(port.data for port in g_rd)[rb_lane]), rb_valid.eq(1)]
        with m.If(self.readback.valid & self.readback.ready):
            m.d.sync += rb_valid.eq(0)
        m.d.comb += [self.readback.valid.eq(rb_valid), self.readback.payload.eq(rb_data)]

        return m
