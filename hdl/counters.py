"""The device's event counters in one small memory, updated through one shared 16-bit adder.

Held as registers, the ``Counters`` fields cost a 48-bit incrementer each and a 42:1 byte
multiplexer for the COUNTERS reply: about 700 iCE40 logic cells. Here the counts live in a
memory of 16-bit words in the reply's byte order (so the reply reads it by address), and
each event source only adds into a short *pending* register; a sequencer visits the counters
in turn and adds each one's pending amount into its words, low word first, carrying into
the next. A full round takes two cycles a word, so pending registers stay short.
"""

from amaranth import Array, Cat, Const, Module, Shape, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..protocol.frames import Counters

__all__ = ["CounterBank", "counter_words"]

WORD = 16


def counter_words():
    """``{field: (first word, words)}`` of :class:`~memxbar.protocol.frames.Counters` in 16-bit
    words, in wire order."""
    words, first = {}, 0
    for name, field in Counters.as_shape():
        width = Shape.cast(field.shape).width
        assert width % WORD == 0, f"Counters.{name} is not a whole number of {WORD}-bit words"
        words[name] = (first, width // WORD)
        first += width // WORD
    return words


class CounterBank(wiring.Component):
    """Event counters with one adder.

    Parameters
    ----------
    increments : dict of str to int
        The width of each counter's increment input (``1`` for an event strobe), by
        ``Counters`` field; ``clock`` counts every cycle by itself and takes none.

    Attributes
    ----------
    add_<name> : In(width)
        The amount to add this cycle.
    freeze : In(1)
        Asks for a snapshot: once every pending amount but the clock's is in memory,
        ``frozen`` rises and the sequencer pauses while ``freeze`` stays high; amounts that
        arrive meanwhile wait in their pending registers.
    read_addr, read_data : In, Out
        The snapshot's 16-bit words, one cycle after the address (while ``frozen``).
    clear : In(1)
        Zeroes every counter and pending amount (RESET), as a reset does; takes one cycle a
        word.
    """

    def __init__(self, increments):
        self.layout = counter_words()
        self.depth = sum(words for _, words in self.layout.values())
        if set(increments) != set(self.layout) - {"clock"}:
            raise ValueError(f"increments must name every counter but clock, not {sorted(increments)}")
        self.increments = increments
        signature = {f"add_{name}": In(width) for name, width in increments.items()}
        super().__init__({
            **signature,
            "freeze": In(1),
            "frozen": Out(1),
            "read_addr": In(range(self.depth)),
            "read_data": Out(WORD),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        names = list(self.layout)
        m.submodules.words = words = memory.Memory(shape=WORD, depth=self.depth, init=[])
        wr, rd = words.write_port(), words.read_port()

        # pending amounts: a round is 2 cycles a word, and a COUNTERS reply freezes for about
        # one cycle a byte, so 12 bits cover any burst of strobes; RUN and WRITE add their
        # whole batch or cell count (16 bits) at once, twice at most before their turn
        widths = {"clock": 12, **{name: max(12, width + 2) for name, width in self.increments.items()}}
        pending = {name: Signal(widths[name], name=f"pending_{name}") for name in names}
        arriving = {"clock": Const(1), **{name: getattr(self, f"add_{name}") for name in self.increments}}

        counter = Signal(range(len(names)))
        word = Signal(range(max(words for _, words in self.layout.values())))
        taken = Signal(max(widths.values()))  # the visited counter's amount, shifted one word per word
        carry = Signal()
        first_word = Array(Const(self.layout[name][0], range(self.depth)) for name in names)
        word_count = Array(Const(self.layout[name][1], range(5)) for name in names)
        pending_of = Array(pending[name] for name in names)
        addr = Signal(range(self.depth))
        m.d.comb += addr.eq(first_word[counter] + word)

        # a counter whose turn starts hands its pending amount over (and keeps what arrives now)
        # (and a clear drops every pending amount at once; the memory follows in CLEAR)
        take = Signal()
        for index, name in enumerate(names):
            with m.If(self.clear | (take & (counter == index))):
                m.d.sync += pending[name].eq(arriving[name])
            with m.Else():
                m.d.sync += pending[name].eq(pending[name] + arriving[name])

        settled = Signal()
        m.d.comb += settled.eq(~Cat(*(pending[name] != 0 for name in names if name != "clock")).any())
        m.d.comb += [rd.addr.eq(addr), self.read_data.eq(rd.data)]
        clear_addr = Signal(range(self.depth + 1))
        clear_asked = Signal()  # the memory's clear waits for the counter being updated to finish
        with m.If(self.clear):
            m.d.sync += clear_asked.eq(1)

        with m.FSM():
            # first, so a reset clears too: block RAM keeps its contents through a reset
            with m.State("CLEAR"):
                m.d.comb += [wr.addr.eq(clear_addr), wr.data.eq(0), wr.en.eq(1)]
                m.d.sync += clear_addr.eq(clear_addr + 1)
                with m.If(clear_addr == self.depth - 1):
                    m.d.sync += counter.eq(0)
                    m.next = "TAKE"
            with m.State("TAKE"):
                with m.If(self.clear | clear_asked):
                    m.d.sync += [clear_addr.eq(0), clear_asked.eq(0)]
                    m.next = "CLEAR"
                with m.Elif(self.freeze & settled):  # between counters: every count is in memory
                    m.d.sync += self.frozen.eq(1)
                    m.next = "FROZEN"
                with m.Else():
                    m.d.comb += take.eq(1)
                    m.d.sync += [taken.eq(pending_of[counter]), carry.eq(0), word.eq(0)]
                    m.next = "READ"
            with m.State("READ"):  # the word's old value arrives next cycle
                m.next = "WRITE"
            with m.State("WRITE"):
                total = Signal(WORD + 1)
                m.d.comb += [total.eq(rd.data + taken[:WORD] + carry),
                             wr.addr.eq(addr), wr.data.eq(total[:WORD]), wr.en.eq(1)]
                m.d.sync += [carry.eq(total[WORD]), taken.eq(taken >> WORD), word.eq(word + 1)]
                with m.If(word == word_count[counter] - 1):
                    m.d.sync += [word.eq(0), counter.eq((counter + 1) % len(names))]
                    m.next = "TAKE"
                with m.Else():
                    m.next = "READ"
            with m.State("FROZEN"):
                m.d.comb += rd.addr.eq(self.read_addr)
                with m.If(~self.freeze):
                    m.d.sync += self.frozen.eq(0)
                    m.next = "TAKE"
        return m
