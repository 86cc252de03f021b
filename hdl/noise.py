"""Seeded Gaussian noise in gateware: Threefry-2x32-20 seeds xoshiro128++ streams.

The algorithms, keys and the integer Gaussian are specified in :mod:`memxbar.protocol.physics`
and mirrored by :mod:`memxbar.noise`. Threefry runs on one adder (:attr:`Threefry.CYCLES` a
block), only when a stream is (re)seeded; xoshiro128++ takes one step per cycle and a
Gaussian takes three steps, so a source delivers one Gaussian every three cycles. Nothing
here multiplies: adds, rotations, XORs and a popcount, cheap on an iCE40.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol import physics
from ..protocol.physics import THREEFRY_PARITY, THREEFRY_ROTATIONS

__all__ = ["GaussianSource", "Threefry", "gaussian_source_signature"]


def _rotl(value, amount):
    return Cat(value[32 - amount:], value[:32 - amount])


def _popcount(value):
    return sum(value[i] for i in range(len(value)))


# Rotations by R are made of steps by 8 and by 1 (R // 8 and R % 8 of them), each a 2:1 choice
# per bit, instead of an 8:1 rotation mux: the block takes longer, the core is a third the size.
_ROTATION_STEPS = tuple((amount // 8, amount % 8) for amount in THREEFRY_ROTATIONS)
_INJECTIONS = 5  # after rounds 3, 7, 11, 15, 19


class Threefry(wiring.Component):
    """Threefry-2x32 with 20 rounds on one 32-bit adder, :attr:`CYCLES` cycles a block.

    Threefry only seeds streams (two blocks a seed), so it trades speed for area: every
    addition of the algorithm (the counter plus key, the round's ``x0 + x1``, the key
    injections) takes its own cycle on the same adder, and each rotation is stepped by 8 and
    by 1 bits, the round's XOR folded into its last step. A noisy MVM's seed runs during the
    MVM's MACs; a programmed cell's seed adds its two blocks to the cell.

    Attributes
    ----------
    start : In(1)
        Begin a block with ``key`` and ``counter`` (taken this cycle), abandoning any block
        in progress: a block always belongs to the last start.
    rekey : In(1)
        With ``start``: reuse the key of the previous block (``key0``, ``key1`` ignored).
    key0, key1, counter0, counter1 : In(32)
    busy : Out(1)
    out0, out1 : Out(32)
        The block; valid once ``busy`` falls.
    """

    #: Cycles from ``start`` to the fall of ``busy``: two for counter plus key, per round one
    #: addition and its rotation steps, three per key injection.
    CYCLES = 2 + sum(1 + sum(_ROTATION_STEPS[r % 8]) for r in range(20)) + 3 * _INJECTIONS

    start: In(1)
    rekey: In(1)
    key0: In(32)
    key1: In(32)
    counter0: In(32)
    counter1: In(32)
    busy: Out(1)
    out0: Out(32)
    out1: Out(32)

    def elaborate(self, platform):
        m = Module()
        k0, k1 = Signal(32), Signal(32)
        x0, x1 = self.out0, self.out1
        rnd = Signal(range(21))
        n = Signal(3)  # the injection's number, 1..5
        m.d.comb += n.eq(rnd[2:] + 1)
        eights, ones = Signal(2), Signal(3)  # rotation steps left in this round

        # The one adder: x0 or x1 plus x1, a key word or n. The third key word is computed,
        # not stored: with the choice of word it is one LUT4 a bit.
        into_x1, add_x1, add_n = Signal(), Signal(), Signal()
        word = Signal(2)
        key_word = Signal(32)
        with m.Switch(word):
            for index, value in enumerate((k0, k1, k0 ^ k1 ^ THREEFRY_PARITY)):
                with m.Case(index):
                    m.d.comb += key_word.eq(value)
        total = Signal(32)
        m.d.comb += total.eq(Mux(into_x1, x1, x0) + Mux(add_x1, x1, Mux(add_n, n, key_word)))

        IDLE, KEY0, KEY1, MIX, ROTATE, INJECT0, INJECT1, INJECT2 = range(8)
        state = Signal(range(8))
        m.d.comb += self.busy.eq(state != IDLE)
        with m.Switch(state):
            with m.Case(KEY0):  # x0 = counter0 + k0
                m.d.comb += word.eq(0)
                m.d.sync += [x0.eq(total), state.eq(KEY1)]
            with m.Case(KEY1):  # x1 = counter1 + k1
                m.d.comb += [into_x1.eq(1), word.eq(1)]
                m.d.sync += [x1.eq(total), state.eq(MIX)]
            with m.Case(MIX):  # x0 += x1, then rotate x1
                m.d.comb += add_x1.eq(1)
                m.d.sync += [x0.eq(total), state.eq(ROTATE)]
                with m.Switch(rnd[:3]):
                    for r, (by_eight, by_one) in enumerate(_ROTATION_STEPS):
                        with m.Case(r):
                            m.d.sync += [eights.eq(by_eight), ones.eq(by_one)]
            with m.Case(ROTATE):  # x1 = rotl(x1, R) ^ x0, one step a cycle
                last = (eights + ones) == 1
                step = Mux(eights != 0, _rotl(x1, 8), _rotl(x1, 1))
                m.d.sync += x1.eq(step ^ Mux(last, x0, 0))
                with m.If(eights != 0):
                    m.d.sync += eights.eq(eights - 1)
                with m.Else():
                    m.d.sync += ones.eq(ones - 1)
                with m.If(last):
                    with m.If(rnd[:2] == 3):
                        m.d.sync += state.eq(INJECT0)
                    with m.Else():
                        m.d.sync += [rnd.eq(rnd + 1), state.eq(MIX)]
            with m.Case(INJECT0):  # x0 += ks[n % 3]
                m.d.comb += word.eq(Mux(n == 3, 0, Mux((n == 1) | (n == 4), 1, 2)))
                m.d.sync += [x0.eq(total), state.eq(INJECT1)]
            with m.Case(INJECT1):  # x1 += ks[(n + 1) % 3]
                m.d.comb += [into_x1.eq(1), word.eq(Mux((n == 2) | (n == 5), 0, Mux(n == 3, 1, 2)))]
                m.d.sync += [x1.eq(total), state.eq(INJECT2)]
            with m.Case(INJECT2):  # x1 += n
                m.d.comb += [into_x1.eq(1), add_n.eq(1)]
                m.d.sync += [x1.eq(total), rnd.eq(rnd + 1)]
                m.d.sync += state.eq(Mux(rnd == 19, IDLE, MIX))
        with m.If(self.start):  # last, so it wins over any block in progress
            with m.If(~self.rekey):
                m.d.sync += [k0.eq(self.key0), k1.eq(self.key1)]
            m.d.sync += [x0.eq(self.counter0), x1.eq(self.counter1), rnd.eq(0), state.eq(KEY0)]
        return m


def gaussian_source_signature():
    """A :class:`GaussianSource`'s ports; a user's port is ``In(gaussian_source_signature())``."""
    return wiring.Signature({
        "seed": In(1), "key0": In(32), "key1": In(32), "counter0": In(32), "counter1": In(32),
        "seeding": Out(1), "block_valid": Out(1), "block0": Out(32), "block1": Out(32),
        "z": Out(stream.Signature(signed(physics.Z_BITS))),
    })


class GaussianSource(wiring.Component):
    """A xoshiro128++ stream seeded by two Threefry blocks, as integer Gaussians ``z``.

    Attributes
    ----------
    seed : In(1)
        Restart the stream from ``key``/``counter``, taken with this pulse: nothing needs to be
        held, and a seed while seeding restarts from the new key (a stream always belongs to
        the last seed; any unconsumed ``z`` is lost).
    key0, key1, counter0, counter1 : In(32)
        Read only in the cycle of ``seed``.
    seeding : Out(1)
    block_valid : Out(1)
        One cycle after the seed's first Threefry block: ``block0``, ``block1`` hold it (the
        random words of ``STUCK``, which are a plain block, not a stream).
    block0, block1 : Out(32)
    z : Out(stream.Signature(signed(Z_BITS)))
        Gaussians in stream order, standard deviation ``Z_SIGMA``.
    """

    def __init__(self):
        super().__init__(gaussian_source_signature())

    def elaborate(self, platform):
        m = Module()
        m.submodules.threefry = threefry = Threefry()
        counter = [Signal(32, name="counter0"), Signal(32, name="counter1")]  # for the second block

        s = [Signal(32, name=f"s{i}") for i in range(4)]
        output = Signal(32)
        m.d.comb += output.eq(_rotl((s[0] + s[3])[:32], 7) + s[0])
        t = Signal(32)
        m.d.comb += t.eq(s[1] << 9)
        s2 = s[2] ^ s[0]
        s3 = s[3] ^ s[1]
        s1 = s[1] ^ s2
        s0 = s[0] ^ s3
        step = Signal()

        # outputs 0 .. counted-1 are counted, the last one dithers
        counted = physics.BINOMIAL_BITS // 32
        dither_bits = physics.DITHER_BITS
        phase = Signal(range(counted + 1))
        ones = Signal(range(physics.BINOMIAL_BITS + 1))
        with m.If(self.z.valid & self.z.ready):  # before the step: a new z may land this cycle
            m.d.sync += self.z.valid.eq(0)
        with m.If(step):
            m.d.sync += [s[0].eq(s0), s[1].eq(s1), s[2].eq(s2 ^ t), s[3].eq(_rotl(s3, 11)),
                         phase.eq(Mux(phase == counted, 0, phase + 1))]
            with m.If(phase == 0):
                m.d.sync += ones.eq(_popcount(output))
            with m.Elif(phase < counted):
                m.d.sync += ones.eq(ones + _popcount(output))
            with m.Else():
                centred = Signal(signed(len(ones) + 1))
                dither = Signal(signed(dither_bits + 2))
                m.d.comb += [centred.eq(ones - physics.BINOMIAL_BITS // 2),
                             dither.eq(Cat(Const(1, 1), output[:dither_bits]) - (1 << dither_bits))]
                m.d.sync += [self.z.payload.eq((centred << (dither_bits + 1)) + dither), self.z.valid.eq(1)]

        # IDLE until the first seed; two Threefry blocks fill the state; then RUN
        IDLE, WAIT0, WAIT1, RUN = range(4)
        state = Signal(range(4))
        with m.Switch(state):
            with m.Case(WAIT0), m.If(~threefry.busy):
                m.d.comb += self.block_valid.eq(~self.seed)
                m.d.sync += [s[0].eq(threefry.out0), s[1].eq(threefry.out1), state.eq(WAIT1)]
                m.d.comb += [threefry.start.eq(1), threefry.rekey.eq(1), threefry.counter0.eq(counter[0]),
                             threefry.counter1.eq(counter[1] | (1 << 31))]
            with m.Case(WAIT1), m.If(~threefry.busy):
                m.d.sync += [s[2].eq(threefry.out0), s[3].eq(threefry.out1), state.eq(RUN)]
            with m.Case(RUN):
                # step while the output register is free or being emptied
                m.d.comb += step.eq(~self.z.valid | self.z.ready | (phase != counted))
        with m.If(self.seed):  # last, so it wins over the block handover above
            m.d.comb += [threefry.start.eq(1), threefry.rekey.eq(0),
                         threefry.key0.eq(self.key0), threefry.key1.eq(self.key1),
                         threefry.counter0.eq(self.counter0), threefry.counter1.eq(self.counter1)]
            m.d.sync += [counter[0].eq(self.counter0), counter[1].eq(self.counter1),
                         self.z.valid.eq(0), phase.eq(0), state.eq(WAIT0)]
        m.d.comb += [self.seeding.eq((state != RUN) & (state != IDLE)),
                     self.block0.eq(threefry.out0), self.block1.eq(threefry.out1)]
        return m
