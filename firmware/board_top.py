"""A board's top level: its oscillator (through a PLL where the board needs one), its UART
pins, and the same :class:`memxbar.hdl.Top` that ``sim://`` simulates pin for pin."""

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ..hdl.top import Top

__all__ = ["BoardTop", "ecp5_pll_dividers"]


def ecp5_pll_dividers(source_hz, clock_hz):
    """EHXPLLL dividers making ``clock_hz`` exactly from ``source_hz``.

    ``clock = source * CLKFB_DIV / CLKI_DIV`` (feedback from CLKOP), with the phase detector at
    >= 3.125 MHz and the VCO (``clock * CLKOP_DIV``) in 400-800 MHz (ECP5 sysCLOCK guide,
    TN1263). Returns ``(clki_div, clkfb_div, clkop_div)``; ValueError if no exact setting exists.
    """
    for clki in range(1, 129):
        pfd = source_hz / clki
        if pfd < 3.125e6:
            break
        for clkfb in range(1, 81):
            if source_hz * clkfb != clock_hz * clki:
                continue
            for clkop in range(1, 129):
                if 400e6 <= clock_hz * clkop <= 800e6:
                    return clki, clkfb, clkop
    raise ValueError(f"no ECP5 PLL setting makes exactly {clock_hz} Hz from {source_hz} Hz")


class BoardTop(Elaboratable):
    """The bitstream's top: clocking, reset, UART pins and the memxbar device.

    Parameters
    ----------
    board : memxbar.firmware.Board
    """

    def __init__(self, board):
        self.board = board
        self.device = Top(board.config, board.divisor, max_payload=board.max_payload)

    def elaborate(self, platform):
        board = self.board
        m = Module()
        if board.pll:
            self._pll_domain(m, platform)
        # else the platform makes `sync` from its default clock, with its power-on reset
        m.submodules.device = device = self.device
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_pin = rx_pin = io.Buffer("i", uart.rx)
        m.submodules.tx_pin = tx_pin = io.Buffer("o", uart.tx)
        m.d.comb += [device.rx.eq(rx_pin.i), tx_pin.o.eq(device.tx)]
        return m

    def _pll_domain(self, m, platform):
        board = self.board
        if board.family != "ecp5":
            raise ValueError(f"{board.name}: no PLL support for the {board.family} family")
        clki, clkfb, clkop = ecp5_pll_dividers(board.source_hz, board.clock_hz)
        m.submodules.clock_pin = clock_pin = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        source = clock_pin.i
        m.domains.sync = ClockDomain("sync")
        locked, clock = Signal(), Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_FEEDBK_PATH="CLKOP",
            p_CLKI_DIV=clki, p_CLKFB_DIV=clkfb, p_CLKOP_DIV=clkop, p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_CPHASE=max(0, clkop // 2 - 1),  # as ecppll sets it p_CLKOP_FPHASE=0,
            a_FREQUENCY_PIN_CLKI=f"{board.source_hz / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{board.clock_hz / 1e6:g}",
            i_CLKI=source, i_CLKFB=clock, i_RST=0, i_STDBY=0,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clock, o_LOCK=locked,
        )
        m.d.comb += ClockSignal("sync").eq(clock)
        platform.add_clock_constraint(clock, board.clock_hz)
        # the design stays in reset until the PLL has locked
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
