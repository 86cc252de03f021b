"""Work arrays of the MVM hot paths, reused from call to call (one set per thread).

A fresh array of a batch of 1000 (256-512 KiB) is mapped anew by the allocator and faulted in
page by page on first write: measured on the 2-core development machine, that made a
1000-vector ``Tile.matvec`` 3.5x slower than with warm memory. The temporaries that never
leave a call (DAC codes, float copies, BLAS outputs) live here instead; what a call returns is
always fresh.
"""

import threading

import numpy as np

__all__ = ["scratch"]

_local = threading.local()


def scratch(name, shape, dtype):
    """A work array ``shape``/``dtype`` for ``name`` (contents undefined), valid until the next
    request of ``name`` on this thread."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    size = 1
    for n in shape:
        size *= n
    dtype = np.dtype(dtype)
    buffer = pool.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.size < size:
        buffer = pool[name] = np.empty(max(size, 1), dtype=dtype)
    return buffer[:size].reshape(shape)
