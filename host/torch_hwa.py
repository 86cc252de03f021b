"""Hardware-aware training: a layer's product with the device's own noise, in PyTorch floats.

:func:`noisy_linear` computes ``x @ W.T`` the way a tile would, drawn afresh on every call
from the statistics of the same :class:`memxbar.DeviceModel` the tile is configured with:

- the weights as differential pairs of conductance levels (``s = target_max / max|W|``,
  rounded to the tile's levels), each device with its programming noise
  ``max(0, g + prog_sigma(g) N)``, then drift to ``t`` seconds with ``nu = |N(nu_mean,
  nu_sigma)|`` and read noise ``read_sigma(g_prog, t)`` relative to the drifted conductance;
- drift compensation as the tile applies it (``"global"``: one factor per layer from an
  all-ones reference; ``"column"`` and ``"calibrated"``: one factor per output column);
- inputs on the DAC's codes (each vector divided by its largest magnitude), output noise
  before the ADC (``out_noise`` of one full-scale cell), outputs on the ADC's codes.

Every rounding and every noise term is added as a detached difference, so gradients flow
straight through (``d y / d W`` and ``d y / d x`` as for ``x @ W.T``): the straight-through
estimator of aihwkit's hardware-aware training. This is a training aid in floats, not the
tile's integer arithmetic: it is not bit-exact with any backend. Left out: saturation at the
ADC rails (the tile's bound management rescues clipped outputs), stuck cells, per-block
scales of matrices larger than one tile (one scale per layer here).
"""

from dataclasses import dataclass

import numpy as np
import torch

from .devices import DeviceModel
from .protocol import TileConfig

__all__ = ["HardwareAware", "noisy_linear"]


@dataclass(frozen=True)
class HardwareAware:
    """What the training forward pass injects.

    Parameters
    ----------
    t : float or (float, float)
        Seconds after programming at which drift and read noise are drawn; a pair draws a
        time per forward pass, log-uniform between the two (robust over a range of ages).
    programming, drift, read, out_noise, quantise : bool
        Switch each effect on or off.
    """

    t: float | tuple = 0.0
    programming: bool = True
    drift: bool = True
    read: bool = True
    out_noise: bool = True
    quantise: bool = True

    def __post_init__(self):
        times = self.t if isinstance(self.t, tuple) else (self.t,)
        if len(times) not in (1, 2) or not all(isinstance(v, (int, float)) and np.isfinite(v) and v >= 0
                                              for v in times):
            raise ValueError(f"t must be a time >= 0 s or a pair of them, not {self.t!r}")

    def time(self):
        if not isinstance(self.t, tuple):
            return float(self.t)
        low, high = (np.log(max(v, 1e-3)) for v in self.t)
        return float(np.exp(low + (high - low) * torch.rand(()).item()))


def _straight(value, target):
    """``target`` in the forward pass, the gradient of ``value`` in the backward pass."""
    return value + (target - value).detach()


def _numpy(function, *arrays):
    return torch.from_numpy(np.asarray(function(*(a.double().numpy() for a in arrays)), dtype=np.float64))


def _device_noise(levels, model, config, aware, t):
    """Conductances (uS, detached) of one device per entry of ``levels`` (target levels)."""
    lsb = model.lsb(config)
    top = config.g_max * lsb
    g_target = levels.detach().double() * lsb
    g = g_target
    if aware.programming:
        g = (g + _numpy(model.prog_sigma, g_target) * torch.randn_like(g)).clamp(0.0, top)
    g_prog = g
    if aware.drift and t > 0:
        nu = (_numpy(model.nu_mean, g_target) + _numpy(model.nu_sigma, g_target) * torch.randn_like(g)).abs()
        g = g * torch.from_numpy(np.asarray(model.drift_factor(nu.numpy(), t), dtype=np.float64))
    if aware.read:
        sigma = torch.from_numpy(np.broadcast_to(np.asarray(model.read_sigma(g_prog.numpy(), t),
                                                            dtype=np.float64), g.shape).copy())
        g = (g + g.abs() * sigma * torch.randn_like(g)).clamp_min(0.0)
    return g_prog, g


def noisy_linear(x, weight, model, config=None, aware=None, compensation=None):
    """``x @ weight.T`` with the device's noise: ``x`` ``(batch, in)``, ``weight`` ``(out, in)``.

    ``model`` is the :class:`memxbar.DeviceModel` (``None``: only the tile's quantisation),
    ``config`` the :class:`memxbar.TileConfig` of the tile (DAC, ADC and level widths; the
    default build if ``None``), ``aware`` a :class:`HardwareAware`.
    """
    config = TileConfig() if config is None else config
    aware = HardwareAware() if aware is None else aware
    if model is not None and not isinstance(model, DeviceModel):
        raise TypeError(f"model must be a memxbar.DeviceModel such as memxbar.PCM(), not {model!r}")
    peak_w = weight.detach().abs().max().clamp_min(1e-30)
    top = model.target_max(config) if model is not None else config.g_max
    scale = top / peak_w  # levels per weight unit
    levels = weight * scale
    g_plus, g_minus = levels.clamp_min(0.0), (-levels).clamp_min(0.0)
    if aware.quantise:
        g_plus, g_minus = _straight(g_plus, g_plus.round()), _straight(g_minus, g_minus.round())
    factor = None
    if model is not None:
        t = aware.time()
        lsb = model.lsb(config)
        (p_plus, d_plus), (p_minus, d_minus) = (_device_noise(g, model, config, aware, t)
                                                for g in (g_plus, g_minus))
        programmed, now = (p_plus - p_minus) / lsb, (d_plus - d_minus) / lsb
        g_plus = _straight(g_plus, (d_plus / lsb).to(weight.dtype))
        g_minus = _straight(g_minus, (d_minus / lsb).to(weight.dtype))
        if compensation is not None and aware.drift and t > 0:
            # the tile's reference read: all-ones inputs at programming over the same now
            before, after = programmed.sum(dim=1).abs(), now.sum(dim=1).abs()
            if compensation == "global":
                before, after = before.sum(), after.sum()
            factor = (before / after.clamp_min(1e-12)).to(weight.dtype)
    effective = (g_plus - g_minus) / scale
    peak_x = x.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
    if aware.quantise:
        x = _straight(x, torch.round(x / peak_x * config.x_max) * peak_x / config.x_max)
    y = x @ effective.T
    if model is not None and aware.out_noise and model.out_noise > 0:
        y = _straight(y, y + model.out_noise * peak_x * peak_w * torch.randn_like(y))
    if aware.quantise:
        step = 2.0**config.adc_shift * peak_x / (config.x_max * scale)
        y = _straight(y, torch.round(y / step) * step)
    if factor is not None:
        y = y * factor
    return y
