"""PyTorch bridge: convert a model's linear and convolution layers to analog layers on tiles.

``memxbar.torch.convert_to_analog(model, device, memxbar.PCM(), seed=1)`` returns a copy of
``model`` whose ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` layers are
:class:`AnalogLinear`, :class:`AnalogConv1d` and :class:`AnalogConv2d` (real ``nn.Module``
s, :mod:`memxbar.torch_layers`), programmed onto ``device`` through one
:class:`memxbar.Mapping`; activations, pooling and normalisation layers stay digital (as in
aihwkit). The copy has aihwkit's verbs, ``program_analog_weights()`` and
``drift_analog_weights(t)``, and so has every analog layer. Without a device the layers stay
unbound and their forward pass is hardware-aware training (:mod:`memxbar.torch_hwa`).
Needs the optional extra: ``pip install 'memxbar[torch]'``.
"""

import copy

try:
    import torch  # noqa: F401 -- the import error below says how to install it
    from torch import nn
except ImportError:  # pragma: no cover - depends on the installation
    raise ImportError("memxbar.torch needs PyTorch: pip install 'memxbar[torch]'") from None

from .torch_hwa import HardwareAware, noisy_linear
from .torch_layers import (
    AnalogConv1d,
    AnalogConv2d,
    AnalogLayer,
    AnalogLinear,
    analog_layers,
    drift_analog_weights,
    program_analog_weights,
)

__all__ = ["DIGITAL", "AnalogConv1d", "AnalogConv2d", "AnalogLayer", "AnalogLinear", "AnalogModel",
           "HardwareAware", "analog_layers", "convert", "convert_to_analog", "convert_to_digital",
           "drift_analog_weights", "noisy_linear", "program_analog_weights"]

# Layers without weights of their own, or whose weights are per channel (normalisation: no
# matrix to map; aihwkit keeps them digital too), which the converted model computes in PyTorch.
DIGITAL = (nn.ReLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax, nn.Flatten, nn.Unflatten,
           nn.Dropout, nn.Identity, nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.LeakyReLU, nn.SiLU,
           nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
           nn.LocalResponseNorm, *([nn.RMSNorm] if hasattr(nn, "RMSNorm") else []))

ANALOG = {nn.Linear: AnalogLinear, nn.Conv1d: AnalogConv1d, nn.Conv2d: AnalogConv2d}


class AnalogModel:
    """Mixed into a converted model's class: aihwkit's verbs on the whole model."""

    def program_analog_weights(self, device=None, *, reprogram=False):
        """Program every analog layer (onto ``device`` if given); see :func:`program_analog_weights`."""
        program_analog_weights(self, device, reprogram=reprogram)
        return self

    def drift_analog_weights(self, t_inference=0.0):
        """Age every tile to ``t_inference`` seconds after programming; compensation is read again."""
        drift_analog_weights(self, t_inference)
        return self

    def analog_layers(self):
        return analog_layers(self)


_MIXED = {}


def _with_verbs(model):
    if isinstance(model, (AnalogLayer, AnalogModel)):
        return model
    base = type(model)
    if base not in _MIXED:
        _MIXED[base] = type(base.__name__, (AnalogModel, base), {"__module__": base.__module__,
                                                                 "__qualname__": base.__qualname__})
    model.__class__ = _MIXED[base]
    return model


def convert_to_analog(model, device=None, device_model=None, *, seed=0, compensation=None, read_noise=None,
                      bound_retries=3, hardware_aware=None, keep_digital=(), reprogram=False):
    """A copy of ``model`` with its linear and convolution layers analog; programmed if ``device`` is given.

    ``device_model`` is the memristor model of every analog layer (``memxbar.PCM()``, ...;
    ``None`` keeps the tiles as they are), ``seed`` the noise seed, ``read_noise`` the
    read-noise mode, ``compensation`` the drift compensation of every layer (see
    :data:`memxbar.mapping.COMPENSATIONS`), ``hardware_aware`` the training noise of the unbound
    forward pass (:class:`HardwareAware`). A module with weights that is neither mappable nor
    digital (:data:`DIGITAL`) nor listed in ``keep_digital`` raises ``ValueError`` naming it:
    a layer silently left in floats would make the accuracy figures lie.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    keep = tuple(keep_digital)
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if isinstance(module, (AnalogLayer, *keep)) or type(module) in ANALOG:
            continue
        if own and not isinstance(module, DIGITAL):
            raise ValueError(f"layer {name or '(the model)'} ({type(module).__name__}) has weights that "
                             f"memxbar cannot map: nn.Linear, nn.Conv1d and nn.Conv2d run on tiles, "
                             f"normalisation stays digital; pass keep_digital=(nn.{type(module).__name__},) "
                             f"to leave it in PyTorch")
    analog_options = {"device_model": device_model, "seed": seed, "read_noise": read_noise,
                      "compensation": compensation, "bound_retries": bound_retries,
                      "hardware_aware": hardware_aware}

    def analog(module):
        return ANALOG[type(module)].from_digital(module, **analog_options)

    converted = copy.deepcopy(model)
    for parent in list(converted.modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) in ANALOG and not isinstance(child, keep):
                setattr(parent, child_name, analog(child))
    if type(converted) in ANALOG and not isinstance(converted, keep):
        converted = analog(converted)
    if not analog_layers(converted):
        raise ValueError("the model has no nn.Linear, nn.Conv1d or nn.Conv2d layer to map onto tiles")
    converted = _with_verbs(converted)
    if device is not None:
        program_analog_weights(converted, device, reprogram=reprogram)
        converted.eval()
    return converted


def convert(model, device, device_model=None, **options):
    """``(analog copy, mapping)``: :func:`convert_to_analog` onto ``device``, with the one mapping it made."""
    converted = convert_to_analog(model, device, device_model, **options)
    return converted, analog_layers(converted)[0].mapping


def convert_to_digital(model):
    """A copy of ``model`` with every analog layer back as its ``nn`` layer (float weights, no device)."""
    digital = copy.deepcopy(model)

    def plain(layer):
        base = next(cls for cls in ANALOG if isinstance(layer, cls))
        state = {k: v for k, v in layer.state_dict().items() if not k.endswith("_extra_state")}
        if base is nn.Linear:
            twin = nn.Linear(layer.in_features, layer.out_features, layer.bias is not None)
        else:
            twin = base(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                        layer.dilation, layer.groups, layer.bias is not None, layer.padding_mode)
        twin.load_state_dict(state)
        return twin.to(layer.weight.dtype)

    for parent in list(digital.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, AnalogLayer):
                setattr(parent, child_name, plain(child))
    if isinstance(digital, AnalogLayer):
        return plain(digital)
    if isinstance(digital, AnalogModel):
        digital.__class__ = next(c for c in type(digital).__mro__[1:] if not issubclass(c, AnalogModel))
    return digital
