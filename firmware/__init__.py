"""Open-board bitstreams: the board registry, board tops, builds (``memxbar build``) and flashing."""

from .boards import BOARDS, Board, board

__all__ = ["BOARDS", "Board", "board"]
