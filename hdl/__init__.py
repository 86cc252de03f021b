"""memxbar gateware (Amaranth HDL): the crossbar tile and, later, noise, link and top."""

from .tile import Tile, cell_layout, prog_layout

__all__ = ["Tile", "cell_layout", "prog_layout"]
