"""The float scaling of :func:`memxbar.mapping.scaled_mvm` compiled with numba: one pass each way.

Noise management divides each input vector by its largest magnitude onto the DAC codes, and
the ADC codes come back times a per-vector factor. In numpy that is six passes over the batch
(``abs``, a row-wise ``max`` that is slow along rows of ~64, the product, ``round``, the int64
cast, the float product back); here each direction is one loop doing the same IEEE
operations in the same order, so the results are the numpy path's bit for bit
(``tests/test_fastmodel.py`` compares them). Only :mod:`memxbar.mapping` imports this module,
and only when numba is installed.
"""

import numba
import numpy as np

__all__ = ["dequantise", "quantise"]

jit = numba.njit(cache=True, nogil=True)
ABS_MASK = np.int64(0x7FFF_FFFF_FFFF_FFFF)  # all bits of a double but its sign


@jit
def quantise(x, bits, widen, x_max, codes, span):
    """``codes = rint(x * (x_max / span))`` with ``span = max|x_row| * widen`` (1 for a zero row).

    ``x`` float64 ``(batch, n)`` C-contiguous and ``bits`` its int64 view, ``codes`` int64 of
    the same shape, ``span`` float64 ``(batch,)``. Returns whether every ``span`` is finite: a
    row holding NaN or an infinity gets a non-finite one (the caller's validation), as numpy's
    ``max`` propagates NaN.
    """
    batch, n = x.shape
    # |x| as the bits of a non-negative double orders like the double itself, NaN above
    # infinity: an integer max, which vectorises where a float max with NaN does not
    peak_bits = span.view(np.int64)
    for b in range(batch):
        row = bits[b]
        m = np.int64(0)
        for i in range(n):
            m = max(m, row[i] & ABS_MASK)
        peak_bits[b] = m
    finite = True
    for b in range(batch):
        peak = span[b]
        if peak == 0.0:
            peak = 1.0
        s = peak * widen
        span[b] = s
        finite &= s - s == 0.0
        factor = x_max / s
        row, out = x[b], codes[b]
        for i in range(n):
            out[i] = np.int64(np.rint(row[i] * factor))
    return finite


@jit
def dequantise(adc, unit, span, y_max, out, clipped):
    """``out = adc * (unit * span_row)`` (int64 codes to float64); ``clipped[b]``: a code of row
    ``b`` on the ADC's rail (``|code| >= y_max``). ``out`` may be ``adc``'s memory; both are
    walked in memory order, row- or column-major."""
    batch, n = adc.shape
    factor = unit * span
    clipped[:] = False
    if adc.strides[0] >= adc.strides[1]:
        for b in range(batch):
            rail = False
            for j in range(n):
                code = adc[b, j]
                rail |= (code >= y_max) | (code <= -y_max)
                out[b, j] = np.float64(code) * factor[b]
            clipped[b] = rail
    else:  # the noise kernel's (cols, batch) codes, transposed
        for j in range(n):
            for b in range(batch):
                code = adc[b, j]
                clipped[b] |= (code >= y_max) | (code <= -y_max)
                out[b, j] = np.float64(code) * factor[b]
