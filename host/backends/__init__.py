"""Backends behind :class:`memxbar.Device`: each one runs tiles somewhere.

A backend takes validated int64 arrays and returns int64 codes; validation, shapes and
user-facing errors live in :mod:`memxbar.device`, once for all backends.
"""

from abc import ABC, abstractmethod
from urllib.parse import parse_qsl, urlsplit

from ..errors import Unsupported
from ..protocol import TileConfig

__all__ = ["Backend", "url_config", "url_query"]


def url_query(config):
    """The inverse of :func:`url_config`: a TileConfig as ``key=value&...`` (booleans as 0/1)."""
    return "&".join(f"{name}={int(value)}" for name, value in config.as_dict().items())


def url_config(url, **extras):
    """A URL query of integer ``key=value`` pairs -> ``(TileConfig, {extra: value})``.

    ``extras`` names the non-TileConfig keys the scheme takes, with their defaults.
    """
    query = urlsplit(url).query
    try:
        pairs = parse_qsl(query, strict_parsing=bool(query))
    except ValueError:
        raise ValueError(f"malformed query in {url!r}: expected key=value pairs") from None
    known = {*TileConfig.__dataclass_fields__, *extras}
    values = dict(extras)
    fields = {}
    for key, text in pairs:
        if key not in known:
            raise ValueError(f"unknown parameter {key!r} in {url!r}; known: {', '.join(sorted(known))}")
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"parameter {key}={text!r} in {url!r} is not an integer") from None
        (values if key in extras else fields)[key] = value
    return TileConfig(**fields), values


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
    def program_levels(self, tile, g_plus, g_minus, write_index):
        """Program target levels ``(cols, rows)`` into ``tile``; the first cell written (memory
        order) draws the noise of cell write ``write_index``."""

    @abstractmethod
    def run_codes(self, tile, x_codes, window, read_index):
        """MVMs of a batch ``(batch, window rows)`` -> ADC codes ``(batch, window cols)``, a new
        array the caller may overwrite; MVM ``b`` draws the noise of read ``read_index + b``."""

    # Device physics (memxbar.protocol.physics). A backend without a device engine is ideal.

    def configure(self, tile, seed, read_noise, program, drift, stuck):
        """Load ``ProgramTables``/``DriftTables``, seed and mode; erase ``tile``."""
        raise self._unsupported("device models (CONFIG)")

    def drift(self, tile, tables, drift_index):
        """Move every cell of ``tile`` to the time of ``DriftTables`` ``tables``, with the frozen
        read noise of drift call ``drift_index``."""
        raise self._unsupported("drift")

    def reclaim(self):  # noqa: B027 -- a hook: only a device behind a link can be taken away
        """Claim the device again if its epoch moved behind this host (a reset, another client)."""

    def levels(self, tile):
        """Conductance levels ``(g_plus, g_minus)`` shaped ``(cols, rows)`` as MVMs see them."""
        raise self._unsupported("reading conductances")

    def counters(self):
        """Event counters as a dict."""
        raise self._unsupported("counters")

    def tile_counters(self, tile):
        """Event counters of one tile; a device with one tile counts for it."""
        if self.tiles != 1:
            raise self._unsupported("per-tile counters")
        return self.counters()

    def _unsupported(self, what):
        return Unsupported(f"the {self.name} backend's device build has no {what} yet; "
                           f"model:// has it")

    def close(self):  # noqa: B027 -- a hook: the in-process model holds nothing to release
        """Release what the backend holds (processes, ports)."""
