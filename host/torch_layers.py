"""Analog PyTorch layers: ``AnalogLinear``, ``AnalogConv1d``, ``AnalogConv2d`` over the mapping compiler.

Each layer keeps its float weights as ordinary parameters (what training updates and what
``state_dict`` saves) and, once programmed onto a device, the mapped matrices
(:class:`memxbar.mapping.AnalogLinear`, one per convolution group) its forward pass runs on.
A convolution is unfolded: every output position is one MVM of a patch of ``in/groups x
kernel`` inputs through the ``(out/groups, in/groups x kernel)`` matrix.

- **Programmed** (bound to a device): the forward pass runs on the tiles. Whenever autograd
  records (``torch.is_grad_enabled()`` and the input or a weight requires grad), the tile's
  output carries the gradient of the float product (straight-through), so training mode never
  silently detaches.
- **Unbound** (fresh, or a ``copy.deepcopy``): the forward pass is the hardware-aware float
  simulation of :mod:`memxbar.torch_hwa`, noise drawn from the layer's ``device_model``, so an
  unprogrammed layer never passes for an ideal one.

All layers programmed together share one :class:`memxbar.Mapping` (their matrices share
tiles), so ``program_analog_weights`` and ``drift_analog_weights`` on any of them act on all
of them: a tile is programmed and ages as a whole.
"""

import copy
import math
from dataclasses import asdict

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from . import devices
from .device import NoiseIndices
from .devices import DeviceModel
from .mapping import COMPENSATIONS, WINDOW_EVENTS, Mapping
from .protocol import TileConfig
from .torch_hwa import HardwareAware, noisy_linear

__all__ = ["AnalogConv1d", "AnalogConv2d", "AnalogLayer", "AnalogLinear", "analog_layers",
           "drift_analog_weights", "program_analog_weights"]

STATE_VERSION = 1


class AnalogLayer(nn.Module):
    """What every analog layer has: its device configuration, binding and the aihwkit verbs.

    Attributes
    ----------
    device_model : memxbar.DeviceModel or None
        The device the layer is programmed as (``None``: the tiles as they are, ideal builds).
    seed : int
        Noise seed of the mapping (tile ``k`` gets ``seed + k``).
    read_noise : {"per_read", "frozen"} or None
        As :meth:`memxbar.Tile.configure`.
    compensation : one of :data:`memxbar.mapping.COMPENSATIONS`
        Drift compensation of this layer, switchable at any time.
    hardware_aware : memxbar.torch_hwa.HardwareAware
        The noise of the unbound (training) forward pass.
    """

    def _init_analog(self, device_model=None, seed=0, read_noise=None, compensation=None, bound_retries=3,
                     hardware_aware=None):
        if device_model is not None and not isinstance(device_model, DeviceModel):
            raise TypeError(f"device_model must be a memxbar.DeviceModel such as memxbar.PCM(), "
                            f"not {device_model!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), not {seed!r}")
        if read_noise not in (None, "per_read", "frozen"):
            raise ValueError(f"unknown read_noise mode {read_noise!r}; use 'per_read' or 'frozen'")
        if hardware_aware is not None and not isinstance(hardware_aware, HardwareAware):
            raise TypeError(f"hardware_aware must be a memxbar.torch.HardwareAware, not {hardware_aware!r}")
        self.device_model = device_model
        self.seed = seed
        self.read_noise = read_noise
        self.bound_retries = bound_retries
        self.hardware_aware = HardwareAware() if hardware_aware is None else hardware_aware
        self.tile_config = None  # the TileConfig of the device last programmed on, for the training noise
        self._binding = None
        self._mapped = []
        self._loaded = None  # a device state from load_state_dict, restored at the next programming
        self.compensation = compensation

    # -- configuration ------------------------------------------------------------------------------

    @property
    def compensation(self):
        return self._compensation

    @compensation.setter
    def compensation(self, value):
        if value not in COMPENSATIONS:
            raise ValueError(f"unknown compensation {value!r}; use one of {COMPENSATIONS}")
        self._compensation = value
        for layer in self._mapped:
            layer.compensation = value

    @property
    def programmed(self):
        """Whether the layer is bound to a device (its forward pass runs on tiles)."""
        return self._binding is not None

    @property
    def mapping(self):
        """The :class:`memxbar.Mapping` the layer's matrices live on (``None`` if unbound)."""
        return None if self._binding is None else self._binding.mapping

    @property
    def _group_count(self):
        return getattr(self, "groups", 1)

    def _matrices(self):
        """``[(weight (out, in), bias (out,) or None)]`` float64 arrays, one per group."""
        raise NotImplementedError

    # -- aihwkit's verbs ----------------------------------------------------------------------------

    def program_analog_weights(self, device=None):
        """Program this layer and those sharing its tiles (onto ``device`` if given).

        See :func:`program_analog_weights`.
        """
        program_analog_weights(self, device)
        return self

    def drift_analog_weights(self, t_inference=0.0):
        """Age the tiles to ``t_inference`` seconds after programming, see :func:`drift_analog_weights`."""
        drift_analog_weights(self, t_inference)
        return self

    # -- the product ----------------------------------------------------------------------------------

    def _product(self, patches):
        """``(n, in)`` patches -> ``(n, out)``: on the tiles when bound, else the training simulation."""
        if self._binding is None:
            return self._simulated(patches)
        self._binding.ensure_current()
        groups = self._group_count
        ins = patches.shape[1] // groups
        data = patches.detach().cpu().to(torch.float64).numpy()
        parts = [layer(data[:, g * ins:(g + 1) * ins]) for g, layer in enumerate(self._mapped)]
        weight = self.weight
        y = torch.from_numpy(np.ascontiguousarray(np.concatenate(parts, axis=1)))
        y = y.to(dtype=patches.dtype, device=patches.device)
        recording = patches.requires_grad or any(p.requires_grad for p in self.parameters())
        if torch.is_grad_enabled() and recording:
            exact = self._float_product(patches, weight)
            y = exact + (y - exact).detach()  # the tile's numbers, the float product's gradient
        return y

    def _float_product(self, patches, weight):
        groups = self._group_count
        w = weight.reshape(weight.shape[0], -1)
        ins, outs = patches.shape[1] // groups, w.shape[0] // groups
        parts = [patches[:, g * ins:(g + 1) * ins] @ w[g * outs:(g + 1) * outs].T for g in range(groups)]
        y = torch.cat(parts, dim=1)
        return y if self.bias is None else y + self.bias

    def _simulated(self, patches):
        groups = self._group_count
        w = self.weight.reshape(self.weight.shape[0], -1)
        ins, outs = patches.shape[1] // groups, w.shape[0] // groups
        config = self.tile_config or TileConfig()
        parts = [noisy_linear(patches[:, g * ins:(g + 1) * ins], w[g * outs:(g + 1) * outs],
                              self.device_model, config, self.hardware_aware, self.compensation)
                 for g in range(groups)]
        y = torch.cat(parts, dim=1)
        return y if self.bias is None else y + self.bias

    # -- estimates --------------------------------------------------------------------------------------

    def events(self):
        """Events of this layer's RUNs so far, counted on the host for the cells its windows use."""
        totals = dict.fromkeys(WINDOW_EVENTS, 0)
        for layer in self._mapped:
            for name in WINDOW_EVENTS:
                totals[name] += layer.events[name]
        return totals

    # -- copies and state ---------------------------------------------------------------------------------

    def __deepcopy__(self, memo):
        # weights and configuration, never the device handle: a copy is unbound until programmed
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key == "_binding":
                clone.__dict__[key] = None
            elif key == "_mapped":
                clone.__dict__[key] = []
            else:
                clone.__dict__[key] = copy.deepcopy(value, memo)
        return clone

    def get_extra_state(self):
        binding = self._binding
        device = None
        if binding is not None:
            device = binding.device_state()
        elif self._loaded is not None:
            device = self._loaded
        return {"version": STATE_VERSION, "device_model": _describe(self.device_model), "seed": self.seed,
                "read_noise": self.read_noise, "compensation": self.compensation,
                "bound_retries": self.bound_retries, "hardware_aware": asdict(self.hardware_aware),
                "tile_config": None if self.tile_config is None else self.tile_config.as_dict(),
                "device": device}

    def set_extra_state(self, state):
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"analog layer state of an unknown version: {state.get('version')!r} "
                             f"(this memxbar reads version {STATE_VERSION})")
        self.device_model = _rebuild(state["device_model"])
        self.seed, self.read_noise = state["seed"], state["read_noise"]
        self.bound_retries = state["bound_retries"]
        aware = dict(state["hardware_aware"])
        if isinstance(aware["t"], list):
            aware["t"] = tuple(aware["t"])
        self.hardware_aware = HardwareAware(**aware)
        self.tile_config = None if state["tile_config"] is None else TileConfig(**state["tile_config"])
        self.compensation = state["compensation"]
        self._loaded = state["device"]
        if self._binding is not None:
            self._binding.stale = True  # the tiles no longer hold these weights: restored at next use

    def _analog_repr(self):
        model = "unbound" if self._binding is None else self._binding.device.info.backend
        return f"analog on {model}, device_model={self.device_model!r}, seed={self.seed}"


class AnalogLinear(AnalogLayer, nn.Linear):
    """An ``nn.Linear`` whose product runs on crossbar tiles once programmed.

    Takes ``nn.Linear``'s arguments and the analog ones of :class:`AnalogLayer`
    (``device_model``, ``seed``, ``read_noise``, ``compensation``, ``bound_retries``,
    ``hardware_aware``); :meth:`from_digital` converts a trained layer.
    """

    def __init__(self, in_features, out_features, bias=True, *, device=None, dtype=None, **analog):
        nn.Linear.__init__(self, in_features, out_features, bias, device=device, dtype=dtype)
        self._init_analog(**analog)

    @classmethod
    def from_digital(cls, linear, **analog):
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None,
                    dtype=linear.weight.dtype, **analog)
        layer.load_state_dict(linear.state_dict(), strict=False)
        return layer

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input of shape {tuple(x.shape)} does not match in_features={self.in_features}")
        y = self._product(x.reshape(-1, self.in_features))
        return y.reshape(*x.shape[:-1], self.out_features)

    def _matrices(self):
        weight = self.weight.detach().cpu().to(torch.float64).numpy()
        bias = None if self.bias is None else self.bias.detach().cpu().to(torch.float64).numpy()
        return [(weight, bias)]

    def extra_repr(self):
        return f"{nn.Linear.extra_repr(self)}, {self._analog_repr()}"


class _AnalogConv(AnalogLayer):
    """Convolution by unfolding: one MVM per output position and group."""

    dims = None

    def _matrices(self):
        weight = self.weight.detach().cpu().to(torch.float64).numpy().reshape(self.out_channels, -1)
        bias = None if self.bias is None else self.bias.detach().cpu().to(torch.float64).numpy()
        outs = self.out_channels // self.groups
        return [(weight[g * outs:(g + 1) * outs], None if bias is None else bias[g * outs:(g + 1) * outs])
                for g in range(self.groups)]

    def _padding(self):
        """``F.pad`` widths (last dimension first) for this layer's padding."""
        if self.padding == "valid":
            return (0,) * (2 * self.dims)
        widths = []
        for d in reversed(range(self.dims)):
            if self.padding == "same":
                total = self.dilation[d] * (self.kernel_size[d] - 1)
                widths += [total // 2, total - total // 2]
            else:
                widths += [self.padding[d], self.padding[d]]
        return tuple(widths)

    def forward(self, x):
        if x.dim() not in (self.dims + 1, self.dims + 2) or x.shape[-self.dims - 1] != self.in_channels:
            raise ValueError(f"input of shape {tuple(x.shape)} does not match a {type(self).__name__} with "
                             f"in_channels={self.in_channels} (expected (batch, {self.in_channels}, "
                             f"{', '.join(['length'] if self.dims == 1 else ['height', 'width'])}))")
        unbatched = x.dim() == self.dims + 1
        if unbatched:
            x = x.unsqueeze(0)
        widths = self._padding()
        if any(widths):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = functional.pad(x, widths, mode=mode)
        # strided views, one kernel axis per spatial axis: (n, c, *positions, *kernel)
        patches = x
        for axis in range(self.dims):
            span = self.dilation[axis] * (self.kernel_size[axis] - 1) + 1
            if patches.shape[2 + axis] < span:
                raise ValueError(f"input of shape {tuple(x.shape)} is smaller than the kernel "
                                 f"{self.kernel_size} of {type(self).__name__}")
            patches = patches.unfold(2 + axis, span, self.stride[axis])[..., ::self.dilation[axis]]
        batch, spatial = patches.shape[0], patches.shape[2:2 + self.dims]
        order = (0, *range(2, 2 + self.dims), 1, *range(2 + self.dims, 2 + 2 * self.dims))
        rows = patches.permute(order).reshape(batch * math.prod(spatial), -1)  # channel-major, as the weight
        y = self._product(rows)
        y = y.reshape(batch, *spatial, self.out_channels).movedim(-1, 1)
        return y.squeeze(0) if unbatched else y

    @classmethod
    def from_digital(cls, conv, **analog):
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode, dtype=conv.weight.dtype,
                    **analog)
        layer.load_state_dict(conv.state_dict(), strict=False)
        return layer

    def extra_repr(self):
        return f"{super().extra_repr()}, {self._analog_repr()}"


class AnalogConv1d(_AnalogConv, nn.Conv1d):
    """An ``nn.Conv1d`` (stride, padding, dilation, groups, padding modes) on crossbar tiles."""

    dims = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", *, device=None, dtype=None, **analog):
        nn.Conv1d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                           bias, padding_mode, device=device, dtype=dtype)
        self._init_analog(**analog)


class AnalogConv2d(_AnalogConv, nn.Conv2d):
    """An ``nn.Conv2d`` (stride, padding, dilation, groups, padding modes) on crossbar tiles."""

    dims = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", *, device=None, dtype=None, **analog):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                           bias, padding_mode, device=device, dtype=dtype)
        self._init_analog(**analog)


# -- binding: layers programmed together on one mapping ---------------------------------------------------


def analog_layers(module):
    """The analog layers of ``module`` (itself included), in module order."""
    return [m for m in module.modules() if isinstance(m, AnalogLayer)]


class _Binding:
    """Analog layers programmed together onto one device through one :class:`Mapping`."""

    def __init__(self, device, layers, reprogram=False):
        first = layers[0]
        for layer in layers[1:]:
            mine = (_describe(layer.device_model), layer.seed, layer.read_noise, layer.bound_retries)
            theirs = (_describe(first.device_model), first.seed, first.read_noise, first.bound_retries)
            if mine != theirs:
                raise ValueError(f"analog layers programmed together share tiles and so one device model, "
                                 f"seed, read_noise and bound_retries: {layer!r} differs from {first!r}")
        for layer in layers:
            if layer._binding is not None:
                layer._binding.release()
        self.device = device
        self.layers = layers
        self.reprogram = reprogram
        self.stale = False
        self._build()

    def _build(self):
        """A mapping with the layers' configuration (again after a reload changed it)."""
        first = self.layers[0]
        self.mapping = Mapping(self.device, first.device_model, seed=first.seed, read_noise=first.read_noise,
                               reprogram=self.reprogram, bound_retries=first.bound_retries)
        matrices = [(layer, group, w, b) for layer in self.layers
                    for group, (w, b) in enumerate(layer._matrices())]
        # the tallest matrices first: guillotine packing then fits a small CNN's layers in one tile
        mapped = {}
        for layer, group, w, b in sorted(matrices, key=lambda m: (-m[2].shape[1], -m[2].shape[0])):
            mapped[id(layer), group] = self.mapping.add(w, b, layer.compensation)
        for layer in self.layers:
            layer._mapped = [mapped[id(layer), group] for group in range(len(layer._matrices()))]
            layer._binding = self
            layer.tile_config = self.device.info.config

    def release(self):
        for layer in self.layers:
            layer._binding, layer._mapped = None, []

    def program(self):
        """Push the layers' current float weights to the tiles, t = 0."""
        for layer in self.layers:
            for mapped, (weight, bias) in zip(layer._mapped, layer._matrices(), strict=True):
                mapped.set_weights(weight, bias)
        self.mapping.program()
        self.stale = False
        for layer in self.layers:
            layer._loaded = None

    def restore(self, state):
        """Program the saved weights with the saved seed, replay the drifts at their noise indices,
        and leave every tile at the saved indices: the next MVM draws what the original's would."""
        self._build()
        self.program()
        mapping = self.mapping
        for t, before in state["drifts"]:
            _set_indices(self.device, before)
            mapping.drift(t)
        _set_indices(self.device, state["indices"])
        if state["programmed"] is False:
            self.stale = True

    def ensure_current(self):
        if self.stale:
            loaded = self.layers[0]._loaded
            if loaded is not None and loaded.get("programmed"):
                self.restore(loaded)
            else:
                self.program()

    def device_state(self):
        mapping = self.mapping
        return {"programmed": bool(mapping._programmed and not self.stale), "time": mapping.time,
                "drifts": [[t, _plain_indices(before)] for t, before in mapping.drifts],
                "indices": _plain_indices(mapping.indices()), "backend": self.device.info.backend,
                "build_id": self.device.info.build_id}


def _plain_indices(indices):
    """``{tile: NoiseIndices}`` as ``[[tile, writes, drifts, reads], ...]``: plain values for a state dict."""
    return [[tile, i.writes, i.drifts, i.reads] for tile, i in sorted(indices.items())]


def _set_indices(device, plain):
    for tile, writes, drifts, reads in plain:
        device.tile(tile).indices = NoiseIndices(writes=writes, drifts=drifts, reads=reads)


def _bindings(module):
    layers = analog_layers(module)
    if not layers:
        raise ValueError(f"{type(module).__name__} has no analog layer: convert it first "
                         f"(memxbar.torch.convert_to_analog)")
    return layers, list({id(layer._binding): layer._binding for layer in layers if layer._binding}.values())


def program_analog_weights(module, device=None, *, reprogram=False):
    """Program the analog layers of ``module`` with their current float weights; time restarts at 0.

    With ``device`` (a :class:`memxbar.Device`) the layers are bound to it first, all on one
    mapping (an unbound copy, a reloaded model, or a move to another device); without it they
    are programmed again where they are. A layer whose ``load_state_dict`` carried a device
    state is restored to it instead: its saved weights, drifted to its saved time.
    ``reprogram`` allows more matrices than the device has cells (:class:`memxbar.Mapping`).
    """
    layers, bindings = _bindings(module)
    if device is None:
        unbound = [layer for layer in layers if layer._binding is None]
        if unbound:
            raise ValueError(f"{len(unbound)} analog layer(s) are not on a device (a copy or a reload): "
                             f"pass one, program_analog_weights(device)")
    else:
        bindings = [_Binding(device, layers, reprogram)]
    for binding in bindings:
        loaded = binding.layers[0]._loaded
        if device is not None and loaded is not None and loaded.get("programmed"):
            binding.restore(loaded)
        else:
            binding.program()


def drift_analog_weights(module, t_inference=0.0):
    """Age every tile under the analog layers of ``module`` to ``t_inference`` seconds after programming.

    Drift compensation is read again (aihwkit's ``drift_analog_weights``); layers sharing
    the tiles age with them.
    """
    layers, bindings = _bindings(module)
    if any(layer._binding is None for layer in layers):
        raise ValueError("analog layers not on a device cannot drift: program_analog_weights(device) first")
    for binding in bindings:
        binding.ensure_current()
        binding.mapping.drift(t_inference)


# -- device models in a state dict: plain values, no pickled code ---------------------------------------


def _describe(model):
    if model is None:
        return None
    cls = type(model)
    if getattr(devices, cls.__name__, None) is not cls:
        raise ValueError(f"a state dict stores device models of memxbar ({', '.join(devices.__all__)}), not "
                         f"{cls.__module__}.{cls.__name__}: subclass-free models with plain attributes only")
    values = {}
    for key, value in vars(model).items():
        if callable(value):
            raise ValueError(f"device model {model!r} has a function {key}: a state dict cannot store it")
        plain = (bool, int, float, str)
        if isinstance(value, tuple) and all(isinstance(item, plain) for item in value):
            value = {"tuple": list(value)}  # e.g. PCM's prog_coeff; rebuilt as a tuple
        elif not (value is None or isinstance(value, plain)):
            raise ValueError(f"device model attribute {key}={value!r} is not a plain value")
        values[key] = value
    return {"class": cls.__name__, "attributes": values}


def _rebuild(description):
    if description is None:
        return None
    cls = getattr(devices, description["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, DeviceModel)):
        raise ValueError(f"unknown device model {description['class']!r} in the state dict")
    model = cls.__new__(cls)
    model.__dict__.update({key: tuple(value["tuple"]) if isinstance(value, dict) else value
                           for key, value in description["attributes"].items()})
    return model
