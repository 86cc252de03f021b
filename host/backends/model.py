"""``model://``: the golden model in process, the reference every other backend must match.

Its tiles are :class:`memxbar.fastmodel.FastTileModel`: the golden model's semantics, bit
for bit, with MVMs on BLAS (``tests/test_fastmodel.py`` holds the two together).
"""

from ..fastmodel import FastTileModel
from ..model import COUNTERS
from . import Backend, url_config

__all__ = ["ModelBackend"]


class ModelBackend(Backend):
    """Tiles of the golden model (its fast path).

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
        self._models = [FastTileModel(self.config) for _ in range(tiles)]

    def program_levels(self, tile, g_plus, g_minus, write_index):
        self._models[tile].program_levels(g_plus, g_minus, write_index)

    def run_codes(self, tile, x_codes, window, read_index):
        return self._models[tile].run_codes(x_codes, read_index, window=window)

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
