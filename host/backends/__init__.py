"""Backends behind :class:`memxbar.Device`: each one runs tiles somewhere.

A backend takes validated int64 arrays and returns int64 codes; validation, shapes and
user-facing errors live in :mod:`memxbar.device`, once for all backends.
"""

from abc import ABC, abstractmethod

__all__ = ["Backend"]


class Backend(ABC):
    #: :class:`memxbar.protocol.TileConfig` of every tile.
    config = None
    #: number of tiles
    tiles = 1
    #: build id the device reports
    build_id = None
    #: short name shown in ``Device.info``
    name = None

    @abstractmethod
    def program_levels(self, tile, g_plus, g_minus):
        """Store conductance levels ``(cols, rows)`` in ``tile``."""

    @abstractmethod
    def run_codes(self, tile, x_codes):
        """MVMs of a batch ``(batch, rows)`` -> ADC codes ``(batch, cols)``."""

    def close(self):  # noqa: B027 -- a hook: the in-process model holds nothing to release
        """Release what the backend holds (processes, ports)."""
