import pytest

from memxbar.hdl import Tile


@pytest.fixture(scope="session")
def verilator_tile_build():
    """Build (or reuse from the on-disk cache) one Verilator model per tile configuration."""
    from memxbar.sim import verilator

    builds = {}

    def get(config):
        if config not in builds:
            builds[config] = verilator.build(Tile(config), "memxbar_tile")
        return builds[config]

    return get
