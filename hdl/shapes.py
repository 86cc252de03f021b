"""Shapes the gateware's signals and layouts share."""

__all__ = ["index_shape"]


def index_shape(count):
    """Shape of an index into ``count`` things; never zero bits wide (Verilog cannot say so)."""
    return range(max(count, 2))
