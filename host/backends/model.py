"""``model://``: the golden model in process, the reference every other backend must match."""

from ..model import COUNTERS, TileModel
from . import Backend, url_config

__all__ = ["ModelBackend"]


class ModelBackend(Backend):
    """Tiles of the numpy golden model.

    The URL's query sets the build configuration, e.g.
    ``model://?rows=128&cols=32&lanes=4&tiles=2``; any :class:`TileConfig` field may be given.
    """

    name = "model"

    def __init__(self, url):
        self.config, extras = url_config(url, tiles=1)
        tiles = extras["tiles"]
        if not 1 <= tiles <= 64:
            raise ValueError(f"tiles must be in [1, 64], not {tiles!r}")
        self.tiles = tiles
        self.build_id = self.config.build_id
        self._models = [TileModel(self.config) for _ in range(tiles)]

    def program_levels(self, tile, g_plus, g_minus, write_index):
        self._models[tile].program_levels(g_plus, g_minus, write_index)

    def run_codes(self, tile, x_codes, window, read_index):
        return window.outputs(self._models[tile].run_codes(window.pad(self.config, x_codes), read_index))

    def configure(self, tile, seed, read_noise, program, drift, stuck):
        self._models[tile].configure(seed, read_noise, program, drift, stuck)

    def drift(self, tile, tables, drift_index):
        self._models[tile].drift(tables, drift_index)

    def levels(self, tile):
        return self._models[tile].levels()

    def counters(self):
        return {name: sum(model.counters[name] for model in self._models) for name in COUNTERS}

    def tile_counters(self, tile):
        return dict(self._models[tile].counters)
