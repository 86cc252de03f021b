"""Device physics as integer arithmetic: what the gateware applies and the golden model mirrors.

The host computes *tables* from a device model (:mod:`memxbar.devices`) and uploads them;
a tile applies them with the integer operations below, so a new device is new Python, never
new gateware. Every backend computes exactly these numbers.

Random numbers
--------------
``threefry2x32`` (20 rounds, Random123; ``key = (seed, tile << 8 | domain)``) turns a counter
into 64 random bits. A *stream* is xoshiro128++ started from two Threefry blocks of one
counter (block bit ``1 << 31`` set in the second); its outputs are used in order. A Gaussian
takes three outputs ``a, b, c``::

    z = (popcount(a) + popcount(b) - 32) * 512 + 2 * (c & 0xFF) - 255

(``BINOMIAL_BITS = 64`` bits counted, ``DITHER_BITS = 8``), so ``z`` is a binomial(64, 1/2)
smoothed by a uniform dither: mean 0, standard deviation ``Z_SIGMA`` (about 2053.3), excess
kurtosis -0.031, at most 0.0013 from N(0, 1) in Kolmogorov distance, ``|z| <= Z_MAX``.
``gauss(s, z) = round_shift(s * z, GAUSS_SHIFT)`` draws ``N(0, (s / SIGMA_STEPS)**2)`` with
``SIGMA_STEPS = 2**GAUSS_SHIFT / Z_SIGMA`` (about 15.96): tables store standard deviations in
steps of ``1 / SIGMA_STEPS`` of their unit, so the gateware needs no division by ``Z_SIGMA``.
``round_shift(v, k) = (v + 2**(k - 1)) >> k`` (``v`` for ``k = 0``) rounds half up; every
shift below is one of the contract's constants (``GAUSS_SHIFT`` 15, ``DRIFT_SHIFT`` 16,
``READ_SIGMA_SHIFT`` 12, ``NU_FRACTION_BITS`` 4, ``SQRT_SHIFT`` 8), written in this module only.

Noise keys (documented equivalent of "a function of seed, tile, read index and cell")
--------------------------------------------------------------------------------------
* ``STUCK``, counter ``(cell, 0)``: one Threefry block; ``u+`` is word 0, ``u-`` word 1.
  A cell is stuck on if ``u < p_on``, stuck off if ``p_on <= u < p_on + p_off``: a property
  of the cell, not of its programming history.
* A Gaussian is drawn only where its standard deviation is not 0: a zero sigma draws
  nothing, so the stream's next draw is unchanged.
* ``PROGRAM``, counter ``(k, 0)`` for the ``k``-th cell write since CONFIG: a stream gives,
  for ``G+`` then ``G-``, one Gaussian per programming pulse, then one for the drift
  exponent. The order of cells written is the host's order, so chunking, retries (replayed,
  not re-executed) and backends never change the result.
* ``DRIFT``, counter ``(cell, d)`` for the ``d``-th drift call since CONFIG: a stream gives
  the frozen read noise of ``G+`` then ``G-``.
* ``READ``, counter ``(r, 0)`` for the ``r``-th MVM since CONFIG: a stream gives one
  Gaussian per column in column order, the column's read plus output noise.

``cell = lane * words_per_lane + word`` is the cell's address in the tile's memory
(:func:`memxbar.protocol.cell_address`), padding words included.

CONFIG erases the array: every device gets ``g_prog = g_on`` if stuck on, else 0, and
``nu_code = 0``; then it settles at the loaded drift tables.

Programming one device of a cell to target level ``T``::

    if stuck: g_prog = g_on (on) or 0 (off); nu_code = 0; one pulse
    else: repeat up to verify_max times (once without write-verify):
              g_prog = clip(LEVEL[T] + gauss(PROG_SIGMA[T], z), 0, g_max); pulse
          until |g_prog - LEVEL[T]| <= verify_tol (every try is a verify read)
          nu16 = NU_MEAN[T] + gauss(NU_SIGMA[T], z)            # sixteenths of a nu code
          nu_code = min(NU_CODES - 1, (|nu16| + 8) >> 4)

Drifting, for the drift tables of time ``t`` (and right after programming, with the
tables of the last drift call; CONFIG loads those of ``t = 0``)::

    g_drift = clip(round_shift(g_prog * DRIFT[nu_code], DRIFT_SHIFT), 0, g_max)
    s = round_shift(g_drift * READ_SIGMA[g_prog], READ_SIGMA_SHIFT)   # sigma steps
    frozen:   in a drift call g = clip(g_drift + gauss(s, z), 0, g_max), otherwise
              (programming, CONFIG, STUCK) g = g_drift; v = 0
    per_read: g = g_drift; v = min(V_MAX, round_shift(s+**2 + s-**2, 2 * var_shift))

Frozen read noise is aihwkit's: ``program_weights`` leaves the programmed conductances
(programming noise only) and every ``drift_weights(t)``, ``t = 0`` included, samples read
noise afresh. So only a drift call draws it (key ``DRIFT``, counter ``(cell, d)``, ``d >= 1``);
a cell programmed afterwards reads without read noise until the next drift call.

An MVM with read index ``r``, per column ``j`` (``acc_j`` as in :mod:`.geometry`)::

    V_j = sum_i x_i**2 * v_ji + out_var         # units (2**var_shift / SIGMA_STEPS)**2
    q_j = isqrt(V_j << SQRT_SHIFT)              # floor square root: 16 sqrt(V_j)
    acc_j += round_shift(q_j * z_j, noise_shift(var_shift))
    y_j = adc(acc_j)

``noise_shift(var_shift) = GAUSS_SHIFT + SQRT_SHIFT / 2 - var_shift`` (19 - var_shift):
``q z / 2**k`` then has the standard deviation ``sqrt(V) 2**var_shift / SIGMA_STEPS``.
"""

from dataclasses import dataclass
from math import sqrt

from amaranth.lib import data, enum

__all__ = [
    "BINOMIAL_BITS",
    "DITHER_BITS",
    "DRIFT_ONE",
    "DRIFT_SHIFT",
    "GAUSS_SHIFT",
    "NU_CODES",
    "NU_FRACTION_BITS",
    "OUT_VAR_BITS",
    "READ_SIGMA_SHIFT",
    "SIGMA_STEPS",
    "SQRT_SHIFT",
    "TABLE_BITS",
    "THREEFRY_PARITY",
    "THREEFRY_ROTATIONS",
    "VAR_BITS",
    "VAR_SHIFT_BITS",
    "VAR_SHIFT_MAX",
    "V_MAX",
    "Z_BITS",
    "Z_MAX",
    "Z_SIGMA",
    "Domain",
    "DriftTables",
    "EngineOp",
    "Params",
    "ProgramTables",
    "ReadNoise",
    "Table",
    "default_read_noise",
    "ideal_tables",
    "mvm_noise",
    "noise_shift",
    "params_fields",
    "round_shift",
    "table_entries",
    "table_max",
]

# -- the fixed-point contract --------------------------------------------------------------
# The gateware and the golden model read these when they elaborate or compute (as
# ``physics.NAME``), so changing one here changes both sides together (tests/test_contract.py).

#: Bits counted for the binomial part of ``z`` (two 32-bit xoshiro outputs).
BINOMIAL_BITS = 64
#: Bits of the uniform dither that smooths the binomial's steps.
DITHER_BITS = 8
#: Largest ``|z|``.
Z_MAX = (BINOMIAL_BITS // 2 << (DITHER_BITS + 1)) + (1 << DITHER_BITS) - 1
#: Bits of ``z`` as a signed integer.
Z_BITS = Z_MAX.bit_length() + 1
#: Standard deviation of the integer Gaussian ``z``: binomial part plus dither.
Z_SIGMA = sqrt(BINOMIAL_BITS / 4 * 4**(DITHER_BITS + 1) + (4**DITHER_BITS - 1) / 3)
#: ``gauss(s, z) = round_shift(s * z, GAUSS_SHIFT)``.
GAUSS_SHIFT = 15
#: Table steps per unit of standard deviation: ``gauss(s, z)`` has sd ``s / SIGMA_STEPS``.
SIGMA_STEPS = 2**GAUSS_SHIFT / Z_SIGMA
#: Drift exponents are quantised to this many codes (``nu = code * nu_step``).
NU_CODES = 256
#: ``NU_MEAN`` and ``NU_SIGMA`` count ``2**-NU_FRACTION_BITS`` of a nu code.
NU_FRACTION_BITS = 4
#: ``DRIFT`` table entries are fixed point with this many fraction bits.
DRIFT_SHIFT = 16
#: A drift factor of 1.
DRIFT_ONE = 1 << DRIFT_SHIFT
#: ``READ_SIGMA`` entries are sigma steps per level with this many fraction bits.
READ_SIGMA_SHIFT = 12
#: Bits of a cell's per-read noise variance code.
VAR_BITS = 10
#: Largest per-cell read-noise variance code.
V_MAX = (1 << VAR_BITS) - 1
#: Bits of ``var_shift`` (the variance scale of the drift tables).
VAR_SHIFT_BITS = 4
#: Largest ``var_shift``.
VAR_SHIFT_MAX = (1 << VAR_SHIFT_BITS) - 1
#: ``q = isqrt(V << SQRT_SHIFT)``: even, so ``q`` is ``2**(SQRT_SHIFT / 2) sqrt(V)``.
SQRT_SHIFT = 8
#: Width of the output-noise variance.
OUT_VAR_BITS = 32


def round_shift(value, shift):
    """``value / 2**shift`` rounded half up (arithmetic shift): numpy arrays, ints or Amaranth values."""
    return (value + ((1 << shift) >> 1)) >> shift


def noise_shift(var_shift):
    """The MVM noise's final shift ``k``: ``q z / 2**k`` has sd ``sqrt(V) 2**var_shift / SIGMA_STEPS``."""
    return GAUSS_SHIFT + SQRT_SHIFT // 2 - var_shift


THREEFRY_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
THREEFRY_PARITY = 0x1BD11BDA


class Domain(enum.Enum, shape=8):
    """What a random number is for; part of the Threefry key so no two uses share bits."""

    STUCK = 1
    PROGRAM = 2
    DRIFT = 3
    READ = 4


class ReadNoise(enum.Enum, shape=1):
    PER_READ = 0  # fresh on every MVM (CrossSim, real devices)
    FROZEN = 1    # sampled at each drift call and held (aihwkit)


class Table(enum.Enum, shape=3):
    """The tile's tables, as table writes name them."""

    LEVEL = 0
    PROG_SIGMA = 1
    NU_MEAN = 2
    NU_SIGMA = 3
    DRIFT = 4
    READ_SIGMA = 5


#: Width of each table's entries.
TABLE_BITS = {Table.LEVEL: 8, Table.PROG_SIGMA: 16,
              Table.NU_MEAN: (NU_CODES << NU_FRACTION_BITS).bit_length(), Table.NU_SIGMA: 16,
              Table.DRIFT: DRIFT_SHIFT + 1,  # factors up to 1 (drift only ever lowers g)
              Table.READ_SIGMA: 21}


class EngineOp(enum.Enum, shape=1):
    CONFIGURE = 0  # erase the array, sample stuck cells, restart every noise index
    DRIFT = 1      # a drift call: move every cell to the loaded drift tables


class Params(data.Struct):
    """The scalars of a device the tile holds while it works (tables are separate)."""

    seed: 32
    p_on: 32
    p_off: 32
    out_var: 32
    g_on: 8
    verify_tol: 8
    verify_max: 8
    var_shift: VAR_SHIFT_BITS
    read_noise: ReadNoise
    mvm_noise: 1  # MVMs draw noise: mvm_noise(...) of the loaded tables


def table_max(table):
    """Largest entry a table stores."""
    return (1 << TABLE_BITS[Table(table)]) - 1


def default_read_noise(config):
    """Per-read noise where the build has its lanes (``TileConfig.per_read_noise``), else frozen."""
    return ReadNoise.PER_READ if config.per_read_noise else ReadNoise.FROZEN


def mvm_noise(read_noise, drift):
    """Whether MVMs add noise: output noise, or read noise drawn per read."""
    return bool(drift.out_var) or (ReadNoise(read_noise) == ReadNoise.PER_READ and any(drift.read_sigma))


@dataclass(frozen=True, eq=False)
class ProgramTables:
    """How cells program, indexed by target level (loaded by CONFIG).

    ``level``, ``prog_sigma``, ``nu_mean``, ``nu_sigma`` have ``2**g_bits`` int entries;
    ``p_on``/``p_off`` are 32-bit thresholds; ``verify_max == 0`` turns write-verify off.
    """

    level: tuple
    prog_sigma: tuple
    nu_mean: tuple
    nu_sigma: tuple
    p_on: int = 0
    p_off: int = 0
    g_on: int = 0
    verify_tol: int = 0
    verify_max: int = 0


@dataclass(frozen=True, eq=False)
class DriftTables:
    """The device at one time since programming (loaded by every drift call).

    ``drift`` has ``NU_CODES`` Q16 factors; ``read_sigma`` has ``2**g_bits`` entries by
    programmed level; ``out_var`` is the output-noise variance in MVM variance units.
    """

    drift: tuple
    read_sigma: tuple
    var_shift: int = 0
    out_var: int = 0


def ideal_tables(config):
    """Tables of a perfect device: programmed exactly, no drift, no noise (the state after reset)."""
    levels = tuple(range(config.g_max + 1))
    zeros = (0,) * (config.g_max + 1)
    return (ProgramTables(level=levels, prog_sigma=zeros, nu_mean=zeros, nu_sigma=zeros),
            DriftTables(drift=(DRIFT_ONE,) * NU_CODES, read_sigma=zeros))


def table_entries(program=None, drift=None):
    """``(Table, index, value)`` for every entry of the given tables, as the tile stores them."""
    columns = []
    if program is not None:
        columns += [(Table.LEVEL, program.level), (Table.PROG_SIGMA, program.prog_sigma),
                    (Table.NU_MEAN, program.nu_mean), (Table.NU_SIGMA, program.nu_sigma)]
    if drift is not None:
        columns += [(Table.DRIFT, drift.drift), (Table.READ_SIGMA, drift.read_sigma)]
    for table, values in columns:
        for index, value in enumerate(values):
            if not 0 <= value < 1 << TABLE_BITS[table]:
                raise ValueError(f"table {table.name} entry {index} = {value} does not fit "
                                 f"{TABLE_BITS[table]} bits")
            yield table, index, value


def params_fields(seed, read_noise, program, drift):
    """The :class:`Params` a tile holds for a device, as a dict of field values."""
    return {"seed": seed, "p_on": program.p_on, "p_off": program.p_off, "out_var": drift.out_var,
            "g_on": program.g_on, "verify_tol": program.verify_tol, "verify_max": program.verify_max,
            "var_shift": drift.var_shift, "read_noise": ReadNoise(read_noise).value,
            "mvm_noise": int(mvm_noise(read_noise, drift))}
