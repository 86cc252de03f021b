"""Seeded Gaussian noise in gateware: Threefry-2x32-20 seeds xoshiro128++ streams.

The algorithms, keys and the integer Gaussian are specified in :mod:`memxbar.protocol.physics`
and mirrored by :mod:`memxbar.noise`. Threefry runs one round per cycle (about 21 cycles a
block), only when a stream is (re)seeded; xoshiro128++ takes one step per cycle and a
Gaussian takes three steps, so a source delivers one Gaussian every three cycles. Nothing
here multiplies: adds, rotations, XORs and a popcount, cheap on an iCE40.
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol import physics
from ..protocol.physics import THREEFRY_PARITY, THREEFRY_ROTATIONS

__all__ = ["GaussianSource", "Threefry", "gaussian_source_signature"]


def _rotl(value, amount):
    return Cat(value[32 - amount:], value[:32 - amount])


def _popcount(value):
    return sum(value[i] for i in range(len(value)))


class Threefry(wiring.Component):
    """Threefry-2x32 with 20 rounds, one round per cycle.

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
        ks = Array(Signal(32, name=f"ks{i}") for i in range(3))
        x0, x1 = self.out0, self.out1
        rnd = Signal(range(20))
        with m.If(self.start):
            key0 = Mux(self.rekey, ks[0], self.key0)
            key1 = Mux(self.rekey, ks[1], self.key1)
            m.d.sync += [
                ks[0].eq(key0), ks[1].eq(key1), ks[2].eq(key0 ^ key1 ^ THREEFRY_PARITY),
                x0.eq(key0 + self.counter0), x1.eq(key1 + self.counter1),
                rnd.eq(0), self.busy.eq(1),
            ]
        with m.Elif(self.busy):
            mixed0 = Signal(32)
            mixed1 = Signal(32)
            rotated = Signal(32)
            with m.Switch(rnd[:3]):
                for r, amount in enumerate(THREEFRY_ROTATIONS):
                    with m.Case(r):
                        m.d.comb += rotated.eq(_rotl(x1, amount))
            m.d.comb += [mixed0.eq(x0 + x1), mixed1.eq(rotated ^ mixed0)]
            m.d.sync += [x0.eq(mixed0), x1.eq(mixed1), rnd.eq(rnd + 1)]
            with m.If(rnd[:2] == 3):  # key injection after every fourth round
                n = Signal(3)
                m.d.comb += n.eq(rnd[2:] + 1)
                first = Mux(n == 3, 0, Mux((n == 1) | (n == 4), 1, 2))   # n % 3
                second = Mux(n == 2, 0, Mux((n == 3), 1, Mux(n == 5, 0, 2)))  # (n + 1) % 3
                m.d.sync += [x0.eq(mixed0 + ks[first]), x1.eq(mixed1 + ks[second] + n)]
            with m.If(rnd == 19):
                m.d.sync += self.busy.eq(0)
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
