"""Checks of user arrays before they reach a backend: shape, dtype, range, NaN.

Every message names the argument, the expectation and the first offending value, because
the alternative (wrapped codes on the wire, a silent clip) corrupts results without a word.
"""

import numpy as np

__all__ = ["float_array", "integer_array", "require_finite"]


def integer_array(name, value, lo, hi, shape=None, last_dim=None):
    """``value`` as an int64 array, or ``ValueError`` saying what is wrong with it.

    ``shape`` fixes the whole shape; ``last_dim`` fixes only the last axis (a batch of vectors).
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name} is not an array of integers: {error}") from None
    if array.dtype == object:
        raise ValueError(f"{name} must be a rectangular array of integers, got ragged or mixed data")
    if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating):
        if np.isnan(array).any():
            raise ValueError(f"{name} contains NaN at index {_first(np.isnan(array))}")
        raise ValueError(f"{name} must hold integer codes, got dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer codes, got dtype {array.dtype}")
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    if last_dim is not None and (array.ndim == 0 or array.shape[-1] != last_dim):
        raise ValueError(f"{name} must have shape (..., {last_dim}), got {array.shape}")
    # two reductions and no temporaries on the hot path; the mask only to name the culprit
    if array.size and (array.min() < lo or array.max() > hi):
        index = _first((array < lo) | (array > hi))
        raise ValueError(f"{name}[{', '.join(map(str, index))}] = {array[index]} is outside "
                         f"[{lo}, {hi}]")
    return array.astype(np.int64, copy=False)


def _first(mask):
    return tuple(int(i) for i in np.argwhere(mask)[0])


def float_array(name, value, ndim=None, last_dim=None, copy=True, finite=True):
    """``value`` as a finite float64 array, or ``ValueError`` naming the first bad entry.

    ``copy=False`` may return ``value`` itself (for inputs that are only read).
    ``finite=False`` leaves NaN and infinities to the caller (:func:`require_finite` names
    them), which finds them in a pass it makes anyway.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name} is not an array of numbers: {error}") from None
    kind = array.dtype.kind  # one attribute, not issubdtype's ~1 us each on the hot path
    if kind == "c":
        raise ValueError(f"{name} must be real, got dtype {array.dtype}")
    if kind not in "biuf":
        raise ValueError(f"{name} must be a rectangular array of numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=copy)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array, got shape {array.shape}")
    if last_dim is not None and (array.ndim == 0 or array.shape[-1] != last_dim):
        raise ValueError(f"{name} must have shape (..., {last_dim}), got {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    # NaN propagates through min and max, an infinity is one of them: no mask unless needed
    if finite and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        require_finite(name, array)
    return array


def require_finite(name, array):
    """``ValueError`` naming the first NaN or infinity of ``array``, if it has one."""
    bad = ~np.isfinite(array)
    if bad.any():
        index = _first(bad)
        raise ValueError(f"{name} contains {array[index]} at index {index}: "
                         f"only finite values map onto a tile")
