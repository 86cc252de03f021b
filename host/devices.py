"""Device models: conductance physics as Python functions, compiled to a tile's integer tables.

A model speaks physical units (microsiemens, seconds); :meth:`DeviceModel.compile_program`
and :meth:`DeviceModel.compile_drift` turn it into the tables of
:mod:`memxbar.protocol.physics` for one tile configuration. Levels are ``lsb`` microsiemens
apart and the top level is ``headroom * g_max``, so programming noise above ``g_max`` is
kept instead of clipped.

:class:`PCM` is aihwkit's ``PCMLikeNoiseModel`` (``src/aihwkit/inference/noise/pcm.py``) with
its defaults; :class:`RRAM` a state-independent model; :class:`Ideal` no non-ideality at all.
Subclass :class:`DeviceModel` (or pass functions to it) for your own device.
"""

from math import isfinite, log, sqrt

import numpy as np

from .protocol import physics
from .protocol.physics import (
    DRIFT_ONE,
    NU_CODES,
    OUT_VAR_BITS,
    SIGMA_STEPS,
    V_MAX,
    VAR_SHIFT_MAX,
    DriftTables,
    ProgramTables,
    Table,
    table_max,
)

__all__ = ["PCM", "RRAM", "DeviceModel", "Ideal"]

T0 = 20.0         # s, aihwkit's drift reference time
T_READ = 250e-9   # s, aihwkit's read duration


def _positive(name, value, allow_zero=False):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, not {value!r}")
    return float(value)


def _rate(name, value):
    value = _positive(name, value, allow_zero=True)
    if value > 1:
        raise ValueError(f"{name} is a probability and must be in [0, 1], not {value!r}")
    return value


class DeviceModel:
    """A conductance device. Override the methods, or pass them as functions.

    Parameters
    ----------
    g_max : float
        Largest target conductance in microsiemens (a weight of ``max|W|``).
    headroom : float
        The top level is ``headroom * g_max``, room for programming noise above ``g_max``.
    prog_sigma, nu_mean, nu_sigma : callable, optional
        Functions of the target conductance (uS array) -> uS, drift exponent, its sigma.
    read_sigma : callable, optional
        ``read_sigma(g_prog, t)`` -> read noise sigma *relative* to the drifted conductance.
    stuck_on, stuck_off : float
        Probability that a device is stuck at ``g_on`` (``headroom * g_max``) or at 0.
    levels : int or None
        Distinct programmable conductances between 0 and ``g_max`` (finite-level devices);
        ``None`` means every level of the tile.
    out_noise : float
        Output noise sigma before the ADC, in units of the full-scale output of one cell
        (input 1.0 times a weight of ``max|W|``), as aihwkit's ``IOParameters.out_noise``.
    verify_tolerance : float or None
        Write-verify: repeat a programming pulse until within this many uS of the target.
    verify_max : int
        Most pulses per device with write-verify.
    """

    name = "custom"

    def __init__(self, g_max=25.0, headroom=1.25, *, prog_sigma=None, nu_mean=None, nu_sigma=None,
                 read_sigma=None, stuck_on=0.0, stuck_off=0.0, levels=None, out_noise=0.0,
                 verify_tolerance=None, verify_max=8):
        self.g_max = _positive("g_max", g_max)
        self.headroom = _positive("headroom", headroom)
        if self.headroom < 1:
            raise ValueError(f"headroom must be >= 1, not {headroom!r}")
        for name, function in (("prog_sigma", prog_sigma), ("nu_mean", nu_mean), ("nu_sigma", nu_sigma),
                               ("read_sigma", read_sigma)):
            if function is not None:
                if not callable(function):
                    raise TypeError(f"{name} must be a function, not {function!r}")
                setattr(self, name, function)
        self.stuck_on = _rate("stuck_on", stuck_on)
        self.stuck_off = _rate("stuck_off", stuck_off)
        if self.stuck_on + self.stuck_off > 1:
            raise ValueError(f"stuck_on + stuck_off must be <= 1, not {self.stuck_on + self.stuck_off!r}")
        if levels is not None and (not isinstance(levels, int) or isinstance(levels, bool) or levels < 2):
            raise ValueError(f"levels must be an integer >= 2 or None, not {levels!r}")
        self.levels = levels
        self.out_noise = _positive("out_noise", out_noise, allow_zero=True)
        if verify_tolerance is not None:
            verify_tolerance = _positive("verify_tolerance", verify_tolerance, allow_zero=True)
        self.verify_tolerance = verify_tolerance
        if not isinstance(verify_max, int) or isinstance(verify_max, bool) or not 1 <= verify_max <= 255:
            raise ValueError(f"verify_max must be an integer in [1, 255], not {verify_max!r}")
        self.verify_max = verify_max

    # -- physics, in microsiemens and seconds (numpy arrays in, arrays out) --------------------

    def prog_sigma(self, g_target):
        return np.zeros_like(g_target)

    def nu_mean(self, g_target):
        return np.zeros_like(g_target)

    def nu_sigma(self, g_target):
        return np.zeros_like(g_target)

    def read_sigma(self, g_prog, t):
        return np.zeros_like(g_prog)

    def drift_factor(self, nu, t):
        """``(t' / t0) ** -nu`` with ``t' = t + t0``: aihwkit's drift law."""
        return ((t + T0) / T0) ** -nu

    # -- compilation to a tile's tables ----------------------------------------------------------

    def lsb(self, config):
        """Microsiemens per conductance level of ``config``."""
        return self.headroom * self.g_max / config.g_max

    def target_max(self, config):
        """The level a weight of ``max|W|`` is programmed to."""
        return round(self.g_max / self.lsb(config))

    def nu_step(self):
        """Drift exponent of one nu code: the largest code covers ``mean + 5 sigma``."""
        g = np.linspace(0.0, self.g_max * self.headroom, 512)
        top = float(np.max(np.abs(self.nu_mean(g)) + 5 * np.abs(self.nu_sigma(g))))
        return top / (NU_CODES - 1) if top > 0 else 1.0

    def compile_program(self, config):
        """:class:`ProgramTables` of this device for a tile ``config``."""
        lsb = self.lsb(config)
        targets = np.arange(config.g_max + 1)
        g_target = targets * lsb
        if self.levels is None:
            level = targets
        else:
            top = self.target_max(config)
            allowed = np.round(np.linspace(0, top, self.levels)).astype(np.int64)
            level = allowed[np.abs(targets[:, None] - allowed[None, :]).argmin(axis=1)]
        step = self.nu_step()
        fraction = 1 << physics.NU_FRACTION_BITS  # the nu tables count fractions of a code
        ints = _table_of_ints
        return ProgramTables(
            level=ints("level", level, config.g_max),
            prog_sigma=ints("prog_sigma", SIGMA_STEPS * self.prog_sigma(g_target) / lsb,
                            table_max(Table.PROG_SIGMA)),
            nu_mean=ints("nu_mean", fraction * np.abs(self.nu_mean(g_target)) / step,
                         NU_CODES << physics.NU_FRACTION_BITS),
            nu_sigma=ints("nu_sigma", fraction * SIGMA_STEPS * np.abs(self.nu_sigma(g_target)) / step,
                          table_max(Table.NU_SIGMA)),
            p_on=min(round(self.stuck_on * 2**32), 2**32 - 1),
            p_off=min(round(self.stuck_off * 2**32), 2**32 - 1),
            g_on=config.g_max,
            verify_tol=0 if self.verify_tolerance is None else round(self.verify_tolerance / lsb),
            verify_max=0 if self.verify_tolerance is None else self.verify_max,
        )

    def compile_drift(self, config, t):
        """:class:`DriftTables` at ``t`` seconds after programming."""
        t = _positive("t", t, allow_zero=True)
        lsb = self.lsb(config)
        codes = np.arange(NU_CODES)
        drift = _table_of_ints("drift", DRIFT_ONE * self.drift_factor(codes * self.nu_step(), t), DRIFT_ONE)
        g_prog = np.arange(config.g_max + 1) * lsb
        one = 1 << physics.READ_SIGMA_SHIFT  # READ_SIGMA is fixed point
        read_sigma = _table_of_ints("read_sigma", one * SIGMA_STEPS * self.read_sigma(g_prog, t),
                                    table_max(Table.READ_SIGMA))
        # the noisiest cell pair sets the variance scale, so no cell's variance saturates
        s_max = max(level * rs for level, rs in enumerate(read_sigma)) / one
        var_shift = 0
        while 2 * s_max * s_max / 4**var_shift > V_MAX and var_shift < VAR_SHIFT_MAX:
            var_shift += 1
        sigma_acc = self.out_noise * config.x_max * self.target_max(config) * SIGMA_STEPS
        out_var = round(sigma_acc**2 / 4**var_shift)
        if out_var >= 1 << OUT_VAR_BITS:
            raise ValueError(f"out_noise {self.out_noise!r} is too large for this tile: its variance "
                             f"needs more than {OUT_VAR_BITS} bits")
        return DriftTables(drift=drift, read_sigma=read_sigma, var_shift=var_shift, out_var=out_var)

    def __repr__(self):
        return f"memxbar.{type(self).__name__}(g_max={self.g_max!r})"


def _table_of_ints(name, values, limit):
    values = np.broadcast_to(np.asarray(values, dtype=np.float64), np.shape(values))
    if not np.all(np.isfinite(values)):
        raise ValueError(f"device table {name} has a non-finite entry: check the model's functions")
    rounded = np.round(values).astype(np.int64)
    if rounded.min() < 0 or rounded.max() > limit:
        raise ValueError(f"device table {name} needs values up to {rounded.max()}, beyond its limit "
                         f"{limit}: the model's {name} is too large for this tile")
    return tuple(int(v) for v in rounded)


class Ideal(DeviceModel):
    """No programming noise, drift, read noise, faults or output noise."""

    name = "ideal"

    def __init__(self, g_max=25.0, headroom=1.0, **options):
        super().__init__(g_max, headroom, **options)


class PCM(DeviceModel):
    """Phase-change memory as aihwkit's ``PCMLikeNoiseModel``, with its defaults and its knobs.

    With ``x = g / g_max``: programming noise ``prog_noise_scale * |sum_i prog_coeff[i] x**i|
    * g_max / ref`` uS (aihwkit's ``(0.26348, 1.9650, -1.1731)`` fitted at ``ref = 25`` uS);
    drift exponent ``drift_scale * |N(mu_nu, sigma_nu)|`` with ``mu_nu = clip(-0.0155 ln x +
    0.0244, 0.049, 0.1)``, ``sigma_nu = clip(-0.0125 ln x - 0.0059, 0.008, 0.045)``; drift
    ``(t'/t_0)**-nu``, ``t' = t + t_0``; read noise ``read_noise_scale * Q_s sqrt(ln((t' +
    t_read) / (2 t_read)))`` relative to the drifted conductance, with ``Q_s = min(0.0088 /
    max((g_prog/g_max)**0.65, 1e-3), 0.2)``; output noise 0.06.

    Parameters
    ----------
    prog_coeff : sequence of float
        Polynomial coefficients of the programming noise in uS, lowest order first.
    prog_coeff_g_max_reference : float, optional
        The ``g_max`` the coefficients were fitted at; default 25 uS for aihwkit's coefficients,
        ``g_max`` for your own (as aihwkit).
    prog_noise_scale, read_noise_scale, drift_scale : float
        aihwkit's scales of the programming noise, the read noise and the drift exponent.
    t_0, t_read : float
        Seconds: the drift reference time (first read after programming) and the read duration
        of the 1/f fit.
    """

    name = "pcm"
    AIHWKIT_PROG_COEFF = (0.26348, 1.9650, -1.1731)

    def __init__(self, g_max=25.0, headroom=1.25, *, out_noise=0.06, prog_coeff=None,
                 prog_coeff_g_max_reference=None, prog_noise_scale=1.0, read_noise_scale=1.0,
                 drift_scale=1.0, t_0=T0, t_read=T_READ, **options):
        super().__init__(g_max, headroom, out_noise=out_noise, **options)
        if prog_coeff is None:
            prog_coeff, reference = self.AIHWKIT_PROG_COEFF, 25.0
        else:
            reference = self.g_max
        try:
            coeffs = tuple(float(c) for c in prog_coeff)
        except (TypeError, ValueError):
            raise ValueError(f"prog_coeff must be a sequence of numbers, not {prog_coeff!r}") from None
        if not coeffs or not all(isfinite(c) for c in coeffs):
            raise ValueError(f"prog_coeff must hold at least one finite number, not {prog_coeff!r}")
        self.prog_coeff = coeffs
        if prog_coeff_g_max_reference is not None:
            reference = prog_coeff_g_max_reference
        self.prog_coeff_g_max_reference = _positive("prog_coeff_g_max_reference", reference)
        self.prog_noise_scale = _positive("prog_noise_scale", prog_noise_scale, allow_zero=True)
        self.read_noise_scale = _positive("read_noise_scale", read_noise_scale, allow_zero=True)
        self.drift_scale = _positive("drift_scale", drift_scale, allow_zero=True)
        self.t_0 = _positive("t_0", t_0)
        self.t_read = _positive("t_read", t_read)

    def _x(self, g):
        return np.maximum(np.asarray(g, dtype=np.float64) / self.g_max, 1e-7)

    def prog_sigma(self, g_target):
        x = np.asarray(g_target, dtype=np.float64) / self.g_max
        poly = sum(c * x**i for i, c in enumerate(self.prog_coeff))
        # a negative polynomial value is a standard deviation of its magnitude (sigma * N(0,1))
        return self.prog_noise_scale * np.abs(poly) * self.g_max / self.prog_coeff_g_max_reference

    def nu_mean(self, g_target):
        return self.drift_scale * np.clip(-0.0155 * np.log(self._x(g_target)) + 0.0244, 0.049, 0.1)

    def nu_sigma(self, g_target):
        return self.drift_scale * np.clip(-0.0125 * np.log(self._x(g_target)) - 0.0059, 0.008, 0.045)

    def drift_factor(self, nu, t):
        return ((t + self.t_0) / self.t_0) ** -nu

    def read_sigma(self, g_prog, t):
        q_s = np.minimum(0.0088 / np.maximum((np.abs(g_prog) / self.g_max) ** 0.65, 1e-3), 0.2)
        t_prime = t + self.t_0
        return self.read_noise_scale * q_s * sqrt(log((t_prime + self.t_read) / (2 * self.t_read)))


class RRAM(DeviceModel):
    """Resistive RAM, state-independent: every level has the same noise and drift.

    Parameters
    ----------
    prog_noise : float
        Programming noise sigma, as a fraction of ``g_max``.
    read_noise : float
        Read noise sigma, as a fraction of the conductance.
    nu, nu_sigma : float
        Drift exponent mean and spread (RRAM drifts little; 0 disables drift).
    """

    name = "rram"

    def __init__(self, g_max=100.0, headroom=1.25, *, prog_noise=0.03, read_noise=0.01, nu=0.005,
                 nu_sigma=0.002, out_noise=0.0, **options):
        super().__init__(g_max, headroom, out_noise=out_noise, **options)
        self.prog_noise = _positive("prog_noise", prog_noise, allow_zero=True)
        self.read_noise = _positive("read_noise", read_noise, allow_zero=True)
        self.nu = _positive("nu", nu, allow_zero=True)
        self.nu_spread = _positive("nu_sigma", nu_sigma, allow_zero=True)

    def prog_sigma(self, g_target):
        return np.full(np.shape(g_target), self.prog_noise * self.g_max)

    def nu_mean(self, g_target):
        return np.full(np.shape(g_target), self.nu)

    def nu_sigma(self, g_target):
        return np.full(np.shape(g_target), self.nu_spread)

    def read_sigma(self, g_prog, t):
        return np.full(np.shape(g_prog), self.read_noise)
