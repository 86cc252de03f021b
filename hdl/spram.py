"""The iCE40UP's single-port RAMs (SB_SPRAM256KA, 16K x 16 each), and a model elsewhere.

The UP5K has four of them (256 kbit each, as much as its 30 block RAMs together) and yosys
does not infer them from a ``lib.memory`` unless ``synth_ice40 -spram`` finds a memory it
matches; :class:`WideSPRAM` instantiates them explicitly on an iCE40UP platform, so what a
build places does not depend on inference. Everywhere else (``amaranth.sim``, Verilator, the
ECP5 and Gowin builds) it is a ``lib.memory.Memory`` with the same single-port behaviour.

An SPRAM has no power-up contents: whoever uses one loads it at reset.
"""

from amaranth import ClockSignal, Instance, Module, Shape, Signal, Value
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.vendor import SiliconBluePlatform

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "WideSPRAM", "has_spram"]

SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


def has_spram(platform):
    """Whether ``platform`` is an iCE40UP part (it has SB_SPRAM256KA blocks)."""
    return isinstance(platform, SiliconBluePlatform) and platform.device.startswith("iCE40UP")


class WideSPRAM(wiring.Component):
    """A single-port RAM of ``depth`` words of ``shape``, side by side SPRAMs on an iCE40UP.

    Each cycle either writes ``write_data`` at ``addr`` (``write_en``) or reads ``addr``:
    ``read_data`` shows the word read one cycle later and holds through writes (the
    primitive's DATAOUT behaviour, kept by the model).

    Parameters
    ----------
    shape : shape-castable
    depth : int
        At most ``SPRAM_DEPTH`` on an iCE40UP (checked when elaborated for one); any depth
        elsewhere, where a block RAM holds it.
    """

    def __init__(self, shape, depth):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        self.shape, self.depth = shape, depth
        self.blocks = -(-Shape.cast(shape).width // SPRAM_WIDTH)
        super().__init__({"addr": In(range(depth)), "write_en": In(1), "write_data": In(shape),
                          "read_data": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.shape).width
        write_bits, read_bits = Value.cast(self.write_data), Value.cast(self.read_data)
        if has_spram(platform):
            if self.depth > SPRAM_DEPTH:
                raise ValueError(f"an SB_SPRAM256KA holds {SPRAM_DEPTH} words; {self.depth} do not fit")
            for block in range(self.blocks):
                low, high = block * SPRAM_WIDTH, min(width, (block + 1) * SPRAM_WIDTH)
                # the primitive's ports at their full widths (14-bit address, 16-bit data)
                addr = Signal(range(SPRAM_DEPTH), name=f"spram{block}_addr")
                din = Signal(SPRAM_WIDTH, name=f"spram{block}_in")
                out = Signal(SPRAM_WIDTH, name=f"spram{block}_out")
                m.d.comb += [addr.eq(self.addr), din.eq(write_bits[low:high])]
                m.submodules[f"spram{block}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=addr, i_DATAIN=din, i_MASKWREN=0b1111,
                    i_WREN=self.write_en, i_CHIPSELECT=1, i_CLOCK=ClockSignal(),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,  # POWEROFF is active low
                    o_DATAOUT=out)
                m.d.comb += read_bits[low:high].eq(out[:high - low])
        else:
            m.submodules.mem = mem = memory.Memory(shape=width, depth=self.depth, init=[])
            write, read = mem.write_port(), mem.read_port()
            m.d.comb += [write.addr.eq(self.addr), write.data.eq(write_bits), write.en.eq(self.write_en),
                         read.addr.eq(self.addr), read.en.eq(~self.write_en),
                         read_bits.eq(read.data)]
        return m
