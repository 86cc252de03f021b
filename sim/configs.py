"""The tile configurations the RTL is verified and benchmarked in, each chosen for a corner."""

from memxbar.protocol import TileConfig

__all__ = ["VERIFIED_TILES"]

VERIFIED_TILES = {
    # lanes = 1, nothing a power of two, narrow formats
    "13x7-l1": TileConfig(rows=13, cols=7, lanes=1, g_bits=4, dac_bits=5, adc_bits=6),
    # a partial last column group (20 = 6 * 3 + 2)
    "10x20-l3": TileConfig(rows=10, cols=20, lanes=3),
    # the largest lanes: every column its own lane; rows < lanes, so the output drain bounds it
    "16x24-l24": TileConfig(rows=16, cols=24, lanes=24, g_bits=6, dac_bits=4, adc_bits=8,
                            adc_shift=0),
    # the iCEBreaker-sized default tile
    "64x64-l8": TileConfig(),
}
