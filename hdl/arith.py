"""Small sequential arithmetic for rare or slow paths, so the DSPs stay with the MAC lanes."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ISqrt", "SerialMultiplier", "multiplier_signature", "shift_add_product", "times"]


def times(value, constant):
    """``value * constant`` for a non-negative integer constant, as a sum of shifts.

    Yosys maps even a product by a constant onto a DSP block (``synth_ice40 -dsp``), and the
    iCE40UP5K's 8 DSPs are the MAC lanes'; the engine's frame-length arithmetic uses this.
    """
    terms = [value << bit for bit in range(constant.bit_length()) if constant >> bit & 1]
    return sum(terms[1:], terms[0]) if terms else value & 0


def shift_add_product(a, b):
    """``a * b`` of unsigned values as a sum of shifted partial products.

    Synthesis maps ``*`` onto DSP blocks; this form stays in logic, for products too narrow
    or too many to deserve one.
    """
    return sum(Mux(b[i], a << i, 0) for i in range(len(b)))


def multiplier_signature(a_width, b_width, shift_max=0):
    """A :class:`SerialMultiplier`'s ports; a user's port is ``In(multiplier_signature(...))``.

    With ``shift_max``, a ``shift`` port: the product is ``(a * b) << shift``.
    """
    ports = {"start": In(1), "a": In(signed(a_width)), "b": In(signed(b_width)),
             "busy": Out(1), "product": Out(signed(a_width + b_width + shift_max))}
    if shift_max:
        ports["shift"] = In(range(shift_max + 1))
    return wiring.Signature(ports)


class SerialMultiplier(wiring.Component):
    """``(a * b) << shift`` of signed operands by shift and add: one bit of ``a`` per cycle.

    Two's complement throughout: ``a``'s bits are walked LSB first with an arithmetic shift,
    and once only its sign remains (``-1``) the shifted ``b`` is subtracted instead of added.
    So there is no ``abs()`` of either operand and no negation of the product (on the iCE40
    those were about half of the multiplier's logic). ``shift`` (with ``shift_max``) moves
    ``b`` left one bit per cycle before the walk: a variable shift for the price of a counter,
    where a barrel shifter of the product cost 270 LUT4 in the tile's noise stage.

    ``busy`` rises the cycle after ``start`` and falls once ``product`` holds the result; the
    cycles taken are ``shift`` plus the bits of ``a`` above its sign (none when ``b`` is 0).
    """

    def __init__(self, a_width, b_width, shift_max=0):
        self.a_width, self.b_width, self.shift_max = a_width, b_width, shift_max
        super().__init__(multiplier_signature(a_width, b_width, shift_max))

    def elaborate(self, platform):
        m = Module()
        width = self.a_width + self.b_width + self.shift_max
        rest = Signal(signed(self.a_width))  # the bits of a still to walk (arithmetic shift)
        addend = Signal(signed(width))       # b << (shift + bits walked)
        total = Signal(signed(width))
        pending = Signal(range(self.shift_max + 1))  # shifts of b still to make before the walk
        sign_only = rest == -1               # what is left of a is -1: subtract, and finish
        # one adder for both: total - addend is total + ~addend + 1
        step = Signal(signed(width))
        m.d.comb += step.eq(total + (addend ^ sign_only.replicate(width)) + sign_only)
        zero = self.b == 0
        with m.If(self.start):
            m.d.sync += [rest.eq(Mux(zero, 0, self.a)), addend.eq(self.b), total.eq(0)]
            if self.shift_max:
                m.d.sync += pending.eq(Mux(zero, 0, self.shift))
        with m.Elif(pending != 0):
            m.d.sync += [pending.eq(pending - 1), addend.eq(addend << 1)]
        with m.Elif(rest != 0):
            with m.If(rest[0]):
                m.d.sync += total.eq(step)
            m.d.sync += [rest.eq(Mux(sign_only, 0, rest >> 1)), addend.eq(addend << 1)]
        m.d.comb += [self.busy.eq((rest != 0) | (pending != 0)), self.product.eq(total)]
        return m


class ISqrt(wiring.Component):
    """Floor square root of an unsigned ``width``-bit value, one result bit per cycle.

    ``busy`` rises the cycle after ``start`` and falls once ``root`` holds ``isqrt(value)``.
    """

    def __init__(self, width):
        self.width = width + (width & 1)
        super().__init__({"start": In(1), "value": In(unsigned(width)), "busy": Out(1),
                          "root": Out(unsigned(self.width // 2))})

    def elaborate(self, platform):
        m = Module()
        half = self.width // 2
        pending = Signal(self.width)
        remainder = Signal(half + 2)
        count = Signal(range(half + 1))
        with m.If(self.start):
            m.d.sync += [pending.eq(self.value), remainder.eq(0), self.root.eq(0), count.eq(half)]
        with m.Elif(count != 0):
            widened = Signal(half + 2)
            trial = Signal(half + 2)
            m.d.comb += [widened.eq((remainder << 2) | pending[-2:]), trial.eq((self.root << 2) | 1)]
            fits = widened >= trial
            m.d.sync += [pending.eq(pending << 2), count.eq(count - 1),
                         remainder.eq(Mux(fits, widened - trial, widened)),
                         self.root.eq((self.root << 1) | fits)]
        m.d.comb += self.busy.eq(count != 0)
        return m
