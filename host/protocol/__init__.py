"""The host <-> gateware contract: tile geometry, number formats and memory layout.

This package is the one place both sides import (``memxbar.hdl`` depends on it, never
the reverse), so every constant of the contract is written once.
"""

from .geometry import (
    PROTOCOL_VERSION,
    TileConfig,
    Window,
    cell_address,
    cell_at,
    lane_memory,
    memory_cells,
)

__all__ = ["PROTOCOL_VERSION", "TileConfig", "Window", "cell_address", "cell_at", "lane_memory",
           "memory_cells"]
