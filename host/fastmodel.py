"""The fast path of ``model://``: the golden model's MVMs at BLAS speed, bit for bit.

:class:`FastTileModel` is :class:`memxbar.model.TileModel` (the specification, whose
configuration, programming and drift it runs unchanged: they touch each cell once and are
not the hot path) with its MVM done another way:

* **Exact floats on BLAS.** The column sums ``x @ (G+ - G-).T`` are integers below
  ``rows * x_max * g_max <= 2**43``, and so are every partial sum: float64 holds them exactly
  for every legal geometry, float32 whenever the bound (plus the ADC's rounding half) stays
  below ``2**24`` (the default 64x64 tile: ``2**20``). The per-read variance sums
  ``x**2 @ v.T`` reach ``2**52``: float64, or float32 where ``x_max**2`` times the largest
  column sum of the cells' variance codes stays below ``2**24`` (checked whenever they
  change). The ADC's power-of-two shift and its floor are exact in floats too.
* **Small batches without BLAS.** Up to ``SMALL_BATCH`` MVMs one compiled call does the
  int64 sums, the noise and the ADC (a call's Python and BLAS plumbing cost more than the
  arithmetic of a 64x64 MVM).
* **Cell-order matrices, cached.** ``(G+ - G-).T`` and the variances (as floats and int64)
  and the read-noise key are rebuilt only when programming, drift, CONFIG or a level write
  changes them.
* **Noise without Python loops.** One xoshiro128++ stream per MVM, three outputs per column in
  column order (:mod:`memxbar.protocol.physics`): with numba installed (``memxbar[fast]``), a
  compiled loop draws them and applies the read noise and the ADC in one pass; without it,
  :func:`memxbar.noise.column_gaussians` draws them vectorised over the batch (the same bits,
  several times slower). ``MEMXBAR_NUMBA=0`` forces the numpy path.
* **No work for disabled noise**: no variance product in frozen mode or without read noise,
  no Gaussians when MVMs carry no noise.
* **Warm work arrays** (:mod:`memxbar.scratch`) for the temporaries of large batches.
* **BLAS on one thread** for products OpenBLAS would thread (2**18 to 2**27 multiply-adds):
  measured on the 2-core development machine, its threads made a 1000x64x64 product 30x
  slower under load.

``tests/test_fastmodel.py`` holds it bit-identical to the oracle.
"""

import os
from typing import NamedTuple

import numpy as np
from threadpoolctl import ThreadpoolController

from .model import TileModel, adc, isqrt
from .noise import column_gaussians, noise_key
from .protocol import physics
from .protocol.physics import V_MAX, Domain, ReadNoise
from .scratch import scratch

__all__ = ["FastTileModel", "numba_kernel"]

FLOAT32_EXACT = 1 << 24  # integers below this are exact in float32
SINGLE_THREAD_MACS = 1 << 27  # below this many multiply-adds a product runs on one BLAS thread
# OpenBLAS's gemm threads only above 65536 * 4 multiply-adds (SMP_THRESHOLD_MIN *
# GEMM_MULTITHREAD_THRESHOLD): below, pinning it costs ~10 us a call for nothing
BLAS_THREADS_MACS = 1 << 18
SMALL_BATCH = 4  # up to this many MVMs the compiled kernel does the sums too, without BLAS
_EMPTY = np.zeros((0, 0), dtype=np.int64)


class _Cache(NamedTuple):
    weights: np.ndarray  # (cols, rows) G+ - G-, cell order, exact floats
    variances: np.ndarray | None  # (cols, rows) per-read variance codes, exact floats; None: none
    levels: np.ndarray  # the weights in int64
    variance_levels: np.ndarray  # the variances in int64, (0, 0) for none
    k0: int  # the read-noise key (Threefry), 32-bit words
    k1: int

_blas = ThreadpoolController()


def _float_for(bound):
    """The narrowest float holding every integer sum up to ``bound`` exactly."""
    return np.float32 if bound < FLOAT32_EXACT else np.float64


class FastTileModel(TileModel):
    """A :class:`memxbar.model.TileModel` whose :meth:`run_codes` runs on BLAS.

    Parameters
    ----------
    config : TileConfig
    tile : int
        The tile's index (part of its noise keys).
    use_numba : bool or None
        Draw the MVM noise with the compiled kernel (``True``) or with numpy (``False``);
        ``None`` takes numba when it is installed, unless ``MEMXBAR_NUMBA=0``.
    """

    _cache = None  # a _Cache, or None when programming, drift or CONFIG changed the cells

    def __init__(self, config, tile=0, use_numba=None):
        if use_numba is None:
            use_numba = os.environ.get("MEMXBAR_NUMBA", "1") != "0" and numba_kernel() is not None
        elif use_numba and numba_kernel() is None:
            raise ImportError("numba is not installed: pip install 'memxbar[fast]'")
        self.use_numba = bool(use_numba)
        # DAC codes are symmetric, |x| <= x_max (memxbar.protocol.geometry; every path to a
        # backend validates them), which bounds every sum
        acc_bound = config.rows * config.x_max * config.g_max
        # + the ADC's rounding half, added to the sum in the same float
        self._acc_float = _float_for(acc_bound + (1 << config.adc_shift))
        self._var_float = _float_for(config.rows * config.x_max**2 * V_MAX)
        super().__init__(config, tile)

    # every way the levels or variances change drops the cached matrices

    def configure(self, *args, **kwargs):
        self._cache = None
        super().configure(*args, **kwargs)

    def program_cells(self, *args, **kwargs):
        self._cache = None
        super().program_cells(*args, **kwargs)

    def set_stuck(self, *args, **kwargs):
        self._cache = None
        super().set_stuck(*args, **kwargs)

    def write_levels(self, *args, **kwargs):
        self._cache = None
        super().write_levels(*args, **kwargs)

    def drift(self, *args, **kwargs):
        self._cache = None
        super().drift(*args, **kwargs)

    def _matrices(self):
        """The cached state of MVMs: float weights and variances for BLAS, int64 ones for the
        small-batch kernel, the read-noise key."""
        if self._cache is None:
            g_plus, g_minus = self.levels()
            weights = g_plus - g_minus
            variances = None
            if self.read_noise == ReadNoise.PER_READ and self.variance.any():
                variances = self._as_cells(self.variance)
            key = noise_key(self.seed, self.tile, Domain.READ)
            var_float = self._var_float
            if variances is not None and var_float is not np.float32:
                # the cells' own variances may bound the sums below 2**24 where the geometry
                # does not (PCM an hour after programming, on the default tile): float32, 1.6x faster
                var_float = _float_for(self.config.x_max**2 * int(variances.sum(axis=1).max()))
            self._cache = _Cache(
                weights.astype(self._acc_float),
                None if variances is None else variances.astype(var_float),
                weights, _EMPTY if variances is None else np.ascontiguousarray(variances),
                key[0] & 0xFFFF_FFFF, key[1] & 0xFFFF_FFFF)
        return self._cache

    # -- reading -------------------------------------------------------------------------------

    def run_codes(self, x_codes, read_index=None, window=None):
        """MVMs of ``x_codes`` ``(batch, rows)`` -> ADC codes ``(batch, cols)``, as the oracle.

        With ``window`` (a :class:`memxbar.protocol.Window`) ``x_codes`` holds the window's
        inputs and the result its outputs: the oracle on inputs padded with 0, sliced.
        """
        cfg = self.config
        x = np.asarray(x_codes)
        batch = x.shape[0]
        if read_index is not None:
            self.reads = read_index
        row0, rows, col0, cols = (0, cfg.rows, 0, cfg.cols) if window is None else window
        cache = self._matrices()
        if self.use_numba and batch <= SMALL_BATCH:
            y = np.empty((batch, cols), dtype=np.int64)
            noise = self.mvm_noise
            _kernels()[2](x.astype(np.int64, copy=False), cache.levels, cache.variance_levels, row0, col0,
                          noise, self.drift_tables.out_var, cache.k0, cache.k1, self.reads,
                          physics.noise_shift(self.drift_tables.var_shift) if noise else 0,
                          cfg.adc_shift, cfg.y_max, y)
        elif BLAS_THREADS_MACS < batch * rows * cols < SINGLE_THREAD_MACS:
            with _blas.limit(limits=1, user_api="blas"):
                y = self._mvm(x, cache, row0, rows, col0, cols)
        else:
            y = self._mvm(x, cache, row0, rows, col0, cols)
        self.reads += batch
        counters = self.counters
        counters["mvms"] += batch
        counters["macs"] += batch * cfg.rows * cfg.cols
        counters["adc_conversions"] += batch * cfg.cols
        counters["cycles"] += batch * cfg.rows * cfg.groups
        return y

    def _mvm(self, x, cache, row0, rows, col0, cols):
        cfg = self.config
        batch = len(x)
        xf = scratch("fast x", x.shape, self._acc_float)
        xf[...] = x
        cells = slice(col0, col0 + cols), slice(row0, row0 + rows)
        weights, variances = cache.weights, cache.variances
        if not self.mvm_noise:
            acc = np.matmul(xf, weights[cells].T, out=scratch("fast acc", (batch, cols), self._acc_float))
            out = np.empty(acc.shape, dtype=np.int64)
            if self.use_numba:  # the ADC in one compiled pass
                _kernels()[1](acc, cfg.adc_shift, cfg.y_max, out)
                return out
            if cfg.adc_shift:
                acc += 1 << (cfg.adc_shift - 1)
                acc *= 2.0 ** -cfg.adc_shift
                np.floor(acc, out=acc)
            np.clip(acc, -cfg.y_max, cfg.y_max, out=acc)
            out[...] = acc
            return out
        # column-major sums (cols, batch): the noise kernel walks each column's batch contiguously
        acc_t = np.matmul(weights[cells], xf.T, out=scratch("fast acc", (cols, batch), self._acc_float))
        var_t = None
        if variances is not None:
            xv = scratch("fast x2", x.shape, variances.dtype)
            xv[...] = xf
            np.multiply(xv, xv, out=xv)  # exact: x**2 <= the bound of the sums
            var_t = np.matmul(variances[cells], xv.T, out=scratch("fast var", (cols, batch), variances.dtype))
        return self._noisy_adc(acc_t, var_t, col0, cache).T

    def _noisy_adc(self, acc_t, var_t, col0, cache):
        """Read and output noise of MVMs ``reads ..`` added to the sums ``acc_t`` ``(cols, batch)``,
        then the ADC: codes ``(cols, batch)``."""
        cfg, tables = self.config, self.drift_tables
        shift = physics.noise_shift(tables.var_shift)
        if self.use_numba:
            out = np.empty(acc_t.shape, dtype=np.int64)
            empty = np.zeros((0, 0), dtype=np.float32)
            _kernels()[0](acc_t, empty if var_t is None else var_t, tables.out_var, cache.k0, cache.k1,
                          self.reads, col0, shift, cfg.adc_shift, cfg.y_max, out)
            return out
        cols, batch = acc_t.shape
        key = cache.k0, cache.k1
        z = column_gaussians(key, self.reads + np.arange(batch), col0 + cols)[:, col0:].T
        variance = np.int64(tables.out_var) if var_t is None else var_t.astype(np.int64) + tables.out_var
        q = isqrt(variance << physics.SQRT_SHIFT)
        return adc(cfg, acc_t.astype(np.int64) + physics.round_shift(q * z, shift))


_compiled = []


def _kernels():
    """``(noisy_adc, adc_codes, small_mvm)`` of :mod:`memxbar.fastnoise`, or ``None`` without numba."""
    if not _compiled:
        try:
            import numba  # noqa: F401 -- only whether it is installed
        except ImportError:
            _compiled.append(None)
        else:
            from .fastnoise import adc_codes, noisy_adc, small_mvm

            _compiled.append((noisy_adc, adc_codes, small_mvm))
    return _compiled[0]


def numba_kernel():
    """The compiled noise-and-ADC loop, or ``None`` without numba (compiled on first use)."""
    kernels = _kernels()
    return None if kernels is None else kernels[0]
