"""The MVM noise of the fast path compiled with numba: one loop per MVM over its columns.

The recipe of :mod:`memxbar.protocol.physics` (Threefry-seeded xoshiro128++ streams, the
popcount Gaussian, ``q = isqrt(V << SQRT_SHIFT)``, the ADC) written as scalar code, which numba
compiles; numpy can only vectorise it over the batch (:func:`memxbar.noise.column_gaussians`).
Only :mod:`memxbar.fastmodel` imports this module, and only when numba is installed.
Arithmetic is uint64 masked to 32 bits, every constant typed, so numba never mixes signedness.
"""

import numba
import numpy as np

from .protocol import physics
from .protocol.physics import THREEFRY_PARITY, THREEFRY_ROTATIONS

__all__ = ["adc_codes", "noisy_adc", "small_mvm"]

MASK = np.uint64(0xFFFF_FFFF)
PARITY = np.uint64(THREEFRY_PARITY)
BLOCK = np.uint64(1 << 31)
U0, U1, U2, U3, U4, U5 = (np.uint64(n) for n in range(6))
R7, R9, R11, R32 = np.uint64(7), np.uint64(9), np.uint64(11), np.uint64(32)
# THREEFRY_ROTATIONS, the two halves of its cycle of eight rounds
R13, R15, R26, R6, R17, R29, R16, R24 = (np.uint64(r) for r in THREEFRY_ROTATIONS)
M1, M2, M4 = np.uint64(0x5555_5555), np.uint64(0x3333_3333), np.uint64(0x0F0F_0F0F)
ONES = np.uint64(0x0101_0101)
R1, R2, R4, R8, R24b = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(8), np.uint64(24)
# The Gaussian of physics: two words' popcount and a dither (numba freezes these when it compiles)
assert physics.BINOMIAL_BITS == 64, "the kernel draws the binomial from two 32-bit words"
DITHER_MASK = np.uint64((1 << physics.DITHER_BITS) - 1)
Z_SCALE = np.int64(1 << (physics.DITHER_BITS + 1))
Z_HALF = np.int64(physics.BINOMIAL_BITS // 2)
DITHER_OFFSET = np.int64((1 << physics.DITHER_BITS) - 1)
SQRT_SHIFT = np.int64(physics.SQRT_SHIFT)

jit = numba.njit(cache=True, nogil=True)


@jit
def _rotl(x, r):
    return ((x << r) | (x >> (R32 - r))) & MASK


@jit
def _four_rounds(x0, x1, first):
    if first:
        x0 = (x0 + x1) & MASK
        x1 = _rotl(x1, R13) ^ x0
        x0 = (x0 + x1) & MASK
        x1 = _rotl(x1, R15) ^ x0
        x0 = (x0 + x1) & MASK
        x1 = _rotl(x1, R26) ^ x0
        x0 = (x0 + x1) & MASK
        x1 = _rotl(x1, R6) ^ x0
    else:
        x0 = (x0 + x1) & MASK
        x1 = _rotl(x1, R17) ^ x0
        x0 = (x0 + x1) & MASK
        x1 = _rotl(x1, R29) ^ x0
        x0 = (x0 + x1) & MASK
        x1 = _rotl(x1, R16) ^ x0
        x0 = (x0 + x1) & MASK
        x1 = _rotl(x1, R24) ^ x0
    return x0, x1


@jit
def _threefry(k0, k1, c0, c1):
    """Threefry-2x32-20: five groups of four rounds, each followed by a key injection."""
    k2 = k0 ^ k1 ^ PARITY
    x0 = (c0 + k0) & MASK
    x1 = (c1 + k1) & MASK
    x0, x1 = _four_rounds(x0, x1, True)
    x0, x1 = (x0 + k1) & MASK, (x1 + k2 + U1) & MASK
    x0, x1 = _four_rounds(x0, x1, False)
    x0, x1 = (x0 + k2) & MASK, (x1 + k0 + U2) & MASK
    x0, x1 = _four_rounds(x0, x1, True)
    x0, x1 = (x0 + k0) & MASK, (x1 + k1 + U3) & MASK
    x0, x1 = _four_rounds(x0, x1, False)
    x0, x1 = (x0 + k1) & MASK, (x1 + k2 + U4) & MASK
    x0, x1 = _four_rounds(x0, x1, True)
    x0, x1 = (x0 + k2) & MASK, (x1 + k0 + U5) & MASK
    return x0, x1


@jit
def _next(s0, s1, s2, s3):
    """One xoshiro128++ output and the next state."""
    result = (_rotl((s0 + s3) & MASK, R7) + s0) & MASK
    t = (s1 << R9) & MASK
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    return result, s0, s1, s2, _rotl(s3, R11)


@jit
def _popcount(x):
    x = x - ((x >> R1) & M1)
    x = (x & M2) + ((x >> R2) & M2)
    x = (x + (x >> R4)) & M4
    return np.int64(((x * ONES) & MASK) >> R24b)


@jit
def _isqrt(n):
    """Floor square root of an int64 below ``2**62``, branch-free so the batch loop vectorises."""
    q = np.int64(np.sqrt(np.float64(n)))  # within one of the answer
    q -= np.int64(q * q > n)
    q += np.int64((q + 1) * (q + 1) <= n)
    return q


@jit
def _skip_column(s0, s1, s2, s3):
    """Draw one column's Gaussian from every stream without using it (left of a window)."""
    for b in range(len(s0)):
        x0, x1, x2, x3 = s0[b], s1[b], s2[b], s3[b]
        _, x0, x1, x2, x3 = _next(x0, x1, x2, x3)
        _, x0, x1, x2, x3 = _next(x0, x1, x2, x3)
        _, x0, x1, x2, x3 = _next(x0, x1, x2, x3)
        s0[b], s1[b], s2[b], s3[b] = x0, x1, x2, x3


@jit
def _gaussian(x0, x1, x2, x3):
    """The integer Gaussian of physics from one stream (three outputs) and the stream's next state."""
    a, x0, x1, x2, x3 = _next(x0, x1, x2, x3)
    b, x0, x1, x2, x3 = _next(x0, x1, x2, x3)
    c, x0, x1, x2, x3 = _next(x0, x1, x2, x3)
    z = (_popcount(a) + _popcount(b) - Z_HALF) * Z_SCALE + 2 * np.int64(c & DITHER_MASK) - DITHER_OFFSET
    return z, x0, x1, x2, x3


@jit
def _noisy_column(s0, s1, s2, s3, acc, var, out_var, half, shift, adc_half, adc_shift, y_max, out):
    """One column of every MVM of the batch: ``out = adc(acc + (q z + half) >> shift)``.

    ``var`` holds each MVM's per-cell variance sum, or is empty (``out_var`` alone).
    """
    q_out = _isqrt(np.int64(out_var) << SQRT_SHIFT)
    for b in range(len(s0)):
        z, x0, x1, x2, x3 = _gaussian(s0[b], s1[b], s2[b], s3[b])
        s0[b], s1[b], s2[b], s3[b] = x0, x1, x2, x3
        q = _isqrt((np.int64(out_var) + np.int64(var[b])) << SQRT_SHIFT) if len(var) else q_out
        total = np.int64(acc[b]) + ((q * z + half) >> shift)
        code = (total + adc_half) >> adc_shift
        out[b] = min(max(code, -y_max), y_max)


@jit
def noisy_adc(acc_t, var_t, out_var, k0, k1, read0, col0, shift, adc_shift, y_max, out_t):
    """``out = adc(acc + noise)`` for MVMs ``read0, read0 + 1, ...``, columns ``col0 ..``.

    Column-major: ``acc_t`` and ``var_t`` are ``(cols, batch)`` exact integers in floats
    (``var_t`` empty when no cell has a variance), ``out_t`` int64 ``(cols, batch)``;
    ``out_var`` is added to every column's variance. The streams of the batch advance
    together, column by column, so the loops over the batch are SIMD. (Measured: a
    ``prange`` over two halves of the batch on the 2-core machine under load was 5x slower.)
    """
    key0, key1 = np.uint64(k0), np.uint64(k1)
    half = np.int64(1) << (shift - 1)
    adc_half = (np.int64(1) << (adc_shift - 1)) if adc_shift else np.int64(0)
    cols, batch = acc_t.shape
    state = np.empty((4, batch), dtype=np.uint64)
    for b in range(batch):
        counter = np.uint64(read0 + b) & MASK
        state[0, b], state[1, b] = _threefry(key0, key1, counter, U0)
        state[2, b], state[3, b] = _threefry(key0, key1, counter, BLOCK)
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    none = np.empty(0, dtype=var_t.dtype)
    for _ in range(col0):
        _skip_column(s0, s1, s2, s3)
    for k in range(cols):
        var = var_t[k] if var_t.shape[0] else none
        _noisy_column(s0, s1, s2, s3, acc_t[k], var, out_var, half, shift, adc_half, adc_shift, y_max,
                      out_t[k])


@jit
def adc_codes(acc, adc_shift, y_max, out):
    """``out = adc(acc)`` without noise, one pass: exact integer sums in floats -> int64 codes."""
    adc_half = (np.int64(1) << (adc_shift - 1)) if adc_shift else np.int64(0)
    flat_acc, flat_out = acc.reshape(-1), out.reshape(-1)
    for i in range(flat_acc.size):
        code = (np.int64(flat_acc[i]) + adc_half) >> adc_shift
        flat_out[i] = min(max(code, -y_max), y_max)


@jit
def small_mvm(x, weights, variances, row0, col0, noise, out_var, k0, k1, read0, shift, adc_shift, y_max,
              out):
    """Whole MVMs of a small batch in int64, no BLAS: sums, noise and ADC per MVM, in one call.

    ``x`` int64 ``(batch, window rows)`` from input ``row0``; ``weights`` and ``variances``
    int64 ``(cols, rows)`` in cell order (``variances`` empty: no per-cell variance);
    ``out`` int64 ``(batch, window cols)`` from column ``col0``. ``noise``: MVMs carry noise
    (``out_var`` plus the cells' variances, the streams of reads ``read0 ..``).
    """
    key0, key1 = np.uint64(k0), np.uint64(k1)
    half = (np.int64(1) << (shift - 1)) if noise else np.int64(0)
    adc_half = (np.int64(1) << (adc_shift - 1)) if adc_shift else np.int64(0)
    batch, rows = x.shape
    cols = out.shape[1]
    per_cell = variances.shape[0] > 0
    for b in range(batch):
        xb = x[b]
        if noise:
            counter = np.uint64(read0 + b) & MASK
            x0, x1 = _threefry(key0, key1, counter, U0)
            x2, x3 = _threefry(key0, key1, counter, BLOCK)
            for _ in range(col0):
                _, x0, x1, x2, x3 = _gaussian(x0, x1, x2, x3)
        for k in range(cols):
            # slices indexed from 0 let LLVM vectorise the dot products (no wrap-around checks)
            wj = weights[col0 + k, row0:row0 + rows]
            acc = np.int64(0)
            for i in range(rows):
                acc += xb[i] * wj[i]
            if noise:
                var = np.int64(out_var)
                if per_cell:
                    vj = variances[col0 + k, row0:row0 + rows]
                    for i in range(rows):
                        var += xb[i] * xb[i] * vj[i]
                z, x0, x1, x2, x3 = _gaussian(x0, x1, x2, x3)
                acc += (_isqrt(var << SQRT_SHIFT) * z + half) >> shift
            code = (acc + adc_half) >> adc_shift
            out[b, k] = min(max(code, -y_max), y_max)
