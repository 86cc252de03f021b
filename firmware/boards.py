"""The boards memxbar builds for: part, clock, UART, and the tile sized to the part.

Each entry is what a user flashes with ``memxbar build --board NAME``. The tile sizes are the
largest that fit the part and meet timing with margin, as measured by the builds recorded in
the README (board table); ``--rows/--cols/--lanes`` override them.
"""

import dataclasses
from dataclasses import dataclass

from ..backends import url_query
from ..protocol import TileConfig

__all__ = ["BOARDS", "Board", "board"]


@dataclass(frozen=True)
class Board:
    """One open FPGA board.

    Parameters
    ----------
    name : str
        What ``--board`` takes.
    title : str
    platform : str
        ``module:Class`` of its amaranth-boards platform, imported only when building.
    family : {"ice40", "ecp5", "gowin"}
        Which toolchain builds it.
    part : str
        The FPGA, as the board's platform names it.
    source_hz : int
        The board's oscillator.
    clock_hz : int
        The design clock; a PLL makes it when it differs from ``source_hz``.
    baud : int
        The UART's rate; ``clock_hz / baud`` must be an integer (the UART's divisor).
    config : TileConfig
    max_payload : int
        Largest frame payload (the frame buffers' size).
    memory : str
        Where the memories go, for the README and the summary.
    bridge : str
        The board's USB-UART bridge.
    loader : tuple
        ``(openFPGALoader board name or None, iceprog usable)``, see :mod:`.flash`.
    """

    name: str
    title: str
    platform: str
    family: str
    part: str
    source_hz: int
    clock_hz: int
    baud: int
    config: TileConfig
    max_payload: int
    memory: str
    bridge: str
    loader: tuple

    def __post_init__(self):
        if self.clock_hz % self.baud:
            raise ValueError(f"{self.name}: clock {self.clock_hz} Hz is not a multiple of {self.baud} baud")

    @property
    def divisor(self):
        """Clock cycles per UART bit."""
        return self.clock_hz // self.baud

    @property
    def pll(self):
        return self.clock_hz != self.source_hz

    @property
    def bitstream(self):
        """The bitstream's file name in the build folder."""
        return {"ice40": "memxbar.bin", "ecp5": "memxbar.bit", "gowin": "memxbar.fs"}[self.family]

    @property
    def peak_macs(self):
        """Multiply-accumulates per second while the tile computes: one per lane per clock."""
        return self.config.lanes * self.clock_hz

    @property
    def sim_url(self):
        """``sim://`` of this board's exact top: same tile, UART pins, divisor and frame buffers."""
        return (f"sim://?{url_query(self.config)}&divisor={self.divisor}&max_payload={self.max_payload}"
                "&top=pins")

    def with_clock(self, clock_hz):
        """This board at another design clock (a PLL makes it; the baud rate stays)."""
        return dataclasses.replace(self, clock_hz=clock_hz)

    def with_config(self, **fields):
        """This board with a tile of other geometry (``rows``, ``cols``, ``lanes``, ...)."""
        merged = {**self.config.as_dict(), "acc_width": None, "adc_shift": None, **fields}
        return dataclasses.replace(self, config=TileConfig(**merged))


# The iCE40UP5K (5280 LC, 8 DSP, 30 EBR): the 8 DSPs are the 8 MAC lanes of an ideal tile.
# Its physics build (frozen read noise) packs into 7,426 of 5,280 LCs and 32 of 30 EBR (README,
# Boards): ideal until it fits.
_UP5K_TILE = TileConfig(rows=64, cols=64, lanes=8, physics=False)
_ICE40_MEMORY = "lane memories, frame buffers: EBR"

BOARDS = {board.name: board for board in [
    Board("icebreaker", "1BitSquared iCEBreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform",
          "ice40", "iCE40UP5K-SG48", 12_000_000, 12_000_000, 3_000_000, _UP5K_TILE, 512,
          _ICE40_MEMORY, "FT2232H", ("ice40_generic", True)),
    Board("icesugar", "MuseLab iCESugar v1.5", "amaranth_boards.icesugar:ICESugarPlatform",
          "ice40", "iCE40UP5K-SG48", 12_000_000, 12_000_000, 1_000_000, _UP5K_TILE, 512,
          _ICE40_MEMORY, "iCELink (CDC, measure before relying on > 230400 baud)", ("icesugar", False)),
    # ECP5: 30 MHz (a PLL from 25 MHz, 3 Mbaud = 30 MHz / 10) because the device engine's
    # single-cycle datapaths reach 43 MHz on the 12F. On the 85F a 256x256 physics tile's cell
    # state fills 201 of 208 block RAMs and does not route (README); 256x192 with frozen read
    # noise routes at 43.1 MHz with 169 of them.
    *(Board(f"ulx3s-{size}f", f"Radiona ULX3S {size}F", f"amaranth_boards.ulx3s:ULX3S_{size}F_Platform",
            "ecp5", f"LFE5U-{size}F-6BG381C", 25_000_000, 30_000_000, 3_000_000, tile, 512,
            "all in EBR (DP16KD)", "FT231X", ("ulx3s", False))
      for size, tile in [
          ("12", TileConfig(rows=64, cols=64, lanes=8)),
          ("25", TileConfig(rows=64, cols=128, lanes=16)),
          ("45", TileConfig(rows=128, cols=128, lanes=16)),
          ("85", TileConfig(rows=256, cols=192, lanes=64, per_read_noise=False)),
      ]),
    # The Tang Nano 9K's physics tile has frozen read noise: per-read variance codes would need
    # 3 more BSRAM than its 26. At 77 % of its LUTs routing is seed-sensitive (README, Boards).
    Board("tangnano9k", "Sipeed Tang Nano 9K", "amaranth_boards.tang_nano_9k:TangNano9kPlatform",
          "gowin", "GW1NR-LV9QN88PC6/I5", 27_000_000, 27_000_000, 3_000_000,
          TileConfig(rows=64, cols=64, lanes=8, per_read_noise=False), 512,
          "all in BSRAM", "BL702", ("tangnano9k", False)),
]}


def board(name):
    """The registry entry called ``name``, or a ValueError listing the known ones."""
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}")
    return BOARDS[name]
