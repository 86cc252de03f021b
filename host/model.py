"""The golden model: the tile's integer semantics in numpy, written from the specification.

Every backend (this model, the Verilated RTL, a board) must return the same codes for the
same configuration, seed, tables and inputs. The semantics are stated once, in
:mod:`memxbar.protocol.geometry` (the MVM) and :mod:`memxbar.protocol.physics` (the device);
this module is their direct transcription.
"""

import numpy as np

from .errors import Unsupported
from .noise import Streams, gauss, noise_key, threefry2x32
from .protocol import TileConfig, cell_at, memory_cells, physics
from .protocol.physics import (
    NU_CODES,
    V_MAX,
    Domain,
    ReadNoise,
    default_read_noise,
    ideal_tables,
    mvm_noise,
)

__all__ = ["COUNTERS", "TileModel", "adc", "isqrt", "mvm_codes"]

#: Event counters of a tile, in the order devices report them.
COUNTERS = ("cycles", "mvms", "macs", "adc_conversions", "cell_writes", "verify_reads", "write_pulses")


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


def isqrt(n):
    """Floor square root of non-negative int64 values below ``2**52``, elementwise."""
    n = np.asarray(n, dtype=np.int64)
    q = np.floor(np.sqrt(n.astype(np.float64))).astype(np.int64)
    q -= (q * q > n).astype(np.int64)
    q += ((q + 1) * (q + 1) <= n).astype(np.int64)
    return q


class TileModel:
    """One tile: its device state, noise streams and counters, bit-exact with the gateware.

    State lives in the gateware's memory layout, ``(lanes, words)`` per device (index 0 is
    ``G+``, 1 is ``G-``), padding words of a partial last column group included.
    """

    def __init__(self, config: TileConfig, tile=0):
        self.config = config
        self.tile = tile
        self.counters = dict.fromkeys(COUNTERS, 0)
        lanes, words = np.indices((config.lanes, config.words_per_lane))
        cols, rows = cell_at(config, lanes, words)
        self._cols, self._rows = cols, rows
        self._cell = lanes * config.words_per_lane + words
        self._real = cols < config.cols
        # power-up: a perfect device
        self._configure(0, default_read_noise(config), *ideal_tables(config), None)

    # -- configuration -------------------------------------------------------------------------

    def configure(self, seed, read_noise, program, drift, stuck=None):
        """Load a device: tables, seed and read-noise mode; erase the array; sample stuck cells.

        ``stuck`` is an optional explicit map ``(2, lanes, words)``: 0 healthy, 1 stuck on,
        2 stuck off, as if set by :meth:`set_stuck` on every cell; without it the rates of
        ``program`` decide, keyed on the cell.
        """
        cfg = self.config
        if not cfg.physics:
            raise Unsupported("this tile was built without physics (an ideal tile): no device models")
        if ReadNoise(read_noise) == ReadNoise.PER_READ and not cfg.per_read_noise:
            raise Unsupported("this tile was built without per-read noise lanes; use frozen read noise")
        self._configure(seed, read_noise, program, drift, stuck)

    def _configure(self, seed, read_noise, program, drift, stuck):
        cfg = self.config
        self.seed = seed
        self.read_noise = ReadNoise(read_noise)
        self.program_tables = program
        self.writes = self.drifts = self.reads = 0
        shape = (2, cfg.lanes, cfg.words_per_lane)
        if stuck is None:
            u = np.stack(threefry2x32(self._key(Domain.STUCK), (self._cell, 0)))
            on = u < program.p_on
            off = ~on & (u < program.p_on + program.p_off)
            stuck = np.where(on, 1, np.where(off, 2, 0))
        self.stuck = np.zeros(shape, dtype=np.int64)
        self.g_prog = np.zeros(shape, dtype=np.int64)
        self.nu = np.zeros(shape, dtype=np.int64)
        self.g_now = np.zeros(shape, dtype=np.int64)
        self.variance = np.zeros(shape[1:], dtype=np.int64)
        self._load_drift(drift)
        self.set_stuck(np.arange(self._cell.size), np.asarray(stuck, dtype=np.int64).reshape(2, -1))

    def _key(self, domain):
        return noise_key(self.seed, self.tile, domain)

    def _load_drift(self, drift):
        self.drift_tables = drift
        self.mvm_noise = mvm_noise(self.read_noise, drift)
        self._drift = np.array(drift.drift, dtype=np.int64)
        self._read_sigma = np.array(drift.read_sigma, dtype=np.int64)

    # -- programming, drift --------------------------------------------------------------------

    def program_levels(self, g_plus, g_minus, write_index=None):
        """Program every cell to targets ``(cols, rows)``, in memory order (lane, then word),
        the first cell with cell-write index ``write_index`` (``None``: this model's count).

        A build without physics has no device engine: the levels are written as they are.
        """
        cfg = self.config
        targets = np.zeros((2, cfg.lanes, cfg.words_per_lane), dtype=np.int64)
        real = self._real
        targets[0][real] = np.asarray(g_plus)[self._cols[real], self._rows[real]]
        targets[1][real] = np.asarray(g_minus)[self._cols[real], self._rows[real]]
        cells = np.arange(self._cell.size)
        if cfg.physics:
            self.program_cells(cells, targets.reshape(2, -1), write_index)
        else:
            self.write_levels(cells, targets.reshape(2, -1))
            self.counters["cell_writes"] += cells.size

    def program_cells(self, cells, targets, write_index=None):
        """Program memory cells ``cells`` (``lane * words_per_lane + word``) in that order to
        ``targets`` ``(2, len(cells))``, as WRITE TARGETS does.

        ``write_index`` is the cell-write noise index of the first cell (the request carries
        it); ``None`` continues this model's own count.
        """
        cells = np.asarray(cells, dtype=np.int64)
        if write_index is not None:
            self.writes = write_index
        self._program(cells, np.asarray(targets, dtype=np.int64))
        self._settle(cells)

    def set_stuck(self, cells, codes):
        """Erase memory cells ``cells`` with explicit stuck codes ``(2, len(cells))``: WRITE STUCK."""
        cells = np.asarray(cells, dtype=np.int64)
        codes = np.asarray(codes, dtype=np.int64)
        self.stuck.reshape(2, -1)[:, cells] = codes
        self.g_prog.reshape(2, -1)[:, cells] = np.where(codes == 1, self.program_tables.g_on, 0)
        self.nu.reshape(2, -1)[:, cells] = 0
        self._settle(cells)

    def write_levels(self, cells, levels):
        """Set the levels MVMs see at ``cells`` directly (no physics, variance 0): WRITE LEVELS."""
        cells = np.asarray(cells, dtype=np.int64)
        self.g_now.reshape(2, -1)[:, cells] = levels
        self.variance.reshape(-1)[cells] = 0

    def _program(self, cells, targets):
        t = self.program_tables
        count = cells.size
        level = np.array(t.level)[targets]
        prog_sigma = np.array(t.prog_sigma)[targets]
        nu_mean = np.array(t.nu_mean)[targets]
        nu_sigma = np.array(t.nu_sigma)[targets]
        stuck = self.stuck.reshape(2, -1)[:, cells]
        streams = Streams(self._key(Domain.PROGRAM), self.writes + np.arange(count))
        g_max = self.config.g_max
        g_prog = np.zeros((2, count), dtype=np.int64)
        nu = np.zeros((2, count), dtype=np.int64)
        for device in range(2):
            active = stuck[device] == 0
            g_prog[device] = np.where(stuck[device] == 1, t.g_on, 0)
            self.counters["write_pulses"] += count
            for attempt in range(max(t.verify_max, 1)):
                if attempt:
                    self.counters["write_pulses"] += int(active.sum())
                z = streams.gaussian(active & (prog_sigma[device] != 0))
                g = np.clip(level[device] + gauss(prog_sigma[device], z), 0, g_max)
                g_prog[device] = np.where(active, g, g_prog[device])
                if not t.verify_max:
                    break
                self.counters["verify_reads"] += int(active.sum())
                active &= np.abs(g - level[device]) > t.verify_tol
            healthy = stuck[device] == 0
            z = streams.gaussian(healthy & (nu_sigma[device] != 0))
            nu16 = nu_mean[device] + gauss(nu_sigma[device], z)
            code = physics.round_shift(np.abs(nu16), physics.NU_FRACTION_BITS)
            nu[device] = np.where(healthy, np.minimum(NU_CODES - 1, code), 0)
        self.g_prog.reshape(2, -1)[:, cells] = g_prog
        self.nu.reshape(2, -1)[:, cells] = nu
        self.writes += count
        self.counters["cell_writes"] += count

    def drift(self, tables, drift_index=None):
        """A drift call: load the tables of a new time and move every cell there.

        ``drift_index`` is the drift call's noise index (the request carries it; the first
        call after CONFIG is 1); ``None`` continues this model's own count.
        """
        if not self.config.physics:
            raise Unsupported("this tile was built without physics (an ideal tile): no drift")
        self.drifts = self.drifts + 1 if drift_index is None else drift_index
        self._load_drift(tables)
        self._settle(drift_call=True)

    def _settle(self, cells=None, drift_call=False):
        """Conductances (and read-noise variances) of ``cells`` (default all) from their
        programmed state and the drift tables. Frozen read noise is drawn only by a drift call
        (aihwkit's ``drift_weights``): after programming, CONFIG or STUCK a cell reads ``g_drift``."""
        cfg, d = self.config, self.drift_tables
        cells = np.arange(self._cell.size) if cells is None else cells
        g_prog = self.g_prog.reshape(2, -1)[:, cells]
        factor = self._drift[self.nu.reshape(2, -1)[:, cells]]
        g_drift = np.clip(physics.round_shift(g_prog * factor, physics.DRIFT_SHIFT), 0, cfg.g_max)
        sigma = physics.round_shift(g_drift * self._read_sigma[g_prog], physics.READ_SIGMA_SHIFT)
        g_now = self.g_now.reshape(2, -1)
        variance = self.variance.reshape(-1)
        if self.read_noise == ReadNoise.FROZEN:
            g_now[:, cells] = g_drift
            if drift_call:
                streams = Streams(self._key(Domain.DRIFT), self._cell.ravel()[cells], self.drifts)
                for device in range(2):
                    z = streams.gaussian(sigma[device] != 0)
                    g_now[device, cells] = np.clip(g_drift[device] + gauss(sigma[device], z), 0, cfg.g_max)
            variance[cells] = 0
        else:
            g_now[:, cells] = g_drift
            variance[cells] = np.minimum(V_MAX, physics.round_shift(sigma[0] ** 2 + sigma[1] ** 2,
                                                                    2 * d.var_shift))

    # -- reading -------------------------------------------------------------------------------

    def _as_cells(self, memory):
        return memory_cells(self.config, memory)

    def levels(self):
        """Conductance levels ``(g_plus, g_minus)`` shaped ``(cols, rows)``, as MVMs see them."""
        return self._as_cells(self.g_now[0]), self._as_cells(self.g_now[1])

    def programmed_levels(self):
        """Levels right after programming, before drift and read noise."""
        return self._as_cells(self.g_prog[0]), self._as_cells(self.g_prog[1])

    def run_codes(self, x_codes, read_index=None):
        """MVMs of a batch ``(batch, rows)`` -> ADC codes ``(batch, cols)``.

        MVM ``b`` draws the noise of read ``read_index + b`` (the request carries the index);
        ``None`` continues this model's own count.
        """
        cfg = self.config
        if read_index is not None:
            self.reads = read_index
        x = np.asarray(x_codes, dtype=np.int64)
        batch = x.shape[0]
        g_plus, g_minus = self.levels()
        acc = x @ (g_plus - g_minus).T
        variance = (x * x) @ self._as_cells(self.variance).T + self.drift_tables.out_var
        if self.mvm_noise:
            q = isqrt(variance << physics.SQRT_SHIFT)
            streams = Streams(self._key(Domain.READ), self.reads + np.arange(batch))
            z = np.stack([streams.gaussian() for _ in range(cfg.cols)], axis=1)
            acc = acc + physics.round_shift(q * z, physics.noise_shift(self.drift_tables.var_shift))
        self.reads += batch
        self.counters["mvms"] += batch
        self.counters["macs"] += batch * cfg.rows * cfg.cols
        self.counters["adc_conversions"] += batch * cfg.cols
        self.counters["cycles"] += batch * cfg.rows * cfg.groups  # MAC-array cycles
        return adc(cfg, acc)

