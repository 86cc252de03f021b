"""Tile geometry and integer formats, shared by the gateware, the golden model and the host.

The integer semantics of one tile (what every backend must compute bit for bit):

* Conductances are unsigned levels ``0 <= G+, G- <= 2**g_bits - 1``, one differential
  pair per cell. Cell ``(j, i)`` couples input (row) ``i`` to output (column) ``j``.
* Inputs are signed DAC codes, symmetric: ``|x_i| <= 2**(dac_bits - 1) - 1``.
* The column current is the exact integer ``acc_j = sum_i x_i * (G+_ji - G-_ji)``;
  ``acc_width`` is checked to hold it for every legal input, so it never wraps.
* The ADC rounds half up after a right shift and saturates symmetrically:
  ``y_j = clip(floor((acc_j + h) / 2**adc_shift), -y_max, y_max)`` with
  ``h = 2**(adc_shift - 1)`` (``h = 0`` when ``adc_shift == 0``) and
  ``y_max = 2**(adc_bits - 1) - 1``.
"""

import json
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["PROTOCOL_VERSION", "TileConfig", "Window", "cell_address", "cell_at", "lane_memory",
           "memory_cells"]

#: Bumped whenever the meaning of a configuration, layout or command changes
#: (2: device physics (TARGETS, TABLE, CONFIG, event counters); 3: HELLO features; 4: RUN windows).
PROTOCOL_VERSION = 5


def _check_int(name, value, lo, hi=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}, not {value!r}")


def _ceil_log2(n):
    return (n - 1).bit_length()


@dataclass(frozen=True)
class TileConfig:
    """Build-time parameters of one crossbar tile.

    Parameters
    ----------
    rows : int
        Inputs (crossbar rows, word lines).
    cols : int
        Outputs (crossbar columns, bit lines).
    lanes : int
        Parallel MAC units; lane ``l`` serves columns ``j`` with ``j % lanes == l``.
        ``1 <= lanes <= cols``.
    g_bits : int
        Bits of one conductance level (``G+`` and ``G-`` each).
    dac_bits : int
        Bits of a signed input code.
    adc_bits : int
        Bits of a signed output code.
    acc_width : int or None
        Accumulator width; ``None`` picks the smallest width that can never overflow.
    adc_shift : int or None
        Right shift before the ADC; ``None`` picks ``g_bits + dac_bits - adc_bits +
        ceil(ceil_log2(rows) / 2)``: a column of random-sign products grows like
        ``sqrt(rows)``, so this keeps typical outputs inside the ADC range.
    physics : bool
        Build the device engine (programming noise, drift, read noise, stuck cells, finite
        levels, write-verify) and the output-noise stage. Without it the tile is ideal: levels
        are written directly and MVMs are exact, in a fraction of the logic.
    per_read_noise : bool or None
        Build the per-read noise path: every lane stores a read-noise variance code beside
        its conductance pair and accumulates ``x**2 * v`` during an MVM. Without it the tile
        is smaller (the iCE40UP5K has no block RAM for the codes); read noise then exists
        only ``frozen`` (sampled at each drift, as aihwkit does) and the device refuses the
        ``per_read`` mode. Output noise works either way. ``None`` (the default) follows
        ``physics``.

    Raises
    ------
    TypeError, ValueError
        Naming the offending parameter and value.
    """

    rows: int = 64
    cols: int = 64
    lanes: int = 8
    g_bits: int = 8
    dac_bits: int = 7
    adc_bits: int = 9
    acc_width: int | None = field(default=None)
    adc_shift: int | None = field(default=None)
    physics: bool = True
    per_read_noise: bool | None = None

    def __post_init__(self):
        _check_int("rows", self.rows, 1, 4096)
        _check_int("cols", self.cols, 1, 4096)
        _check_int("lanes", self.lanes, 1, self.cols)
        _check_int("g_bits", self.g_bits, 1, 16)
        _check_int("dac_bits", self.dac_bits, 2, 16)
        _check_int("adc_bits", self.adc_bits, 2, 24)
        if self.acc_width is None:
            object.__setattr__(self, "acc_width", self.min_acc_width)
        _check_int("acc_width", self.acc_width, self.min_acc_width, 64)
        if self.adc_shift is None:
            default = self.g_bits + self.dac_bits - self.adc_bits + (_ceil_log2(self.rows) + 1) // 2
            object.__setattr__(self, "adc_shift", max(0, default))
        _check_int("adc_shift", self.adc_shift, 0, self.acc_width - 1)
        for name in ("physics", "per_read_noise"):
            value = getattr(self, name)
            if value is None and name == "per_read_noise":
                value = self.physics
            if value not in (True, False):  # 0 and 1 from a URL query are fine
                raise TypeError(f"{name} must be a bool, not {value!r}")
            object.__setattr__(self, name, bool(value))
        if self.per_read_noise and not self.physics:
            raise ValueError("per_read_noise needs physics: a tile without a device engine has no read noise")

    @property
    def min_acc_width(self):
        """Smallest signed width holding ``rows * x_max_abs * g_max`` in magnitude.

        The gateware multiplies two's-complement codes, so the bound uses ``2**(dac_bits-1)``
        (the most negative code) even though the host never sends it.
        """
        bound = self.rows * (1 << (self.dac_bits - 1)) * self.g_max
        return bound.bit_length() + 1

    @property
    def g_max(self):
        """Largest conductance level."""
        return (1 << self.g_bits) - 1

    @property
    def x_max(self):
        """Largest input code magnitude (the DAC range is symmetric)."""
        return (1 << (self.dac_bits - 1)) - 1

    @property
    def y_max(self):
        """Largest output code magnitude (the ADC range is symmetric)."""
        return (1 << (self.adc_bits - 1)) - 1

    @property
    def groups(self):
        """Column groups: passes of the lanes over the rows for one MVM."""
        return -(-self.cols // self.lanes)

    @property
    def words_per_lane(self):
        """Depth of each lane's conductance memory."""
        return self.groups * self.rows

    @property
    def cycles_per_mvm(self):
        """Steady-state cycles between back-to-back MVMs.

        Each column group takes ``rows`` cycles of MACs, and its results leave on the output
        stream one per cycle while the next group computes; a group with more columns than
        rows therefore waits for the drain: ``sum_g max(rows, columns in g)``. This is
        ``rows * ceil(cols / lanes)`` whenever ``rows >= lanes``, and equals the ideal
        ``ceil(rows * cols / lanes)`` whenever also ``lanes`` divides ``cols``.
        """
        tail = self.cols - (self.groups - 1) * self.lanes
        return (self.groups - 1) * max(self.rows, self.lanes) + max(self.rows, tail)

    @property
    def cells(self):
        return self.rows * self.cols

    @property
    def build_id(self):
        """32-bit identity of a gateware build: CRC-32 of the configuration and protocol version.

        The host computes it for the configuration it expects; the device reports the one it
        was built with, so a mismatch means a different bitstream, not a broken link.
        """
        canonical = json.dumps([PROTOCOL_VERSION, self.as_dict()], sort_keys=True)
        return zlib.crc32(canonical.encode())

    def as_dict(self):
        return {
            "rows": self.rows, "cols": self.cols, "lanes": self.lanes, "g_bits": self.g_bits,
            "dac_bits": self.dac_bits, "adc_bits": self.adc_bits, "acc_width": self.acc_width,
            "adc_shift": self.adc_shift, "physics": self.physics,
            "per_read_noise": self.per_read_noise,
        }


class Window(NamedTuple):
    """A rectangle of a tile's array an MVM runs on: inputs ``row0 ..``, outputs ``col0 ..``.

    An MVM over a window is the full MVM with code 0 on every input outside it, of which only
    the window's outputs come back (in column order). The zero inputs make the cells outside
    the window's rows add nothing however they are programmed, so one array holds several
    small matrices side by side, each run on its own. The noise of the MVM, and every event
    counter, are those of the full MVM: the array still reads all its cells.
    """

    row0: int
    rows: int
    col0: int
    cols: int

    @classmethod
    def full(cls, config):
        return cls(0, config.rows, 0, config.cols)

    def check(self, config):
        """``ValueError`` naming the problem unless the window lies inside ``config``'s array."""
        for name, value in self._asdict().items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"window {name} must be a non-negative integer, not {value!r}")
        if not (self.rows >= 1 and self.row0 + self.rows <= config.rows):
            raise ValueError(f"window rows {self.row0}..{self.row0 + self.rows - 1} are not inside the "
                             f"tile's rows 0..{config.rows - 1} (and need at least one)")
        if not (self.cols >= 1 and self.col0 + self.cols <= config.cols):
            raise ValueError(f"window cols {self.col0}..{self.col0 + self.cols - 1} are not inside the "
                             f"tile's cols 0..{config.cols - 1} (and need at least one)")

    def pad(self, config, x_codes):
        """``(batch, rows)`` window inputs -> ``(batch, config.rows)`` with 0 outside the window."""
        import numpy as np

        full = np.zeros((len(x_codes), config.rows), dtype=np.int64)
        full[:, self.row0:self.row0 + self.rows] = x_codes
        return full

    def outputs(self, y_codes):
        """The window's columns of full ``(batch, config.cols)`` outputs."""
        return y_codes[:, self.col0:self.col0 + self.cols]


def cell_address(config, row, col):
    """Where cell ``(col, row)`` lives in the gateware: ``(lane, word)``.

    Lane ``col % lanes`` holds the cell at word ``(col // lanes) * rows + row``, so a lane
    walks its words in order during an MVM. Works elementwise on numpy integer arrays.
    """
    return col % config.lanes, (col // config.lanes) * config.rows + row


def cell_at(config, lane, word):
    """Inverse of :func:`cell_address`: ``(col, row)`` held at ``(lane, word)``.

    In a partial last column group some lanes hold padding words: their ``col`` is
    ``>= config.cols``; the gateware stores them but never outputs them.
    """
    return (word // config.rows) * config.lanes + lane, word % config.rows


def lane_memory(config, g_plus, g_minus):
    """The tile's block RAM image of ``(cols, rows)`` levels: uint8 ``(lanes, words, 2)``.

    Padding words of a partial last column group are 0. Needs ``g_bits <= 8``, as the link does.
    """
    import numpy as np

    cols, rows = np.indices((config.cols, config.rows))
    lanes, words = cell_address(config, rows, cols)
    memory = np.zeros((config.lanes, config.words_per_lane, 2), dtype=np.uint8)
    memory[lanes, words, 0] = g_plus
    memory[lanes, words, 1] = g_minus
    return memory


def memory_cells(config, memory):
    """Inverse of :func:`lane_memory`: ``memory`` ``(lanes, words, ...)`` -> ``(..., cols, rows)``.

    Padding words are dropped. Works for any trailing axes (``(g_plus, g_minus)`` pairs, or none).
    """
    import numpy as np

    memory = np.asarray(memory)
    lanes, words = np.indices((config.lanes, config.words_per_lane))
    cols, rows = cell_at(config, lanes, words)
    real = cols < config.cols
    out = np.zeros((*memory.shape[2:], config.cols, config.rows), dtype=np.int64)
    out[..., cols[real], rows[real]] = np.moveaxis(memory[real], 0, -1)
    return out
