"""The tile's random numbers in numpy, vectorised over many independent streams.

Written from the algorithms' definitions (Random123's Threefry-2x32-20, Blackman and Vigna's
xoshiro128++) and pinned by their published known-answer vectors; the integer Gaussian and
the keys are specified in :mod:`memxbar.protocol.physics`. Arithmetic is uint64 masked to
32 bits so numpy never warns about wrap-around.
"""

import numpy as np

from .protocol import physics
from .protocol.physics import THREEFRY_PARITY, THREEFRY_ROTATIONS, Domain

__all__ = ["Streams", "column_gaussians", "gauss", "noise_key", "stream_states", "threefry2x32"]

MASK = np.uint64(0xFFFF_FFFF)
BLOCK = 1 << 31  # counter bit selecting a stream's second Threefry block


def _u32(value):
    return np.asarray(value, dtype=np.uint64) & MASK


def _rotl(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & MASK


def threefry2x32(key, counter):
    """Threefry-2x32 with 20 rounds: ``key`` and ``counter`` are pairs of uint32 (arrays)."""
    k0, k1 = _u32(key[0]), _u32(key[1])
    ks = (k0, k1, k0 ^ k1 ^ np.uint64(THREEFRY_PARITY))
    x0 = (_u32(counter[0]) + k0) & MASK
    x1 = (_u32(counter[1]) + k1) & MASK
    for r in range(20):
        x0 = (x0 + x1) & MASK
        x1 = _rotl(x1, THREEFRY_ROTATIONS[r % 8]) ^ x0
        if r % 4 == 3:
            n = r // 4 + 1
            x0 = (x0 + ks[n % 3]) & MASK
            x1 = (x1 + ks[(n + 1) % 3] + np.uint64(n)) & MASK
    return x0, x1


def noise_key(seed, tile, domain):
    """Threefry key of one use of randomness (:class:`~memxbar.protocol.physics.Domain`)."""
    return seed, (tile << 8) | Domain(domain).value


class Streams:
    """Independent xoshiro128++ streams, one per counter, advanced together or under a mask."""

    def __init__(self, key, counter0, counter1=0):
        counter0, counter1 = np.broadcast_arrays(_u32(counter0), _u32(counter1))
        a = threefry2x32(key, (counter0, counter1))
        b = threefry2x32(key, (counter0, counter1 | np.uint64(BLOCK)))
        self.state = np.stack([a[0], a[1], b[0], b[1]])

    @classmethod
    def from_state(cls, state):
        """Streams starting from explicit ``(4, n)`` state words (known-answer tests)."""
        streams = cls.__new__(cls)
        streams.state = _u32(np.array(state, dtype=np.uint64).reshape(4, -1))
        return streams

    def next(self, mask=None):
        """One output per stream (uint64 holding 32 bits); masked-off streams do not advance."""
        s0, s1, s2, s3 = self.state
        result = (_rotl((s0 + s3) & MASK, 7) + s0) & MASK
        t = (s1 << np.uint64(9)) & MASK
        s2 = s2 ^ s0
        s3 = s3 ^ s1
        s1 = s1 ^ s2
        s0 = s0 ^ s3
        s2 = s2 ^ t
        s3 = _rotl(s3, 11)
        new = np.stack([s0, s1, s2, s3])
        self.state = new if mask is None else np.where(mask, new, self.state)
        return result

    def gaussian(self, mask=None):
        """One integer Gaussian ``z`` (int64, sd ``Z_SIGMA``) per stream."""
        # BINOMIAL_BITS / 32 outputs counted, then one for the dither
        ones = sum(_popcount(self.next(mask)) for _ in range(physics.BINOMIAL_BITS // 32))
        c = self.next(mask)
        dither = physics.DITHER_BITS
        return (((ones - physics.BINOMIAL_BITS // 2) << (dither + 1))
                + 2 * (c & np.uint64((1 << dither) - 1)).astype(np.int64) - ((1 << dither) - 1))


def _popcount(words):
    return np.bitwise_count(words).astype(np.int64)


def gauss(sigma, z):
    """``N(0, (sigma / SIGMA_STEPS)**2)`` from ``z``: ``round_shift(sigma * z, GAUSS_SHIFT)``."""
    product = np.asarray(sigma, dtype=np.int64) * np.asarray(z, dtype=np.int64)
    return physics.round_shift(product, physics.GAUSS_SHIFT)


#: xoshiro outputs one Gaussian takes: the binomial's words, then the dither's.
_WORDS = physics.BINOMIAL_BITS // 32 + 1


def stream_states(key, counters):
    """The xoshiro state ``(4, n)`` (uint32) of :class:`Streams` ``(key, counters)``: same bits."""
    return Streams(key, counters).state.astype(np.uint32)


def column_gaussians(key, counters, columns):
    """``gaussian()`` drawn ``columns`` times from each stream ``Streams(key, counters)``.

    Returns int64 ``(len(counters), columns)``, the ``j``-th column the ``j``-th Gaussian of each
    stream: the bits of :class:`Streams` with uint32 arrays (which wrap without warnings), one
    pass over the columns vectorised over the streams.
    """
    s0, s1, s2, s3 = stream_states(key, counters)
    out = np.empty((len(s0), columns), dtype=np.int64)
    words = np.empty((_WORDS, len(s0)), dtype=np.uint32)
    for column in range(columns):
        for k in range(_WORDS):
            total = s0 + s3
            words[k] = ((total << 7) | (total >> 25)) + s0
            t = s1 << 9
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = (s3 << 11) | (s3 >> 21)
        ones = sum(np.bitwise_count(words[k]).astype(np.int64) for k in range(_WORDS - 1))
        dither = (words[-1] & ((1 << physics.DITHER_BITS) - 1)).astype(np.int64)
        out[:, column] = (((ones - physics.BINOMIAL_BITS // 2) << (physics.DITHER_BITS + 1))
                          + 2 * dither - ((1 << physics.DITHER_BITS) - 1))
    return out
