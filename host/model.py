"""The golden model: the tile's integer semantics in numpy, written from the specification.

Every backend (this model, the Verilated RTL, a board) must return the same codes for the
same configuration, conductance levels and inputs. The semantics are stated once, in
:mod:`memxbar.protocol.geometry`; this module is their direct transcription.
"""

import numpy as np

from .protocol import TileConfig

__all__ = ["TileModel", "adc", "mvm_codes"]


def adc(config, acc):
    """Round half up after ``adc_shift``, then saturate at ``+-y_max`` (int64 in, int64 out)."""
    acc = np.asarray(acc, dtype=np.int64)
    if config.adc_shift:
        acc = (acc + (1 << (config.adc_shift - 1))) >> config.adc_shift
    return np.clip(acc, -config.y_max, config.y_max)


def mvm_codes(config, g_plus, g_minus, x_codes):
    """``adc(x @ (G+ - G-).T)`` for ``x_codes`` shaped ``(..., rows)`` -> ``(..., cols)``.

    Exact in int64: ``min_acc_width <= 64`` is enforced by :class:`TileConfig` bounds.
    """
    weights = g_plus.astype(np.int64) - g_minus.astype(np.int64)
    return adc(config, x_codes.astype(np.int64) @ weights.T)


class TileModel:
    """State of one tile (its conductance levels) and its MVM, bit-exact with the gateware."""

    def __init__(self, config: TileConfig):
        self.config = config
        self.g_plus = np.zeros((config.cols, config.rows), dtype=np.int64)
        self.g_minus = np.zeros((config.cols, config.rows), dtype=np.int64)

    def program_levels(self, g_plus, g_minus):
        self.g_plus = np.array(g_plus, dtype=np.int64)
        self.g_minus = np.array(g_minus, dtype=np.int64)

    def run_codes(self, x_codes):
        return mvm_codes(self.config, self.g_plus, self.g_minus, x_codes)
