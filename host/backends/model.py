"""``model://``: the golden model in process, the reference every other backend must match."""

from urllib.parse import parse_qsl, urlsplit

from ..model import COUNTERS, TileModel
from ..protocol import TileConfig
from . import Backend

__all__ = ["ModelBackend"]


class ModelBackend(Backend):
    """Tiles of the numpy golden model.

    The URL's query sets the build configuration, e.g.
    ``model://?rows=128&cols=32&lanes=4&tiles=2``; any :class:`TileConfig` field may be given.
    """

    name = "model"

    def __init__(self, url):
        query = urlsplit(url).query
        try:
            params = dict(parse_qsl(query, strict_parsing=bool(query)))
        except ValueError:
            raise ValueError(f"malformed query in {url!r}: expected key=value pairs") from None
        known = {*TileConfig.__dataclass_fields__, "tiles"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r} in {url!r}; known: "
                             f"{', '.join(sorted(known))}")
        values = {}
        for key, text in params.items():
            try:
                values[key] = int(text)
            except ValueError:
                raise ValueError(f"parameter {key}={text!r} in {url!r} is not an integer") from None
        tiles = values.pop("tiles", 1)
        if not 1 <= tiles <= 64:
            raise ValueError(f"tiles must be in [1, 64], not {tiles!r}")
        self.config = TileConfig(**values)
        self.tiles = tiles
        self.build_id = self.config.build_id
        self._models = [TileModel(self.config) for _ in range(tiles)]

    def program_levels(self, tile, g_plus, g_minus):
        self._models[tile].program_levels(g_plus, g_minus)

    def run_codes(self, tile, x_codes):
        return self._models[tile].run_codes(x_codes)

    def configure(self, tile, seed, read_noise, program, drift, stuck):
        self._models[tile].configure(seed, read_noise, program, drift, stuck)

    def drift(self, tile, tables):
        self._models[tile].drift(tables)

    def levels(self, tile):
        return self._models[tile].levels()

    def counters(self):
        return {name: sum(model.counters[name] for model in self._models) for name in COUNTERS}

    def tile_counters(self, tile):
        return dict(self._models[tile].counters)
